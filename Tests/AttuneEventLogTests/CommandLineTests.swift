import Foundation
import AttuneTestSupport
import Testing
@testable import AttuneEventLog

/// Runs `attune` to completion: exit status (nil if killed by a signal), stdout, stderr.
func runAttune(_ arguments: [String], stdin: String? = nil, in folder: String? = nil) throws -> (status: Int32?, out: String, err: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: try attuneExecutable())
    process.arguments = arguments
    process.currentDirectoryURL = URL(fileURLWithPath: folder ?? URL(fileURLWithPath: repositoryTopics).deletingLastPathComponent().path)
    let out = Pipe(), err = Pipe(), input = Pipe()
    process.standardOutput = out
    process.standardError = err
    process.standardInput = input
    try process.run()
    if let stdin { input.fileHandleForWriting.write(Data(stdin.utf8)) }
    try input.fileHandleForWriting.close()
    let outData = out.fileHandleForReading.readDataToEndOfFile()
    let errData = err.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationReason == .exit ? process.terminationStatus : nil,
            String(decoding: outData, as: UTF8.self), String(decoding: errData, as: UTF8.self))
}

@Suite(.serialized, .sharedBroker) struct CommandLineTests {
    func connection(_ transport: TestTransport, _ directory: String) -> [String] {
        transport == .embedded ? ["--transport", "embedded", "--log-dir", directory]
            : ["--transport", "kafka", "--bootstrap", TestTransport.bootstrap ?? ""]
    }

    @Test(arguments: TestTransport.selected)
    func produceAndConsumeWithKeysHeadersAndStartPositions(_ transport: TestTransport) async throws {
        let directory = TestTransport.temporaryDirectory()
        let log = try transport.makeLog(directory: directory)
        let topic = try await makeTopic(log, partitions: 2, prefix: "cli")
        let c = connection(transport, directory)
        let base = currentTimestampMs() - 60_000
        let lines = (0..<6).map { "k\($0 % 2):v\($0)" }.joined(separator: "\n") + "\n"
        let produced = try runAttune(["produce"] + c + ["-t", topic, "-K", ":", "--header", "trace=abc",
                                                        "--header", "raw:hex=00ff10", "--timestamp", String(base), "--batch", "2"], stdin: lines)
        #expect(produced.status == 0, "\(produced.err)")
        #expect(produced.err.contains("produced 6 records"), "\(produced.err)")
        _ = try runAttune(["produce"] + c + ["-t", topic, "-k", "k0", "--value", "late", "--timestamp", String(base + 9000)])

        let all = try runAttune(["consume"] + c + ["-t", topic, "--format", "json"])
        #expect(all.status == 0, "\(all.err)")
        let records = all.out.split(separator: "\n").compactMap { try? JSONValue.parse(Array($0.utf8)) }
        #expect(records.count == 7)
        let k0 = records.compactMap { record -> String? in
            guard case .object(let o) = record, o["key"] == .string("k0"), case .string(let value)? = o["value"] else { return nil }
            return value
        }
        #expect(k0 == ["v0", "v2", "v4", "late"], "batches sent in flight keep their order")
        let first = records.first { if case .object(let o) = $0 { o["value"] == .string("v0") } else { false } }
        guard case .object(let object)? = first, case .array(let headers)? = object["headers"] else {
            Issue.record("v0 not consumed: \(all.out)")
            return
        }
        #expect(object["key"] == .string("k0"))
        #expect(object["timestamp"] == .integer(base))
        #expect(headers.contains(.object(["name": .string("trace"), "value": .string("abc")])))
        #expect(headers.contains(.object(["name": .string("raw"), "value_base64": .string("AP8Q")])))

        let partition = Murmur2.partition(forKey: Array("k0".utf8), partitionCount: 2)
        let byTime = try runAttune(["consume"] + c + ["-t", topic, "-p", String(partition), "--from", "@\(base + 5000)"])
        #expect(byTime.status == 0, "\(byTime.err)")
        #expect(byTime.out.split(separator: "\n").map { $0.split(separator: "\t").last.map(String.init) } == ["late"])
        let byOffset = try runAttune(["consume"] + c + ["-t", topic, "-p", String(partition), "--from", "2", "--count", "1"])
        #expect(byOffset.status == 0, "\(byOffset.err)")
        #expect(byOffset.out.hasPrefix("\(topic)[\(partition)]@2\t"), "\(byOffset.out)")
        #expect(byOffset.out.split(separator: "\n").count == 1)
    }

