import AttuneRegistry
import Foundation
import Testing
@testable import AttuneGateway

/// The parts of the gateway that need no server: keys, rate limits, cursors, filters, bodies.
struct AccessTests {
    private func temporaryKeyFile() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("attune-keys-\(UUID().uuidString)/keys.json").path
    }

    @Test func theKeyFileKeepsOnlyDigestsAndRevocationReachesOtherReaders() async throws {
        let path = temporaryKeyFile()
        let writer = try KeyStore(path: path, create: true)
        let reader = try KeyStore(path: path)
        let (key, secret) = try writer.create(name: "acme-app", tenants: ["acme"], roles: [.ingest, .infer])
        let file = try String(contentsOfFile: path, encoding: .utf8)
        #expect(!file.contains(secret), "the secret is never stored")
        #expect(file.contains(key.sha256))
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        #expect((attributes[.posixPermissions] as? Int) == 0o600)

        let found = try #require(writer.authenticate(secret: secret))
        #expect(found.keyID == key.id && found.actsFor("acme") && !found.actsFor("bolt"))
        #expect(found.has(.infer) && !found.has(.subscribe) && !found.has(.admin))
        #expect(writer.authenticate(secret: secret + "x") == nil)
        #expect(await waitForReader(reader, secret: secret, present: true))

        try writer.revoke(id: key.id)
        #expect(writer.authenticate(secret: secret) == nil)
        #expect(await waitForReader(reader, secret: secret, present: false), "another process sees the revocation")
        #expect(throws: APIError.self) { try writer.revoke(id: "key_missing") }
        #expect(throws: APIError.self) { try KeyStore(path: temporaryKeyFile()) }
    }

    private func waitForReader(_ reader: KeyStore, secret: String, present: Bool) async -> Bool {
        for _ in 0..<50 {
            if (reader.authenticate(secret: secret) != nil) == present { return true }
            try? await Task.sleep(for: .milliseconds(100))
        }
        return false
    }

    @Test func anAdminActsForEveryTenantAndStarMeansAll() {
        let admin = Principal(keyID: "a", tenants: .only([]), roles: [.admin])
        #expect(admin.actsFor("anyone") && admin.has(.ingest) && admin.has(.subscribe))
        let all = Principal(keyID: "b", tenants: TenantScope(["*"]), roles: [.infer])
        #expect(all.actsFor("x") && !all.has(.ingest))
    }

    @Test func keysUseTheirTenantsTheirSideLineagesAndDomainsButMetaAdaptersOnlyAsAdmins() {
        let acme = Principal(keyID: "k", tenants: .only(["acme"]), roles: [.infer])
        let admin = Principal(keyID: "a", tenants: .only([]), roles: [.admin])
        func name(_ text: String) -> AdapterName { AdapterName(parsing: text)! }
        #expect(acme.mayUse(name("tenant/acme")) && acme.mayUse(name("tenant/acme~replay-1")) && acme.mayUse(name("domain/legal")))
        #expect(!acme.mayUse(name("tenant/bolt")) && !acme.mayUse(name("tenant/bolt~acme")) && !acme.mayUse(name("meta/legal")))
        #expect(admin.mayUse(name("meta/legal")) && admin.mayUse(name("tenant/bolt")))
    }

    @Test func theTokenBucketAllowsABurstThenRefillsAtTheRate() {
        var bucket = TokenBucket(perMinute: 60)
        let t0 = ContinuousClock.now
        var burst: [Double?] = []
        for _ in 0..<60 { burst.append(bucket.take(now: t0)) }
        #expect(burst.allSatisfy { $0 == nil }, "a full minute's allowance at once")
        let wait = bucket.take(now: t0)
        #expect(wait.map { abs($0 - 1) < 1e-9 } == true, "then one token a second")
        let early = bucket.take(now: t0 + .milliseconds(500))
        let onTime = bucket.take(now: t0 + .milliseconds(1100))
        let again = bucket.take(now: t0 + .milliseconds(1100))
        #expect(early != nil && onTime == nil && again != nil)
    }

    @Test func cursorsRoundTripAndRejectForeignShapes() {
        let cursor = EventCursor(next: [3, 0, 12])
        #expect(cursor.description == "3.0.12")
        #expect(EventCursor(parsing: "3.0.12", partitions: 3) == cursor)
        #expect(EventCursor(parsing: "3.0", partitions: 3) == nil)
        #expect(EventCursor(parsing: "3.-1.2", partitions: 3) == nil)
        #expect(EventCursor(parsing: "a.b.c", partitions: 3) == nil)
    }

    @Test func filtersPassOnlyVisibleAndMatchingAdapters() throws {
        func release(_ adapter: String, domain: String? = nil) -> AdapterRelease {
            AdapterRelease(adapter: adapter, version: 1, sha256: String(repeating: "a", count: 64), parent: nil, domain: domain,
                           baseModel: "m", baseModelSHA256: "0", covers: [:], metrics: [:])
        }
        let acme = Principal(keyID: "k", tenants: .only(["acme"]), roles: [.subscribe])
        let everything = EventFilter(principal: acme)
        #expect(everything.admits(release("tenant/acme", domain: "domain/law@1")))
        #expect(everything.admits(release("domain/law")))
        #expect(!everything.admits(release("tenant/bolt", domain: "domain/law@1")))
        let byDomain = EventFilter(domains: ["law"], principal: .open)
        #expect(byDomain.admits(release("tenant/bolt", domain: "domain/law@2")))
        #expect(byDomain.admits(release("domain/law")))
        #expect(!byDomain.admits(release("domain/med")))
        let byAdapter = EventFilter(adapters: [AdapterName.tenant("acme")!], principal: .open)
        #expect(byAdapter.admits(release("tenant/acme")) && !byAdapter.admits(release("domain/law")))
    }

    @Test func bodiesSplitIntoNumberedRecords() throws {
        let ndjson = Array("{\"a\":1}\r\n\n{bad\n  \n{\"b\":2}\n".utf8)
        let lines = try IngestItem.split(ndjson, contentType: "application/x-ndjson")
        #expect(lines.map(\.line) == [1, 3, 5])
        #expect(lines.map { String(decoding: $0.bytes, as: UTF8.self) } == ["{\"a\":1}", "{bad", "{\"b\":2}"])
        #expect(try IngestItem.split(Array("{\"a\":1}".utf8), contentType: "application/json").count == 1)
        #expect(try IngestItem.split(Array("[{\"a\":1},{\"b\":2}]".utf8), contentType: nil).map(\.line) == [1, 2])
        #expect(try IngestItem.split(Array("{\"a\":1}\n{\"b\":2}".utf8), contentType: "application/json").count == 2,
                "NDJSON sent as application/json is still read line by line")
        #expect(throws: APIError.self) { try IngestItem.split(Array("nope".utf8), contentType: "application/json") }
        #expect(throws: APIError.self) { try IngestItem.split(Array("42".utf8), contentType: "application/json") }
    }
}
