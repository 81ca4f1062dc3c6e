import Foundation
import AttuneTestSupport
import Testing
@testable import AttuneEventLog

/// The behaviour both transports must share. Kafka cases run when `ATTUNE_KAFKA_BOOTSTRAP` is set.
@Suite(.serialized, .sharedBroker) struct ConformanceTests {
    @Test(arguments: TestTransport.selected)
    func keyedRecordsKeepOrderPerPartitionAndUseMurmur2(_ transport: TestTransport) async throws {
        let log = try transport.makeLog()
        let topic = try await makeTopic(log, partitions: 3)
        let producer = try log.makeProducer()
        let keys = (0..<10).map { "tenant-\($0)" }
        var records: [ProducerRecord] = []
        for seq in 0..<30 {
            for key in keys { records.append(ProducerRecord(topic: topic, key: key, value: "\(key):\(seq)")) }
        }
        let metadata = try await producer.send(records)
        await producer.close()
        for (record, meta) in zip(records, metadata) {
            #expect(meta.partition == Murmur2.partition(forKey: record.key!, partitionCount: 3))
        }

        let consumer = try log.makeConsumer(ConsumerConfiguration())
        try await consumer.assign((0..<3).map { TopicPartition(topic, $0) })
        let consumed = try await collect(consumer, count: records.count)
        await consumer.close()
        #expect(consumed.count == records.count)
        var lastOffset: [Int: Int64] = [:]
        var lastSeq: [String: Int] = [:]
        for record in consumed {
            #expect(record.offset > lastOffset[record.partition, default: -1])
            lastOffset[record.partition] = record.offset
            let parts = String(decoding: record.value!, as: UTF8.self).split(separator: ":")
            let key = String(parts[0]), seq = Int(parts[1])!
            #expect(String(decoding: record.key!, as: UTF8.self) == key)
            #expect(seq == lastSeq[key, default: -1] + 1)
            lastSeq[key] = seq
        }
    }

    /// `sendEach` says exactly which records landed: on Kafka a record for a partition that does
    /// not exist fails alone and its neighbours land; the embedded log's batch is atomic (a bad
    /// record fails the batch, and every record says so); nothing is reported as landed that
    /// is not on the topic.
    @Test(arguments: TestTransport.selected)
    func sendEachReportsEachRecordsOwnOutcome(_ transport: TestTransport) async throws {
        let log = try transport.makeLog()
        let topic = try await makeTopic(log, partitions: 2)
        let producer = try log.makeProducer()
        let records = [ProducerRecord(topic: topic, partition: 0, key: nil, value: Array("a".utf8)),
                       ProducerRecord(topic: topic, partition: 99, key: nil, value: Array("b".utf8)),
                       ProducerRecord(topic: topic, partition: 1, key: nil, value: Array("c".utf8))]
        let outcomes = await producer.sendEach(records)
        let landed = outcomes.map { (try? $0.get()) != nil }
        switch transport {
        case .kafka: #expect(landed == [true, false, true])
        case .embedded: #expect(landed == [false, false, false])
        }
        let good = await producer.sendEach([ProducerRecord(topic: topic, partition: 0, key: nil, value: Array("d".utf8))])
        #expect((try? good[0].get())?.partition == 0)
        await producer.close()

        let consumer = try log.makeConsumer(ConsumerConfiguration())
        try await consumer.assign([TopicPartition(topic, 0), TopicPartition(topic, 1)])
        let expected = landed.filter { $0 }.count + 1
        let consumed = try await collect(consumer, count: expected)
        try await Task.sleep(for: .milliseconds(300))
        let extra = try await consumer.poll(maxRecords: 10, timeout: .milliseconds(300))
        await consumer.close()
        #expect(consumed.count + extra.count == expected)
        let values = Set((consumed + extra).compactMap { $0.value.map { String(decoding: $0, as: UTF8.self) } })
        #expect(values == (transport == .kafka ? ["a", "c", "d"] : ["d"]))
    }

