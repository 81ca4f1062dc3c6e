import AttuneEventLog
import Foundation
import Testing
@testable import AttuneRegistry

@Suite struct AdapterNameTests {
    @Test func namesAndReferencesParse() {
        #expect(AdapterName(parsing: "tenant/acme") == AdapterName.tenant("acme"))
        #expect(AdapterName(parsing: "domain/legal")?.kind == .domain)
        #expect(AdapterName(parsing: "tenant/") == nil && AdapterName(parsing: "acme") == nil && AdapterName(parsing: "user/x") == nil)
        #expect(AdapterName(parsing: "tenant/a\u{7}b") == nil, "no control characters")
        #expect(AdapterName(parsing: "tenant/" + String(repeating: "x", count: 129)) == nil)
        #expect(AdapterReference(parsing: "tenant/acme@12") == AdapterReference(AdapterName.tenant("acme")!, version: 12))
        #expect(AdapterReference(parsing: "tenant/ann@example.com")?.name.id == "ann@example.com", "an @ not followed by digits is the id's")
        #expect(AdapterReference(parsing: "tenant/ann@example.com@3")?.version == 3)
        #expect(AdapterReference(parsing: "tenant/acme@0") == nil)
        #expect(AdapterReference(parsing: "tenant/acme@12")?.description == "tenant/acme@12")
        #expect(AdapterRelease.parseID("domain/law@4")?.name == "domain/law")
        let side = AdapterReference(parsing: "tenant/acme~replay-2026-12-03@2")
        #expect(side?.version == 2 && side?.name.isSideLineage == true && side?.name.liveID == "acme")
        #expect(AdapterName.tenant("acme")?.isSideLineage == false && AdapterName.tenant("acme")?.liveID == "acme")
    }
}

/// Writes releases the way training workers do (weights + release headers on
/// `attune.adapters`, then the CloudEvent) and reads them back through the registry.
@Suite struct AdapterRegistryTests {
    private func release(_ name: String, _ version: Int, _ bytes: [UInt8], domain: String? = nil) -> AdapterRelease {
        AdapterRelease(adapter: name, version: version, sha256: AdapterRelease.digest(bytes),
                       parent: version > 1 ? "\(name)@\(version - 1)" : nil, domain: domain, baseModel: "m", baseModelSHA256: "0",
                       covers: [TopicPartition("attune.interactions", 0): [OffsetRange(single: Int64(version))]], metrics: ["loss": 1.5])
    }

    /// With the weights it read last kept for their first fetch (a limit of 1 MiB) and without
    /// (0: every fetch reads the topic again), the same bytes come back, verified either way.
    @Test(arguments: [0, 1 << 20])
    func aVersionIsLiveOnceStoredAndAnnouncedAndItsBytesAreVerified(recentWeights: Int) async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("attune-registry-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let log = EmbeddedEventLog(directory: dir)
        let admin = try log.makeAdmin()
        try await admin.createTopic(TopicSpec(name: "attune.adapters", partitions: 2))
        try await admin.createTopic(TopicSpec(name: "attune.adapter-events", partitions: 2))
        await admin.close()
        let producer = try log.makeProducer()
        func store(_ r: AdapterRelease, _ bytes: [UInt8]) async throws {
            _ = try await producer.send(ProducerRecord(topic: "attune.adapters", key: Array(r.adapter.utf8), value: bytes, headers: try r.headers()))
        }
        func announce(_ r: AdapterRelease) async throws {
            _ = try await producer.send(ProducerRecord(topic: "attune.adapter-events", key: Array(r.adapter.utf8), value: try r.cloudEvent(source: "t")))
        }
        let w1: [UInt8] = [1, 2, 3], w2: [UInt8] = [4, 5, 6]
        let v1 = release("domain/law", 1, w1), v2 = release("domain/law", 2, w2)
        try await store(v1, w1)
        try await announce(v1)
        try await store(v2, w2)

        let registry = try await AdapterRegistry(log: log, recentWeights: recentWeights)
        let live = try await registry.catchUp()
        #expect(live.map(\.id) == ["domain/law@1"], "version 2 is stored but not announced")
        let law = AdapterName.domain("law")!
        #expect(await registry.latest(law)?.version == 1)
        #expect(await registry.history(law).map(\.announced) == [true, false])
        #expect(try await registry.weights(of: v1) == w1)
        #expect(try await registry.weights(of: v1) == w1, "a second fetch reads the topic")
        let stored = await registry.stored(from: 0)
        #expect(stored.releases.map(\.id) == ["domain/law@1", "domain/law@2"] && stored.next == 2, "stored, announced or not, in order")

        try await announce(v2)
        var became: [AdapterRelease] = []
        for _ in 0..<100 where became.isEmpty { became += try await registry.poll(timeout: .milliseconds(50)) }
        #expect(became.map(\.id) == ["domain/law@2"])
        #expect(try await registry.resolve(AdapterReference(law)).version == 2)
        #expect(try await registry.resolve(AdapterReference(law, version: 1)).sha256 == v1.sha256)
        #expect(await registry.latest(law)?.metrics == ["loss": 1.5], "the full release record, not the event's summary")
        await #expect(throws: RegistryError.self) { try await registry.resolve(AdapterReference(law, version: 9)) }
        await #expect(throws: RegistryError.self) { try await registry.resolve(AdapterReference(AdapterName.tenant("x")!)) }

        // Bytes that do not match the announced sha256 are refused on fetch.
        let v3 = release("domain/law", 3, [7, 7, 7])
        try await store(v3, [7, 7, 8])
        try await announce(v3)
        _ = try await registry.catchUp()
        #expect(await registry.stored(from: stored.next).releases.map(\.id) == ["domain/law@3"], "only what was stored since")
        do {
            _ = try await registry.weights(of: v3)
            Issue.record("corrupt bytes must not be returned")
        } catch let error as RegistryError {
            #expect(error.kind == .corrupt)
        }
        #expect(try await registry.lag() == 0)
        await registry.close()
        await producer.close()
    }
}
