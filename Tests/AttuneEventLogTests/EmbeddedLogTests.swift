import AttuneTestSupport
import Foundation
import Testing
@testable import AttuneEventLog

/// Behaviour only the embedded log implements itself: retention, compaction, member expiry.
@Suite struct EmbeddedLogTests {
    let directory = TestTransport.temporaryDirectory()
    var log: EmbeddedEventLog { EmbeddedEventLog(directory: directory) }

    @Test func retentionByTimeDropsOldRecordsAndMovesTheLowWatermark() async throws {
        let topic = try await makeTopic(log, partitions: 1, configs: ["retention.ms": "60000"])
        let producer = try log.makeProducer()
        let now = currentTimestampMs()
        _ = try await producer.send((0..<10).map {
            ProducerRecord(topic: topic, value: [UInt8($0)], timestamp: $0 < 6 ? now - 120_000 : now)
        })
        await producer.close()
        let admin = try EmbeddedAdmin(EmbeddedConfiguration(directory: directory))
        #expect(try await admin.maintain(now: now) == 6)
        let consumer = try log.makeConsumer(ConsumerConfiguration())
        let tp = TopicPartition(topic, 0)
        #expect(try await consumer.watermarks(tp) == Watermarks(low: 6, high: 10))
        try await consumer.assign([tp])
        try await consumer.seek(tp, to: 0)
        #expect(try await collect(consumer, count: 4).map(\.offset) == [6, 7, 8, 9])
        await consumer.close()
    }

    @Test func retentionBySizeKeepsTheNewestBytes() async throws {
        let topic = try await makeTopic(log, partitions: 1, configs: ["retention.bytes": "3000", "retention.ms": "-1"])
        let producer = try log.makeProducer()
        _ = try await producer.send((0..<10).map { _ in ProducerRecord(topic: topic, value: [UInt8](repeating: 1, count: 1000)) })
        await producer.close()
        let admin = try EmbeddedAdmin(EmbeddedConfiguration(directory: directory))
        #expect(try await admin.maintain() == 7)
        let consumer = try log.makeConsumer(ConsumerConfiguration())
        #expect(try await consumer.watermarks(TopicPartition(topic, 0)) == Watermarks(low: 7, high: 10))
        await consumer.close()
    }

    @Test func compactionKeepsTheLatestRecordPerKey() async throws {
        let topic = try await makeTopic(log, partitions: 1, configs: ["cleanup.policy": "compact"])
        let producer = try log.makeProducer()
        let keys = ["a", "b", "a", "c", "b", "a"]
        _ = try await producer.send(keys.enumerated().map { ProducerRecord(topic: topic, partition: 0, key: Array($1.utf8), value: Array("\($1)\($0)".utf8)) })
        await producer.close()
        let admin = try EmbeddedAdmin(EmbeddedConfiguration(directory: directory))
        #expect(try await admin.maintain() == 3)
        let consumer = try log.makeConsumer(ConsumerConfiguration())
        try await consumer.assign([TopicPartition(topic, 0)])
        let kept = try await collect(consumer, count: 3)
        #expect(kept.map(\.offset) == [3, 4, 5])
        #expect(kept.map { String(decoding: $0.value!, as: UTF8.self) } == ["c3", "b4", "a5"])
        await consumer.close()
    }

