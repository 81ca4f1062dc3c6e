import Foundation
import AttuneTestSupport
import Testing
@testable import AttuneEventLog

/// The repository's `topics/` directory, found from this source file.
let repositoryTopics = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().appendingPathComponent("topics").path

let validInteraction = #"{"tenant":"acme","user":"u1","time":"2026-11-29T08:00:00Z","prompt":"hi","response":"hello","feedback":"up"}"#

@Suite struct JSONSchemaTests {
    func schema(_ text: String) throws -> JSONSchema { try JSONSchema(bytes: Array(text.utf8)) }
    func problems(_ schema: JSONSchema, _ json: String) throws -> [String] {
        schema.violations(of: try JSONValue.parse(Array(json.utf8)))
    }

    @Test func reportsEachKindOfViolation() throws {
        let s = try schema(#"""
            {"type":"object","required":["name","kind"],"additionalProperties":false,
             "properties":{"name":{"type":"string","minLength":2,"maxLength":4},
                           "kind":{"enum":["a","b"]},"n":{"type":"integer","minimum":0},
                           "tags":{"type":"array","items":{"type":"string"}}}}
            """#)
        #expect(try problems(s, #"{"name":"abc","kind":"a","n":3,"tags":["x"]}"#).isEmpty)
        #expect(try problems(s, #"{"kind":"a"}"#) == [#"$: required property "name" is missing"#])
        #expect(try problems(s, #"{"name":"a","kind":"a"}"#) == ["$.name: shorter than 2 characters"])
        #expect(try problems(s, #"{"name":"abcde","kind":"a"}"#) == ["$.name: longer than 4 characters"])
        #expect(try problems(s, #"{"name":"ab","kind":"c"}"#) == [#"$.kind: "c" is not one of "a", "b""#])
        #expect(try problems(s, #"{"name":"ab","kind":"a","x":1}"#) == [#"$: property "x" is not allowed"#])
        #expect(try problems(s, #"{"name":"ab","kind":"a","n":1.5}"#) == ["$.n: expected integer, got number"])
        #expect(try problems(s, #"{"name":"ab","kind":"a","n":-1}"#) == ["$.n: less than 0"])
        #expect(try problems(s, #"{"name":"ab","kind":"a","tags":[1]}"#) == ["$.tags[0]: expected string, got integer"])
        #expect(try problems(s, #"[1,2]"#) == ["$: expected object, got array"])
        #expect(try problems(s, #"{"name":true,"kind":"a"}"#) == ["$.name: expected string, got boolean"])
    }

    @Test func rejectsUnsupportedKeywordsAndBadJSON() {
        #expect(throws: EventLogError.self) { try schema(#"{"type":"string","pattern":"^a"}"#) }
        #expect(throws: EventLogError.self) { try schema(#"{"type":"strang"}"#) }
        #expect(throws: EventLogError.self) { try schema("[]") }
        #expect(throws: EventLogError.self) { try JSONValue.parse(Array("{not json".utf8)) }
        #expect(throws: EventLogError.self) { try JSONValue.parse([0xff, 0xfe]) }
        #expect(throws: EventLogError.self) { try JSONValue.parse([]) }
    }
}

@Suite(.sharedBroker) struct TopicCatalogTests {
    @Test func loadsEveryDesignTopicWithItsSchema() throws {
        let catalog = try TopicCatalog(directory: repositoryTopics)
        #expect(Set(catalog.topics.keys) == ["attune.corpora", "attune.interactions", "attune.adapters",
                                             "attune.adapter-events", "attune.checkpoints", "attune.dlq", "attune.control"])
        #expect(catalog.topics["attune.adapters"]?.configs["cleanup.policy"] == "compact")
        #expect(catalog.topics["attune.checkpoints"]?.configs["cleanup.policy"] == "compact")
        for topic in catalog.topics.values {
            #expect(topic.configs["max.message.bytes"] != nil)
            #expect(topic.configs["retention.ms"] != nil)
        }
    }

    @Test func theBuiltInContractsAreTheRepositoryTopics() throws {
        let fm = FileManager.default
        var onDisk: [String: String] = [:]
        for name in try fm.contentsOfDirectory(atPath: repositoryTopics) where name.hasSuffix(".json") {
            onDisk[name] = try String(contentsOfFile: repositoryTopics + "/" + name, encoding: .utf8)
        }
        for name in try fm.contentsOfDirectory(atPath: repositoryTopics + "/schemas") where name.hasSuffix(".json") {
            onDisk["schemas/" + name] = try String(contentsOfFile: repositoryTopics + "/schemas/" + name, encoding: .utf8)
        }
        let trim = { (s: String) in s.trimmingCharacters(in: .newlines) }
        #expect(BuiltinTopics.files.mapValues(trim) == onDisk.mapValues(trim), "run python3 ops/gen-builtin-topics.py after editing topics/")
        #expect(try TopicCatalog.builtin().topics == TopicCatalog(directory: repositoryTopics).topics)
    }

    @Test func aNamePrefixRenamesEveryTopicButTheDLQ() throws {
        let plain = try TopicCatalog(directory: repositoryTopics)
        let staged = try TopicCatalog(directory: repositoryTopics, namePrefix: "staging.")
        #expect(Set(staged.topics.keys) == Set(plain.topics.keys.map { $0 == DeadLetter.topic ? $0 : "staging." + $0 }))
        #expect(staged.topics["staging.attune.adapters"]?.configs == plain.topics["attune.adapters"]?.configs)
        try staged.validate(topic: "staging.attune.control",
                            value: Array(#"{"command":"rebase","adapter":"tenant/acme","domain":"domain/law@3","time":"2026-11-29T08:00:00Z"}"#.utf8),
                            headers: [])
        #expect(throws: EventLogError.self) { try TopicCatalog(directory: repositoryTopics, namePrefix: "bad prefix ") }
    }

    @Test func validatesProducedPayloadsAndStampsTheSchemaVersion() throws {
        let catalog = try TopicCatalog(directory: repositoryTopics)
        let ok = try catalog.prepare(ProducerRecord(topic: "attune.interactions", key: "acme", value: validInteraction))
        #expect(ok.headers.text(named: schemaVersionHeader) == "1")
        #expect(throws: EventLogError.self) {
            try catalog.prepare(ProducerRecord(topic: "attune.interactions", key: "acme", value: #"{"tenant":"acme"}"#))
        }
        #expect(throws: EventLogError.self) {
            try catalog.prepare(ProducerRecord(topic: "attune.interactions", key: "acme", value: "not json"))
        }
        #expect(throws: EventLogError.self) {
            try catalog.prepare(ProducerRecord(topic: "attune.interactions", key: nil, value: nil))
        }
        let sha = String(repeating: "ab", count: 32)
        _ = try catalog.prepare(ProducerRecord(topic: "attune.adapters", key: Array("acme".utf8), value: [0, 1, 2],
                                               headers: [EventHeader("version", "v1"), EventHeader("sha256", sha)]))
        #expect(throws: EventLogError.self) {
            try catalog.prepare(ProducerRecord(topic: "attune.adapters", key: Array("acme".utf8), value: [0],
                                               headers: [EventHeader("version", "v1"), EventHeader("sha256", "short")]))
        }
        do {
            try catalog.validate(topic: "attune.interactions", value: Array(validInteraction.utf8),
                                 headers: [EventHeader(schemaVersionHeader, "2")])
            Issue.record("a record of another schema version must be rejected")
        } catch let error as EventLogError {
            #expect(error.kind == .invalidPayload)
            #expect(error.message.contains("schema version 2, expected 1"))
        }
    }

    @Test func badTopicDefinitionsAreReported() throws {
        let dir = TestTransport.temporaryDirectory()
        try FileManager.default.createDirectory(atPath: dir + "/schemas", withIntermediateDirectories: true)
        try writeFile(atPath: dir + "/x.json", contents: Data(#"{"name":"x"}"#.utf8))
        #expect(throws: EventLogError.self) { try TopicCatalog(directory: dir) }
        try writeFile(atPath: dir + "/x.json", contents: Data(#"""
            {"name":"x","partitions":1,"replicationFactor":1,"configs":{},"value":{"format":"json","schema":"missing.json"}}
            """#.utf8))
        #expect(throws: EventLogError.self) { try TopicCatalog(directory: dir) }
        #expect(throws: EventLogError.self) { try TopicCatalog(directory: dir + "/nope") }
    }

    @Test(arguments: TestTransport.selected)
    func applyIsIdempotentAndReportsDrift(_ transport: TestTransport) async throws {
        let dir = TestTransport.temporaryDirectory()
        let name = uniqueName("applied")
        try FileManager.default.createDirectory(atPath: dir + "/schemas", withIntermediateDirectories: true)
        func write(partitions: Int) throws {
            try writeFile(atPath: dir + "/t.json", contents: Data("""
                {"name":"\(name)","partitions":\(partitions),"replicationFactor":3,
                 "configs":{"cleanup.policy":"compact","max.message.bytes":"2097152"},"value":{"format":"binary"}}
                """.utf8))
        }
        try write(partitions: 2)
        let admin = try transport.makeLog().makeAdmin()
        let cap = try await (admin as? KafkaAdmin)?.brokerCount()
        let catalog = try TopicCatalog(directory: dir)
        #expect(try await catalog.apply(to: admin, dryRun: true, maxReplicationFactor: cap).map(\.action) == [.create])
        #expect(try await admin.describeTopic(name) == nil)
        #expect(try await catalog.apply(to: admin, dryRun: false, maxReplicationFactor: cap).map(\.action) == [.create])
        #expect(try await catalog.apply(to: admin, dryRun: false, maxReplicationFactor: cap).map(\.action) == [.unchanged])
        #expect(try await admin.describeTopic(name)?.configs["cleanup.policy"] == "compact")
        try write(partitions: 3)
        let drift = try await TopicCatalog(directory: dir).apply(to: admin, dryRun: false, maxReplicationFactor: cap)
        #expect(drift.map(\.action) == [.drift(["partitions 2, declared 3"])])
        await admin.close()
    }

    @Test(arguments: TestTransport.selected)
    func invalidRecordsGoToTheDeadLetterTopicWithTheirReason(_ transport: TestTransport) async throws {
        let log = try transport.makeLog()
        let catalog = try TopicCatalog(directory: repositoryTopics)
        let admin = try log.makeAdmin()
        let cap = try await (admin as? KafkaAdmin)?.brokerCount()
        _ = try await catalog.apply(to: admin, dryRun: false, maxReplicationFactor: cap)
        await admin.close()

        let raw = try log.makeProducer()
        let strict = ValidatingProducer(raw, catalog: catalog, policy: .reject)
        await #expect(throws: EventLogError.self) {
            _ = try await strict.send(ProducerRecord(topic: "attune.interactions", key: "acme", value: #"{"tenant":1}"#))
        }
        let lenient = ValidatingProducer(raw, catalog: catalog, policy: .deadLetter)
        let marker = UUID().uuidString
        let routed = try await lenient.send(ProducerRecord(topic: "attune.interactions", key: marker, value: "{oops"))
        #expect(routed.topic == DeadLetter.topic)

        let interactions = (0..<12).map { TopicPartition("attune.interactions", $0) }
        let before = try await endOffsets(log, interactions)
        _ = try await raw.send([
            ProducerRecord(topic: "attune.interactions", key: marker, value: "not json at all"),
            ProducerRecord(topic: "attune.interactions", key: marker, value: validInteraction,
                           headers: [EventHeader(schemaVersionHeader, "9")]),
            ProducerRecord(topic: "attune.interactions", key: marker, value: validInteraction),
        ])
        let consumer = try log.makeConsumer(ConsumerConfiguration())
        try await consumer.assign(interactions)
        for tp in interactions { try await consumer.seek(tp, to: before[tp] ?? 0) }
        let records = try await collect(consumer, count: 3)
        await consumer.close()
        let validator = ConsumedRecordValidator(catalog: catalog, deadLetters: raw)
        var passed: [ConsumerRecord] = []
        for record in records { if let ok = try await validator.check(record) { passed.append(ok) } }
        #expect(passed.count == 1)
        await #expect(throws: EventLogError.self) {
            _ = try await ConsumedRecordValidator(catalog: catalog, deadLetters: nil).check(records[0])
        }
        await raw.close()

        let dlq = try log.makeConsumer(ConsumerConfiguration())
        try await dlq.assign((0..<3).map { TopicPartition(DeadLetter.topic, $0) })
        var dead: [ConsumerRecord] = []
        let deadline = ContinuousClock.now + .seconds(120)
        while dead.count < 3 && ContinuousClock.now < deadline {
            dead += try await dlq.poll(timeout: .milliseconds(200)).filter { $0.key == Array(marker.utf8) }
        }
        await dlq.close()
        #expect(dead.count == 3)
        let reasons = dead.compactMap { $0.headers.text(named: DeadLetter.reasonHeader) }
        #expect(reasons.count == 3)
        #expect(reasons.contains { $0.contains("not valid JSON") })
        #expect(reasons.contains { $0.contains("schema version 9, expected 1") })
        #expect(dead.allSatisfy { $0.headers.text(named: DeadLetter.topicHeader) == "attune.interactions" })
    }

    private func endOffsets(_ log: any EventLog, _ partitions: [TopicPartition]) async throws -> [TopicPartition: Int64] {
        let consumer = try log.makeConsumer(ConsumerConfiguration())
        var result: [TopicPartition: Int64] = [:]
        for tp in partitions { result[tp] = try await consumer.watermarks(tp).high }
        await consumer.close()
        return result
    }
}