    @Test(arguments: TestTransport.selected)
    func consumedInvalidRecordsAreDeadLetteredNotFatal(_ transport: TestTransport) async throws {
        let directory = TestTransport.temporaryDirectory()
        let c = connection(transport, directory)
        #expect(try runAttune(["topics", "apply"] + c).status == 0)
        let tenant = uniqueName("tenant")
        let rejected = try runAttune(["produce"] + c + ["-t", "attune.interactions", "-k", tenant, "--value", #"{"tenant":"x"}"#])
        #expect(rejected.status == 1)
        #expect(rejected.err.contains(#"required property "prompt" is missing"#))
        let raw = try runAttune(["produce"] + c + ["-t", "attune.interactions", "-k", tenant, "--value", "{broken", "--no-validate"])
        #expect(raw.status == 0, "\(raw.err)")
        let partition = String(Murmur2.partition(forKey: Array(tenant.utf8), partitionCount: 12))
        let strict = try runAttune(["consume"] + c + ["-t", "attune.interactions", "-p", partition])
        #expect(strict.status == 1)
        #expect(strict.err.contains("not valid JSON"))
        let lenient = try runAttune(["consume"] + c + ["-t", "attune.interactions", "-p", partition, "--invalid", "dlq"])
        #expect(lenient.status == 0, "\(lenient.err)")
        let dlq = try runAttune(["consume"] + c + ["-t", "attune.dlq", "--format", "json"])
        #expect(dlq.out.contains("\"key\":\"\(tenant)\""))
        #expect(dlq.out.contains("not valid JSON"))
    }

    /// The binary carries its topic contracts: from a folder with no `topics/`, topics apply
    /// and produce validate against the built-in schemas; a `--topics-dir` that does not
    /// exist is an error, never a silent skip of validation.
    @Test func worksFromAnyFolderWithItsBuiltInTopics() throws {
        let folder = TestTransport.temporaryDirectory()
        let log = ["--log-dir", folder + "/log"]
        #expect(try runAttune(["topics", "apply"] + log, in: folder).status == 0)
        let bad = try runAttune(["produce", "-t", "attune.interactions", "-k", "acme", "--value", "not json"] + log, in: folder)
        #expect(bad.status == 1 && bad.err.contains("not valid JSON"), "\(bad.err)")
        let good = #"{"tenant":"acme","user":"u1","time":"2026-11-29T08:00:00Z","prompt":"hi","response":"hello"}"#
        #expect(try runAttune(["produce", "-t", "attune.interactions", "-k", "acme", "--value", good] + log, in: folder).status == 0)
        let missing = try runAttune(["produce", "-t", "attune.interactions", "-k", "acme", "--value", good, "--topics-dir", folder + "/nope"] + log,
                                    in: folder)
        #expect(missing.status == 1 && missing.err.contains("cannot read topic directory"), "\(missing.err)")
    }

    @Test func badArgumentsAndConfigurationFailCleanly() throws {
        let directory = TestTransport.temporaryDirectory()
        let cases: [([String], Int32, String)] = [
            (["consume", "--log-dir", directory, "-t", "x", "--from", "yesterday"], 64, "--from"),
            (["consume", "--log-dir", directory, "-t", "x", "--from", "@-5"], 64, "--from"),
            (["consume", "--log-dir", directory, "-t", "x", "--count", "0"], 64, "--count"),
            (["consume", "--log-dir", directory, "-t", "x", "-g", "g", "-p", "1"], 64, "--partition"),
            (["produce", "--log-dir", directory, "-t", "nope", "--value", "v"], 1, "unknown topic nope"),
            (["produce", "--transport", "kafka", "-X", "novalue", "-t", "x", "--value", "v"], 64, "key=value"),
            (["produce", "--transport", "kafka", "--bootstrap", "127.0.0.1:1", "-X", "no.such.property=1", "-t", "x", "--value", "v"],
             1, "no.such.property"),
            (["topics", "apply", "--log-dir", directory, "--topics-dir", directory + "/missing"], 1, "cannot read topic directory"),
            (["topics", "describe", "--log-dir", directory, "missing-topic"], 1, "no such topic"),
            (["consume", "--log-dir", directory, "-t", "bad topic!"], 1, "no such topic"),
        ]
        for (arguments, status, message) in cases {
            let result = try runAttune(arguments)
            #expect(result.status == status, "\(arguments): \(result.err)")
            #expect(result.err.contains(message), "\(arguments): \(result.err)")
        }
    }
}
