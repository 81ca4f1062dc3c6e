import AttuneEventLog
import Foundation

/// Every record of a topic, from each partition's first stored offset to its end as of the
/// call (on Kafka the first fetch after an assignment can take a while, so this waits for the
/// high watermarks rather than for a quiet poll).
func readTopic(_ log: any EventLog, _ topic: String, partitions: Int) async throws -> [ConsumerRecord] {
    let consumer = try log.makeConsumer(ConsumerConfiguration())
    let parts = (0..<partitions).map { TopicPartition(topic, $0) }
    try await consumer.assign(parts)
    try await consumer.seekToBeginning(parts)
    var ends: [TopicPartition: Int64] = [:], next: [TopicPartition: Int64] = [:]
    for p in parts {
        let w = try await consumer.watermarks(p)
        (ends[p], next[p]) = (w.high, w.low)
    }
    var out: [ConsumerRecord] = []
    let deadline = ContinuousClock.now + .seconds(120)
    while parts.contains(where: { next[$0]! < ends[$0]! }) && ContinuousClock.now < deadline {
        for r in try await consumer.poll(maxRecords: 500, timeout: .milliseconds(200)) {
            next[r.topicPartition] = r.offset + 1
            out.append(r)
        }
    }
    await consumer.close()
    return out
}
