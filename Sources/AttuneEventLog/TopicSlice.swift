import Foundation

/// Reads a bounded slice of a topic, without a consumer group: the records of a time range
/// (through offsets-for-times) or of given offset ranges, up to the end the log has now.
public struct TopicSlice: Sendable {
    public let log: any EventLog

    public init(log: any EventLog) {
        self.log = log
    }

    /// Every record of `topic` whose timestamp is in `[from, to)` (either bound open when nil).
    public func records(of topic: String, from: TimestampMs? = nil, to: TimestampMs? = nil) async throws -> [ConsumerRecord] {
        let admin = try log.makeAdmin()
        let description = try await admin.describeTopic(topic)
        await admin.close()
        guard let description else { throw EventLogError(.unknownTopic, "no such topic: \(topic)") }
        let partitions = (0..<description.partitions).map { TopicPartition(topic, $0) }
        let consumer = try log.makeConsumer(ConsumerConfiguration())
        do {
            try await consumer.assign(partitions)
            var starts: [TopicPartition: Int64]?, ends: [TopicPartition: Int64]?
            if let from { starts = try await consumer.offsets(forTimestamp: from, partitions: partitions) }
            if let to { ends = try await consumer.offsets(forTimestamp: to, partitions: partitions) }
            var ranges: OffsetCoverage = [:]
            for tp in partitions {
                let marks = try await consumer.watermarks(tp)
                let first = from == nil ? marks.low : (starts?[tp] ?? marks.high)
                let end = ends?[tp] ?? marks.high
                if let range = OffsetRange(first, end - 1) { ranges[tp] = [range] }
            }
            let records = try await read(ranges, with: consumer)
            await consumer.close()
            return records
        } catch {
            await consumer.close()
            throw error
        }
    }

    /// The records at the offsets of `coverage` (offsets no longer stored are skipped).
    public func records(at coverage: OffsetCoverage) async throws -> [ConsumerRecord] {
        let consumer = try log.makeConsumer(ConsumerConfiguration())
        do {
            let records = try await read(coverage, with: consumer)
            await consumer.close()
            return records
        } catch {
            await consumer.close()
            throw error
        }
    }

    private func read(_ coverage: OffsetCoverage, with consumer: any EventConsumer) async throws -> [ConsumerRecord] {
        var out: [ConsumerRecord] = []
        for tp in coverage.keys.sorted() {
            try await consumer.assign([tp])
            let marks = try await consumer.watermarks(tp)
            for range in coverage[tp]!.sorted(by: { $0.first < $1.first }) {
                let first = max(range.first, marks.low), last = min(range.last, marks.high - 1)
                guard first <= last else { continue }
                try await consumer.seek(tp, to: first)
                var next = first
                let deadline = ContinuousClock.now + .seconds(60)
                while next <= last {
                    guard ContinuousClock.now < deadline else {
                        throw EventLogError(.timeout, "\(tp): offsets \(next)…\(last) could not be read within 60 s")
                    }
                    for r in try await consumer.poll(maxRecords: 500, timeout: .milliseconds(200))
                    where r.topicPartition == tp && r.offset >= next && r.offset <= last {
                        out.append(r)
                        next = r.offset + 1
                    }
                    if let position = try await consumer.position(tp), position > last { break }
                }
            }
        }
        return out
    }
}