    /// Batches submitted without waiting (several in flight) land in submission order: a key's
    /// records keep their order across batches, each receipt names where its own records
    /// landed, and a consumer reads them back in that order.
    @Test(arguments: TestTransport.selected)
    func submittedBatchesInFlightKeepTheirOrder(_ transport: TestTransport) async throws {
        let log = try transport.makeLog()
        let topic = try await makeTopic(log, partitions: 3)
        let producer = try log.makeProducer()
        let batches = (0..<6).map { b in (0..<200).map { i in ProducerRecord(topic: topic, key: "k\(i % 2)", value: "\(b)-\(i)") } }
        var receipts: [ProduceReceipt] = []
        for batch in batches { receipts.append(try await producer.submit(batch)) }
        var landed: [RecordMetadata] = []
        for receipt in receipts { landed += try await receipt.metadata() }
        await producer.close()
        #expect(landed.count == 1200)
        for key in ["k0", "k1"] {
            let mine = zip(batches.joined(), landed).filter { $0.0.key == Array(key.utf8) }.map(\.1)
            #expect(Set(mine.map(\.partition)).count == 1, "\(key) stays in one partition")
            #expect(mine.map(\.offset) == mine.map(\.offset).sorted() && Set(mine.map(\.offset)).count == mine.count, "\(key) in submission order")
        }
        let consumer = try log.makeConsumer(ConsumerConfiguration())
        try await consumer.assign((0..<3).map { TopicPartition(topic, $0) })
        let consumed = try await collect(consumer, count: 1200)
        await consumer.close()
        for key in ["k0", "k1"] {
            let sent = batches.joined().filter { $0.key == Array(key.utf8) }.map(\.value)
            #expect(consumed.filter { $0.key == Array(key.utf8) }.map(\.value) == sent)
        }
    }

    @Test(.enabled(if: TestTransport.bootstrap != nil || TestTransport.kafkaRequired))
    func keyLandsInTheSamePartitionOnBothTransports() async throws {
        let keys = (0..<50).map { "key-\($0)-\(UUID().uuidString.prefix(4))" }
        var partitions: [TestTransport: [Int]] = [:]
        for transport in TestTransport.allCases {
            let log = try transport.makeLog()
            let topic = try await makeTopic(log, partitions: 6)
            let producer = try log.makeProducer()
            let metadata = try await producer.send(keys.map { ProducerRecord(topic: topic, key: $0, value: "v") })
            await producer.close()
            partitions[transport] = metadata.map(\.partition)
        }
        #expect(partitions[.embedded] == partitions[.kafka])
        #expect(Set(partitions[.embedded] ?? []).count > 1)
    }

    @Test(arguments: TestTransport.selected)
    func commitsSurviveAConsumerRestart(_ transport: TestTransport) async throws {
        let log = try transport.makeLog()
        let topic = try await makeTopic(log, partitions: 1)
        let producer = try log.makeProducer()
        _ = try await producer.send((0..<20).map { ProducerRecord(topic: topic, key: nil, value: "m\($0)") })
        await producer.close()
        let group = uniqueName("group")

        var config = ConsumerConfiguration(groupID: group)
        config.sessionTimeout = .seconds(6)
        let first = try log.makeConsumer(config)
        try await first.subscribe([topic])
        let firstBatch = try await collect(first, count: 20)
        #expect(firstBatch.count == 20)
        try await first.commit([TopicPartition(topic, 0): 12], mode: .sync)
        #expect(try await first.committed([TopicPartition(topic, 0)]) == [TopicPartition(topic, 0): 12])
        await first.close()

        let second = try log.makeConsumer(config)
        try await second.subscribe([topic])
        let resumed = try await collect(second, count: 8)
        #expect(resumed.map(\.offset) == Array(12..<20))
        try await second.commit(mode: .sync)
        #expect(try await second.committed([TopicPartition(topic, 0)]) == [TopicPartition(topic, 0): 20])
        await second.close()
    }

    @Test(arguments: TestTransport.selected)
    func seekToBeginningAndByTimestamp(_ transport: TestTransport) async throws {
        let log = try transport.makeLog()
        let topic = try await makeTopic(log, partitions: 1)
        let producer = try log.makeProducer()
        let base = currentTimestampMs() - 60_000
        _ = try await producer.send((0..<10).map {
            ProducerRecord(topic: topic, value: Array("r\($0)".utf8), timestamp: base + Int64($0) * 1000)
        })
        await producer.close()
        let tp = TopicPartition(topic, 0)
        let consumer = try log.makeConsumer(ConsumerConfiguration())
        try await consumer.assign([tp])
        let all = try await collect(consumer, count: 10)
        #expect(all.map(\.timestamp) == (0..<10).map { base + Int64($0) * 1000 })

        try await consumer.seekToBeginning([tp])
        #expect(try await collect(consumer, count: 1).first?.offset == 0)

        #expect(try await consumer.offsets(forTimestamp: base + 5500, partitions: [tp]) == [tp: 6])
        #expect(try await consumer.offsets(forTimestamp: base + 99_000, partitions: [tp]).isEmpty)
        try await consumer.seek(toTimestamp: base + 5500, [tp])
        let after = try await collect(consumer, count: 4)
        #expect(after.map(\.offset) == [6, 7, 8, 9])
        #expect(try await consumer.watermarks(tp) == Watermarks(low: 0, high: 10))
        await consumer.close()
    }