    @Test func aMemberThatStopsHeartbeatingLosesItsPartitions() async throws {
        let topic = try await makeTopic(log, partitions: 2)
        var config = ConsumerConfiguration(groupID: "expiry")
        config.sessionTimeout = .seconds(3)
        config.heartbeatInterval = .milliseconds(200)
        let silentLog = RebalanceLog(), liveLog = RebalanceLog()
        var silentConfig = config
        silentConfig.rebalanceHandler = silentLog.handler
        let silent = try log.makeConsumer(silentConfig)
        try await silent.subscribe([topic])
        _ = try await pollUntil(silent) { silentLog.owned.count == 2 }

        var liveConfig = config
        liveConfig.rebalanceHandler = liveLog.handler
        let live = try log.makeConsumer(liveConfig)
        try await live.subscribe([topic])
        _ = try await pollUntil(live) { liveLog.owned.count == 2 }
        #expect(liveLog.owned == [TopicPartition(topic, 0), TopicPartition(topic, 1)])
        await #expect(throws: EventLogError.self, "the expired member's commit is fenced off") {
            try await silent.commit([TopicPartition(topic, 0): 1], mode: .sync)
        }
        try await live.commit([TopicPartition(topic, 0): 1], mode: .sync)
        #expect(try await live.committed([TopicPartition(topic, 0)]) == [TopicPartition(topic, 0): 1])
        await live.close()
    }

    @Test func batchedProduceIsFastAndConcurrentProducersNeverShareAnOffset() async throws {
        let topic = try await makeTopic(log, partitions: 1)
        let value = [UInt8](repeating: 7, count: 200)
        try await withThrowingTaskGroup(of: [RecordMetadata].self) { group in
            for _ in 0..<2 {
                let log = self.log
                group.addTask {
                    let producer = try log.makeProducer()
                    var all: [RecordMetadata] = []
                    for _ in 0..<5 { all += try await producer.send((0..<2000).map { _ in ProducerRecord(topic: topic, value: value) }) }
                    await producer.close()
                    return all
                }
            }
            var offsets: Set<Int64> = []
            for try await batch in group { offsets.formUnion(batch.map(\.offset)) }
            #expect(offsets == Set(0..<20_000))
        }
    }

    @Test func corruptDirectoryOrDatabaseGivesAnError() async throws {
        let file = directory + "/not-a-directory"
        try writeFile(atPath: file, contents: Data("x".utf8))
        #expect(throws: EventLogError.self) { _ = try EmbeddedEventLog(directory: file).makeAdmin() }
        let garbage = TestTransport.temporaryDirectory()
        try writeFile(atPath: garbage + "/eventlog.sqlite", contents: Data(repeating: 0x41, count: 4096))
        #expect(throws: EventLogError.self) { _ = try EmbeddedEventLog(directory: garbage).makeAdmin() }
    }
}

@Suite struct GroupAssignorTests {
    @Test func rangeGivesContiguousPartitionsPerTopic() {
        let plan = GroupAssignor.assign(strategy: .range, members: [("b", ["t"]), ("a", ["t"])], partitions: ["t": 5])
        #expect(plan["a"] == (0..<3).map { TopicPartition("t", $0) })
        #expect(plan["b"] == (3..<5).map { TopicPartition("t", $0) })
    }

    @Test func roundRobinDealsAllPartitionsInTurnSkippingNonSubscribers() {
        let plan = GroupAssignor.assign(strategy: .roundRobin,
                                        members: [("a", ["t", "u"]), ("b", ["t"]), ("c", ["u"])],
                                        partitions: ["t": 3, "u": 2])
        let all = plan.values.flatMap { $0 }
        #expect(all.count == 5)
        #expect(Set(all).count == 5)
        #expect(plan["b"]!.allSatisfy { $0.topic == "t" })
        #expect(plan["c"]!.allSatisfy { $0.topic == "u" })
        let uniform = GroupAssignor.assign(strategy: .roundRobin, members: [("a", ["t", "u"]), ("b", ["t", "u"])],
                                           partitions: ["t": 3, "u": 2])
        #expect(uniform["a"] == [TopicPartition("t", 0), TopicPartition("t", 2), TopicPartition("u", 1)])
        #expect(uniform["b"] == [TopicPartition("t", 1), TopicPartition("u", 0)])
    }

    @Test func moreMembersThanPartitionsLeavesSomeIdle() {
        let members = (0..<4).map { (id: "m\($0)", topics: Set(["t"])) }
        let plan = GroupAssignor.assign(strategy: .range, members: members, partitions: ["t": 2])
        #expect(plan.values.map(\.count).sorted() == [0, 0, 1, 1])
        let empty = GroupAssignor.assign(strategy: .range, members: members, partitions: [:])
        #expect(empty.values.allSatisfy { $0.isEmpty })
    }
}
