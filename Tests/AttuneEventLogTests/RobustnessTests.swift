import Foundation
import Testing
@testable import AttuneEventLog

/// Arbitrary bytes where the log reads untrusted input: errors, never crashes.
@Suite struct RobustnessTests {
    /// A small deterministic generator (xorshift) so failures reproduce.
    struct Bytes {
        var state: UInt64
        mutating func next() -> UInt64 {
            state ^= state << 13
            state ^= state >> 7
            state ^= state << 17
            return state
        }
        mutating func bytes(_ count: Int, from alphabet: [UInt8]) -> [UInt8] {
            (0..<count).map { _ in alphabet[Int(next() % UInt64(alphabet.count))] }
        }
    }

    @Test func randomJSONNeverCrashesTheParserOrValidator() throws {
        let catalog = try TopicCatalog(directory: repositoryTopics)
        var random = Bytes(state: 0x9e37_79b9_7f4a_7c15)
        let jsonish = Array(#"{}[]":,0123456789.-eE truefalsnl\u"abc"#.utf8) + [0x00, 0xff, 0xc3, 0x0a]
        for round in 0..<3000 {
            let input = random.bytes(Int(random.next() % 64), from: jsonish)
            if let value = try? JSONValue.parse(input) {
                _ = try JSONSchema(JSONValue.object(["type": .string("object")])).violations(of: value)
            }
            for topic in catalog.topics.keys {
                do {
                    try catalog.validate(topic: topic, value: input, headers: [EventHeader("version", input)])
                } catch let error as EventLogError {
                    #expect(error.kind == .invalidPayload, "round \(round): \(error)")
                }
            }
        }
    }

    @Test func deeplyNestedJSONIsAnErrorOrAValue() {
        let deep = Array(String(repeating: "[", count: 100_000).utf8)
        #expect(throws: EventLogError.self) { try JSONValue.parse(deep) }
    }

    @Test func topicPartitionsParseBackFromTheirDescription() {
        let tp = TopicPartition("attune.interactions.x[1]", 11)
        #expect(TopicPartition(parsing: tp.description) == tp)
        for bad in ["", "topic", "[1]", "t[-1]", "t[x]", "t[1", "t1]"] { #expect(TopicPartition(parsing: bad) == nil, "\(bad)") }
    }

    @Test func randomHeaderBlocksNeverCrashTheDecoder() throws {
        var random = Bytes(state: 42)
        let all = (0...255).map { UInt8($0) }
        for _ in 0..<5000 {
            let block = random.bytes(Int(random.next() % 48), from: all)
            _ = try? HeaderCoding.decode(block)
        }
        let headers = [EventHeader("a", [1, 2]), EventHeader("b", nil), EventHeader("", [])]
        let encoded = HeaderCoding.encode(headers)!
        #expect(try HeaderCoding.decode(encoded) == headers)
        for cut in 1..<encoded.count {
            #expect(throws: EventLogError.self) { try HeaderCoding.decode(Array(encoded[..<cut])) }
        }
    }

    @Test func everyPayloadSchemaAcceptsItsExample() throws {
        let catalog = try TopicCatalog(directory: repositoryTopics)
        let sha = String(repeating: "0f", count: 32)
        let examples: [(String, String, [EventHeader])] = [
            ("attune.corpora", #"{"domain":"python","doc_id":"library/os.html","chunk":0,"chunks":3,"text":"os — Miscellaneous operating system interfaces","source":"python3.11-doc"}"#, []),
            ("attune.interactions", validInteraction, []),
            ("attune.adapter-events", #"{"specversion":"1.0","type":"adapter.updated","source":"attune/trainer-1","id":"e1","time":"2026-11-29T08:00:00Z","datacontenttype":"application/json","data":{"adapter":"acme","version":"v3","sha256":"\#(sha)","parent":"python@v2"}}"#, []),
            ("attune.adapters", "", [EventHeader("version", "v3"), EventHeader("sha256", sha), EventHeader("parent", "python@v2")]),
            ("attune.checkpoints", "", [EventHeader("adapter", "acme"), EventHeader("offsets", #"{"attune.interactions[3]":42}"#), EventHeader("sha256", sha)]),
            ("attune.dlq", "{oops", [EventHeader(DeadLetter.reasonHeader, "not valid JSON"), EventHeader(DeadLetter.topicHeader, "attune.interactions")]),
            ("attune.control", #"{"command":"rebase","adapter":"tenant/acme","domain":"domain/law@3","time":"2026-11-29T08:00:00Z"}"#, []),
        ]
        #expect(Set(examples.map(\.0)) == Set(catalog.topics.keys))
        for (topic, value, headers) in examples {
            try catalog.validate(topic: topic, value: Array(value.utf8), headers: headers)
        }
        #expect(throws: EventLogError.self) {
            try catalog.validate(topic: "attune.adapter-events", value: Array(#"{"specversion":"0.3"}"#.utf8), headers: [])
        }
        #expect(throws: EventLogError.self) { try catalog.validate(topic: "attune.dlq", value: [1], headers: []) }
        #expect(throws: EventLogError.self) {
            try catalog.validate(topic: "attune.control", value: Array(#"{"command":"drop","adapter":"tenant/acme","domain":"domain/law@3","time":"2026-11-29T08:00:00Z"}"#.utf8), headers: [])
        }
    }
}