    @Test(arguments: TestTransport.selected)
    func fourMegabyteMessagesOnATopicConfiguredForThem(_ transport: TestTransport) async throws {
        let log = try transport.makeLog()
        let big = try await makeTopic(log, partitions: 1, configs: ["max.message.bytes": "8388608"])
        let small = try await makeTopic(log, partitions: 1)
        let payload = (0..<(4 * 1024 * 1024)).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
        let producer = try log.makeProducer()
        let meta = try await producer.send(ProducerRecord(topic: big, key: Array("adapter".utf8), value: payload))
        #expect(meta.offset == 0)
        await #expect(throws: EventLogError.self) {
            _ = try await producer.send(ProducerRecord(topic: small, value: payload))
        }
        await producer.close()
        let consumer = try log.makeConsumer(ConsumerConfiguration())
        try await consumer.assign([TopicPartition(big, 0)])
        let records = try await collect(consumer, count: 1, timeout: .seconds(60))
        #expect(records.first?.value == payload)
        await consumer.close()
    }

    @Test(arguments: TestTransport.selected)
    func binaryHeaderValuesRoundTrip(_ transport: TestTransport) async throws {
        let log = try transport.makeLog()
        let topic = try await makeTopic(log, partitions: 1)
        let headers = [
            EventHeader("sha256", (0...255).map { UInt8($0) }),
            EventHeader("empty", []),
            EventHeader("null", nil),
            EventHeader("version", "v1"),
            EventHeader("version", "v2"),
        ]
        let producer = try log.makeProducer()
        _ = try await producer.send(ProducerRecord(topic: topic, key: [0, 0xff, 0], value: [], headers: headers))
        _ = try await producer.send(ProducerRecord(topic: topic, key: nil, value: nil))
        await producer.close()
        let consumer = try log.makeConsumer(ConsumerConfiguration())
        try await consumer.assign([TopicPartition(topic, 0)])
        let records = try await collect(consumer, count: 2)
        await consumer.close()
        #expect(records.count == 2)
        #expect(records.first?.headers == headers)
        #expect(records.first?.headers.text(named: "version") == "v2")
        #expect(records.first?.key == [0, 0xff, 0])
        #expect(records.first?.value == [])
        #expect(records.last?.key == nil)
        #expect(records.last?.value == nil)
    }

    @Test(arguments: TestTransport.selected)
    func groupRebalancesBetweenTwoMembersInOneProcess(_ transport: TestTransport) async throws {
        let log = try transport.makeLog()
        let topic = try await makeTopic(log, partitions: 4)
        let group = uniqueName("group")
        var config = ConsumerConfiguration(groupID: group)
        config.sessionTimeout = .seconds(6)
        config.heartbeatInterval = .milliseconds(500)
        let all = Set((0..<4).map { TopicPartition(topic, $0) })

        let logA = RebalanceLog(), logB = RebalanceLog()
        var configA = config
        configA.rebalanceHandler = logA.handler
        var configB = config
        configB.rebalanceHandler = logB.handler
        let a = try log.makeConsumer(configA)
        try await a.subscribe([topic])
        _ = try await pollUntil(a) { logA.owned == all }
        #expect(logA.owned == all)

        let b = try log.makeConsumer(configB)
        try await b.subscribe([topic])
        async let pollA = pollUntil(a) { logA.owned.count == 2 && logB.owned.count == 2 }
        async let pollB = pollUntil(b) { logA.owned.count == 2 && logB.owned.count == 2 }
        _ = try await (pollA, pollB)
        #expect(logA.owned.isDisjoint(with: logB.owned))
        #expect(logA.owned.union(logB.owned) == all)
        #expect(logA.events.contains { if case .revoked = $0 { true } else { false } })

        await b.close()
        _ = try await pollUntil(a) { logA.owned == all }
        #expect(logA.owned == all)
        await a.close()
        #expect(logA.owned.isEmpty)
    }

    @Test(arguments: TestTransport.selected)
    func pauseStopsAndResumeRestartsFetching(_ transport: TestTransport) async throws {
        let log = try transport.makeLog()
        let topic = try await makeTopic(log, partitions: 2)
        let producer = try log.makeProducer()
        _ = try await producer.send((0..<10).map { ProducerRecord(topic: topic, partition: $0 % 2, value: [UInt8($0)]) })
        await producer.close()
        let consumer = try log.makeConsumer(ConsumerConfiguration())
        let p0 = TopicPartition(topic, 0), p1 = TopicPartition(topic, 1)
        try await consumer.assign([p0, p1])
        try await consumer.pause([p1])
        let first = try await collect(consumer, count: 5)
        #expect(first.count == 5 && Set(first.map(\.partition)) == [0])
        #expect(try await collect(consumer, count: 1, timeout: .seconds(2)).isEmpty, "the paused partition delivers nothing")
        try await consumer.resume([p1])
        let rest = try await collect(consumer, count: 5)
        #expect(rest.map(\.partition) == [1, 1, 1, 1, 1])
        await consumer.close()
    }

    @Test(arguments: TestTransport.selected)
    func badInputGivesClearErrors(_ transport: TestTransport) async throws {
        let log = try transport.makeLog()
        let admin = try log.makeAdmin()
        await #expect(throws: EventLogError.self) { try await admin.createTopic(TopicSpec(name: "bad name!", partitions: 1)) }
        await #expect(throws: EventLogError.self) { try await admin.createTopic(TopicSpec(name: uniqueName("zero"), partitions: 0)) }
        await #expect(throws: EventLogError.self) {
            try await admin.createTopic(TopicSpec(name: uniqueName("cfg"), partitions: 1, configs: ["retention.ms": "soon"]))
        }
        let topic = try await makeTopic(log, partitions: 2)
        do {
            try await admin.createTopic(TopicSpec(name: topic, partitions: 2))
            Issue.record("creating an existing topic must fail")
        } catch let error as EventLogError {
            #expect(error.kind == .topicExists)
            if transport == .kafka {
                #expect(error.code == 36, "librdkafka's TOPIC_ALREADY_EXISTS")
                #expect(!error.isFatal)
            }
        }
        #expect(try await admin.describeTopic(uniqueName("missing")) == nil)
        #expect(try await admin.listTopics().contains(topic))
        await admin.close()

        let producer = try log.makeProducer()
        await #expect(throws: EventLogError.self) {
            _ = try await producer.send(ProducerRecord(topic: topic, partition: 7, value: [1]))
        }
        await producer.close()
        await #expect(throws: EventLogError.self) { _ = try await producer.send(ProducerRecord(topic: topic, value: [1])) }

        let loner = try log.makeConsumer(ConsumerConfiguration())
        await #expect(throws: EventLogError.self) { try await loner.subscribe([topic]) }
        try await loner.assign([TopicPartition(topic, 0)])
        await #expect(throws: EventLogError.self) { try await loner.seek(TopicPartition(topic, 1), to: 0) }
        await #expect(throws: EventLogError.self) { try await loner.seek(TopicPartition(topic, 0), to: -5) }
        await loner.close()
        await #expect(throws: EventLogError.self) { _ = try await loner.poll(timeout: .milliseconds(10)) }
    }

    @Test(arguments: TestTransport.selected)
    func recordsSequenceYieldsInOrderAndEndsWhenTheConsumerCloses(_ transport: TestTransport) async throws {
        let log = try transport.makeLog()
        let topic = try await makeTopic(log, partitions: 1)
        let producer = try log.makeProducer()
        _ = try await producer.send((0..<25).map { ProducerRecord(topic: topic, value: [UInt8($0)]) })
        await producer.close()
        let consumer = try log.makeConsumer(ConsumerConfiguration())
        try await consumer.assign([TopicPartition(topic, 0)])
        var values: [UInt8] = []
        for try await record in consumer.records {
            values.append(record.value?.first ?? 255)
            if values.count == 25 { break }
        }
        #expect(values == Array(0..<25))
        await consumer.close()
        var after = 0
        for try await _ in consumer.records { after += 1 }
        #expect(after == 0)
    }

    @Test(arguments: TestTransport.selected)
    func manualOffsetStoreCommitsOnlyWhatWasStored(_ transport: TestTransport) async throws {
        let log = try transport.makeLog()
        let topic = try await makeTopic(log, partitions: 1)
        let tp = TopicPartition(topic, 0)
        let producer = try log.makeProducer()
        _ = try await producer.send((0..<10).map { ProducerRecord(topic: topic, value: [UInt8($0)]) })
        await producer.close()
        var config = ConsumerConfiguration(groupID: uniqueName("store"))
        config.autoOffsetStore = false
        let consumer = try log.makeConsumer(config)
        try await consumer.assign([tp])
        #expect(try await collect(consumer, count: 10).count == 10)
        try await consumer.commit(mode: .sync)
        #expect(try await consumer.committed([tp]).isEmpty, "nothing stored, nothing committed")
        try await consumer.store([tp: 4])
        try await consumer.commit(mode: .sync)
        #expect(try await consumer.committed([tp]) == [tp: 4])
        await #expect(throws: EventLogError.self) { try await consumer.store([TopicPartition(topic, 5): 1]) }
        await #expect(throws: EventLogError.self) { try await consumer.store([tp: -3]) }
        await consumer.close()
    }
}
