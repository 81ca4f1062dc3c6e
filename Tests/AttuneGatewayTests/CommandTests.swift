import AttuneEventLog
import AttuneRegistry
import AttuneTestSupport
import Foundation
import Testing

/// `attune keys`, `attune events` and `attune gateway` as a user runs them, from a folder
/// that is not the repository.
struct CommandTests {
    private func attune(_ arguments: [String], in folder: URL) throws -> (status: Int32, out: String, err: String) {
        try runAttune(arguments, in: folder)
    }

    private func folder() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("attune-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    @Test func keysAreCreatedListedAndRevokedWithoutTheSecretEverStored() throws {
        let here = try folder()
        let created = try attune(["keys", "create", "--name", "acme-app", "--tenant", "acme", "--role", "ingest", "--role", "infer"], in: here)
        #expect(created.status == 0, "\(created.err)")
        let secret = created.out.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(secret.hasPrefix("atk_") && secret.count > 40)
        let id = try #require(created.err.split(separator: " ").dropFirst().first.map(String.init))
        #expect(id.hasPrefix("key_"))
        let file = try String(contentsOf: here.appendingPathComponent(".attune/keys.json"), encoding: .utf8)
        #expect(!file.contains(secret))

        let listed = try attune(["keys", "list"], in: here)
        #expect(listed.status == 0 && listed.out.contains(id) && listed.out.contains("tenants=acme") && listed.out.contains("active"))
        #expect(!listed.out.contains(secret))
        #expect(try attune(["keys", "revoke", id], in: here).status == 0)
        #expect(try attune(["keys", "list"], in: here).out.contains("revoked"))
        let unknown = try attune(["keys", "revoke", "key_nothere"], in: here)
        #expect(unknown.status != 0 && unknown.err.contains("no key key_nothere"))
        let noTenant = try attune(["keys", "create", "--name", "x", "--role", "ingest"], in: here)
        #expect(noTenant.status != 0 && noTenant.err.contains("--tenant"))
    }

    @Test func anOpenGatewayRefusesToListenBeyondLoopback() throws {
        let here = try folder()
        #expect(try attune(["topics", "apply"], in: here).status == 0)
        let open = try attune(["gateway", "--host", "0.0.0.0", "--port", "0"], in: here)
        #expect(open.status != 0 && open.err.contains("loopback"), "\(open.err)")
        let missing = try attune(["gateway", "--keys-file", "nowhere.json", "--port", "0"], in: here)
        #expect(missing.status != 0 && missing.err.contains("does not exist"), "\(missing.err)")
    }

    /// Started on an embedded log in another folder, the gateway keeps its state beside that
    /// log (as `attune up --data-dir` does), not in the folder it was started from.
    @Test func theGatewayKeepsItsStateBesideTheLogItServes() async throws {
        let here = try folder()
        #expect(try attune(["topics", "apply", "--log-dir", "data/eventlog"], in: here).status == 0)
        let gateway = Process()
        gateway.executableURL = URL(fileURLWithPath: try attuneExecutable())
        gateway.arguments = ["gateway", "--log-dir", "data/eventlog", "--port", "0"]
        gateway.currentDirectoryURL = here
        gateway.standardOutput = FileHandle.nullDevice
        gateway.standardError = FileHandle.nullDevice
        try gateway.run()
        defer { if gateway.isRunning { gateway.terminate() } }
        let journal = here.appendingPathComponent("data/gateway/idempotency.jsonl").path
        let deadline = ContinuousClock.now + .seconds(30)
        while !FileManager.default.fileExists(atPath: journal) && gateway.isRunning && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(FileManager.default.fileExists(atPath: journal))
        #expect(!FileManager.default.fileExists(atPath: here.appendingPathComponent(".attune").path))
        gateway.terminate()
        gateway.waitUntilExit()
    }

    @Test func eventsPrintsCloudEventsAndResumesAfterACursor() async throws {
        let here = try folder()
        #expect(try attune(["topics", "apply"], in: here).status == 0)
        let log = EmbeddedEventLog(directory: here.appendingPathComponent(".attune/eventlog").path)
        let producer = try log.makeProducer()
        for (adapter, domain) in [("domain/law", nil), ("tenant/acme", "domain/law@1"), ("tenant/bolt", "domain/law@1")] as [(String, String?)] {
            let release = AdapterRelease(adapter: adapter, version: 1, sha256: String(repeating: "b", count: 64), parent: nil, domain: domain,
                                         baseModel: "m", baseModelSHA256: "0", covers: [:], metrics: [:])
            _ = try await producer.send(ProducerRecord(topic: "attune.adapter-events", key: Array(adapter.utf8),
                                                       value: try release.cloudEvent(source: "test")))
        }
        await producer.close()
        let all = try attune(["events"], in: here)
        #expect(all.status == 0)
        let lines = all.out.split(separator: "\n")
        #expect(lines.count == 3)
        let cursors = all.err.split(separator: "\n").filter { $0.hasPrefix("cursor ") }.map { String($0.dropFirst(7)) }
        #expect(cursors.count == 3)
        let resumed = try attune(["events", "--after", cursors[0]], in: here)
        #expect(resumed.out.split(separator: "\n").count == 2)
        let acme = try attune(["events", "--tenant", "acme"], in: here)
        #expect(acme.out.split(separator: "\n").count == 1 && acme.out.contains("acme") && !acme.out.contains("bolt"))
        let law = try attune(["events", "--domain", "law"], in: here)
        #expect(law.out.split(separator: "\n").count == 3)
    }
}
