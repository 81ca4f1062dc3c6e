import AttuneEventLog
import AttuneGateway
import AttuneTestSupport
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Testing

/// The SSE events of a stream body: (id, data) in order.
func sseEvents(_ text: String) -> [(id: String, data: String)] {
    text.components(separatedBy: "\n\n").compactMap { block in
        var id: String?, data: [String] = []
        for line in block.split(separator: "\n") {
            if line.hasPrefix("id: ") { id = String(line.dropFirst(4)) }
            if line.hasPrefix("data: ") { data.append(String(line.dropFirst(6))) }
        }
        guard let id, !data.isEmpty else { return nil }
        return (id, data.joined(separator: "\n"))
    }
}

func subject(_ data: String) -> String? {
    (try? JSONSerialization.jsonObject(with: Data(data.utf8)) as? [String: Any])?["subject"] as? String
}

@Suite(.serialized, .sharedBroker) struct GatewayTests {
    /// Bulk NDJSON with two bad lines: the bad ones are refused by line number, the rest land;
    /// the same request retried (idempotency key), then retried again after a gateway restart,
    /// lands nothing new and answers with the first offsets; records with ids dedupe on their
    /// own; the topic holds every accepted record exactly once.
    @Test(arguments: TestTransport.selected)
    func bulkIngestionLandsEveryAcceptedRecordOnce(_ transport: TestTransport) async throws {
        let fixture = try await GatewayFixture(transport, name: "bulk")
        try await fixture.start()
        var lines = (1...20).map { interaction("acme", $0) }
        lines[6] = "{not json"
        lines[11] = #"{"tenant":"acme","user":"u","time":"2026-12-02T10:00:00Z","response":"no prompt"}"#
        let body = Data((lines.joined(separator: "\n") + "\n").utf8)
        let headers = ["Content-Type": "application/x-ndjson", "Idempotency-Key": "batch-1"]

        let first = try await fixture.request("POST", "/v1/interactions", key: "acme", body: body, headers: headers)
        #expect(first.status == 207)
        #expect(first.json["accepted"] as? Int == 18 && first.json["refused"] as? Int == 2)
        let results = try #require(first.json["results"] as? [[String: Any]])
        let refused = results.filter { $0["status"] as? String == "refused" }
        #expect(refused.map { $0["line"] as? Int } == [7, 12])
        #expect(refused.allSatisfy { (($0["error"] as? [String: Any])?["code"] as? String) == "schema_violation" })
        let offsets = results.compactMap { $0["offset"] as? Int }
        #expect(offsets.count == 18)

        let retry = try await fixture.request("POST", "/v1/interactions", key: "acme", body: body, headers: headers)
        #expect(retry.json["accepted"] as? Int == 0 && retry.json["duplicates"] as? Int == 18)
        #expect((retry.json["results"] as? [[String: Any]])?.compactMap { $0["offset"] as? Int } == offsets)

        try await fixture.restart()
        let afterRestart = try await fixture.request("POST", "/v1/interactions", key: "acme", body: body, headers: headers)
        #expect(afterRestart.json["accepted"] as? Int == 0 && afterRestart.json["duplicates"] as? Int == 18)
        #expect((afterRestart.json["results"] as? [[String: Any]])?.compactMap { $0["offset"] as? Int } == offsets)

        // Records with ids, as one JSON array, sent twice; then an id reused for another record.
        let withIDs = Data(("[" + (1...5).map { interaction("acme", 100 + $0, id: "r\($0)") }.joined(separator: ",") + "]").utf8)
        let a = try await fixture.request("POST", "/v1/interactions", key: "acme", body: withIDs)
        #expect(a.status == 200 && a.json["accepted"] as? Int == 5)
        let b = try await fixture.request("POST", "/v1/interactions", key: "acme", body: withIDs)
        #expect(b.status == 200 && b.json["duplicates"] as? Int == 5)
        let reused = try await fixture.request("POST", "/v1/interactions", key: "acme", body: Data(interaction("acme", 999, id: "r1").utf8))
        #expect(reused.status == 422 && reused.text.contains("idempotency_key_reused"))

        let records = try await fixture.records("attune.interactions", atLeast: 23)
        #expect(records.count == 23, "18 + 5 accepted records, each once")
        let keys = records.compactMap { $0.headers.text(named: IdempotencyJournal.header) }
        #expect(Set(keys).count == 23)
        #expect(records.allSatisfy { $0.key == Array("acme".utf8) })
        await fixture.finish()
    }

    /// A gateway that crashed between producing a record and journaling its offset: the retry
    /// finds the record on the topic and answers duplicate; a crash before the record landed
    /// sends it.
    @Test func aCrashedAttemptIsSettledFromTheTopic() async throws {
        let fixture = try await GatewayFixture(.embedded, name: "settle")
        let topic = "attune.interactions"
        let partition = Murmur2.partition(forKey: Array("acme".utf8), partitionCount: 12)
        let tp = TopicPartition(topic, partition)
        let landed = Ingestor.idempotencyKey(owner: "acme", recordID: "landed")
        let lost = Ingestor.idempotencyKey(owner: "acme", recordID: "lost")
        let landedBody = interaction("acme", 1, id: "landed"), lostBody = interaction("acme", 2, id: "lost")
        func digest(_ text: String) -> String { Ingestor.fingerprint(Array(text.utf8)) }
        let journal = try IdempotencyJournal(path: fixture.directory.appendingPathComponent("state/idempotency.jsonl").path)
        try journal.record([(landed, .pending(partition: tp, from: 0, fingerprint: digest(landedBody))),
                            (lost, .pending(partition: tp, from: 0, fingerprint: digest(lostBody)))])
        journal.close()
        let producer = try fixture.log.makeProducer()
        let first = try await producer.send(ProducerRecord(topic: topic, partition: partition, key: Array("acme".utf8),
                                                           value: Array(landedBody.utf8), headers: [EventHeader(IdempotencyJournal.header, landed)]))
        await producer.close()

        try await fixture.start()
        let retryLanded = try await fixture.request("POST", "/v1/interactions", key: "acme", body: Data(landedBody.utf8))
        #expect(retryLanded.json["duplicates"] as? Int == 1)
        #expect((retryLanded.json["results"] as? [[String: Any]])?.first?["offset"] as? Int == Int(first.offset))
        let retryLost = try await fixture.request("POST", "/v1/interactions", key: "acme", body: Data(lostBody.utf8))
        #expect(retryLost.json["accepted"] as? Int == 1)
        let records = try await fixture.records(topic, atLeast: 2)
        #expect(records.count == 2)
        await fixture.finish()
    }

    /// Every endpoint refuses a missing key, a revoked key, a key of another tenant and a key
    /// without the role; no answer to one tenant shows another's data; a key over its rate
    /// limit gets 429 with Retry-After.
    @Test func theIsolationMatrix() async throws {
        let fixture = try await GatewayFixture(.embedded, name: "isolation")
        fixture.heartbeat = .seconds(1)
        fixture.idleTimeout = .seconds(2)
        try await fixture.start()
        let acmeRecord = Data(interaction("acme", 1).utf8)
        let corpus = Data(#"{"domain":"law","doc_id":"d1","text":"Rule one.","source":"test"}"#.utf8)

        func expectRefused(_ answer: HTTPAnswer, _ status: Int, _ code: String, sourceLocation: SourceLocation = #_sourceLocation) {
            #expect(answer.status == status, "\(answer.text)", sourceLocation: sourceLocation)
            #expect(((answer.json["error"] as? [String: Any])?["code"] as? String) == code, "\(answer.text)", sourceLocation: sourceLocation)
        }
        for key in [nil, "revoked", "atk_not-a-key"] as [String?] {
            let code = key == nil ? "missing_api_key" : "invalid_api_key"
            expectRefused(try await fixture.request("POST", "/v1/interactions", key: key, body: acmeRecord), 401, code)
            expectRefused(try await fixture.request("POST", "/v1/corpora", key: key, body: corpus), 401, code)
            expectRefused(try await fixture.request("GET", "/v1/events?from=earliest", key: key), 401, code)
            expectRefused(try await fixture.request("GET", "/v1/me", key: key), 401, code)
        }
        // Another tenant's key.
        let foreign = try await fixture.request("POST", "/v1/interactions", key: "bolt", body: acmeRecord)
        expectRefused(foreign, 403, "tenant_forbidden")
        #expect((foreign.json["results"] as? [[String: Any]])?.first?["status"] as? String == "refused")
        expectRefused(try await fixture.request("GET", "/v1/events?tenant=acme", key: "bolt"), 403, "tenant_forbidden")
        expectRefused(try await fixture.request("GET", "/v1/events?adapter=tenant/acme", key: "bolt"), 403, "tenant_forbidden")
        // A key without the role.
        expectRefused(try await fixture.request("POST", "/v1/interactions", key: "acmeInferOnly", body: acmeRecord), 403, "missing_role")
        expectRefused(try await fixture.request("GET", "/v1/events", key: "acmeInferOnly"), 403, "missing_role")
        expectRefused(try await fixture.request("POST", "/v1/corpora", key: "acme", body: corpus), 403, "missing_role")
        // The right keys.
        #expect(try await fixture.request("POST", "/v1/interactions", key: "acme", body: acmeRecord).status == 200)
        #expect(try await fixture.request("POST", "/v1/interactions", key: "bolt", body: Data(interaction("bolt", 2).utf8)).status == 200)
        #expect(try await fixture.request("POST", "/v1/corpora", key: "admin", body: corpus).status == 200)
        let me = try await fixture.request("GET", "/v1/me", key: "acme")
        #expect(me.json["tenants"] as? [String] == ["acme"] && me.json["roles"] as? [String] == ["infer", "ingest", "subscribe"])

        // Events: bolt sees its own and the domain's, never acme's.
        try await fixture.announce("tenant/acme", version: 1, domain: "domain/law@1")
        try await fixture.announce("tenant/bolt", version: 1, domain: "domain/law@1")
        try await fixture.announce("domain/law", version: 1)
        let seen = try await LoopbackHTTP.readStream(port: fixture.port, "/v1/events?from=earliest",
                                                     headers: ["Authorization": "Bearer \(fixture.secrets["bolt"]!)"], timeout: .seconds(20)) { text in
            text.contains("tenant/bolt") && text.contains("domain/law") && text.contains(": heartbeat")
        }
        #expect(seen.status == 200)
        #expect(seen.text.contains(": heartbeat"), "\(seen.text)")
        #expect(Set(sseEvents(seen.text).compactMap { subject($0.data) }) == ["tenant/bolt", "domain/law"])
        #expect(!seen.text.contains("acme"))

        // A client that stops halfway through its request is cut off after the idle timeout; an
        // event stream quieter than that (heartbeats every second) is not.
        #expect(try await LoopbackHTTP.serverCloses(port: fixture.port, after: "POST /v1/interactions HTTP/1.1\r\nHost: x\r\n",
                                                    timeout: .seconds(20)))
        let long = try await LoopbackHTTP.readStream(port: fixture.port, "/v1/events",
                                                     headers: ["Authorization": "Bearer \(fixture.secrets["bolt"]!)"], timeout: .seconds(20)) {
            $0.components(separatedBy: ": heartbeat").count > 4
        }
        #expect(long.text.components(separatedBy: ": heartbeat").count > 4, "the stream outlives the idle timeout")

        // Rate limit: two requests a minute, the third is refused.
        let limited = try fixture.keys.create(name: "slow", tenants: ["acme"], roles: [.ingest], rateLimit: 2)
        for _ in 0..<2 {
            #expect(try await fixture.request("GET", "/v1/me", key: limited.secret).status == 200)
        }
        let over = try await fixture.request("POST", "/v1/interactions", key: limited.secret, body: acmeRecord)
        expectRefused(over, 429, "rate_limit_exceeded")
        #expect(Int(over.headers["retry-after"] ?? "") ?? 0 >= 1)
        await fixture.finish()
    }

    /// Given a certificate, the gateway speaks HTTPS (checked with curl against that certificate)
    /// and nothing in the clear.
    @Test func theGatewaySpeaksHTTPSWhenGivenACertificate() async throws {
        let fixture = try await GatewayFixture(.embedded, name: "tls")
        let cert = fixture.directory.appendingPathComponent("cert.pem").path, key = fixture.directory.appendingPathComponent("key.pem").path
        func run(_ tool: String, _ arguments: [String]) throws -> (Int32, String) {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            p.arguments = [tool] + arguments
            let out = Pipe()
            p.standardOutput = out
            p.standardError = FileHandle.nullDevice
            try p.run()
            let data = out.fileHandleForReading.readDataToEndOfFile()
            p.waitUntilExit()
            return (p.terminationStatus, String(decoding: data, as: UTF8.self))
        }
        let (made, _) = try run("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "1",
                                            "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"])
        #expect(made == 0)
        try await fixture.start(tls: TLSFiles(certificateChain: cert, privateKey: key))
        let (status, body) = try run("curl", ["-s", "--cacert", cert, "-H", "Authorization: Bearer \(fixture.secrets["acme"]!)",
                                              "https://127.0.0.1:\(fixture.port)/v1/me"])
        #expect(status == 0 && body.contains("\"tenants\":[\"acme\"]"), "\(body)")
        let (plainStatus, _) = try run("curl", ["-s", "--max-time", "5", "http://127.0.0.1:\(fixture.port)/v1/me"])
        #expect(plainStatus != 0, "no answer in the clear")
        #expect(throws: APIError.self) { try TLSFiles.serverBuilder(TLSFiles(certificateChain: key + ".missing", privateKey: key)) }
        await fixture.finish()
    }

    /// A gateway whose Kafka broker goes away answers 503 with Retry-After (never "accepted"),
    /// keeps answering health checks, is unready while the log does not answer, and takes
    /// records (and is ready) again once the broker is back — no restart. Runs its own broker (the test broker keeps its topics across a restart).
    @Test(.enabled(if: TestTransport.bootstrap != nil || TestTransport.kafkaRequired))
    func aGatewayThatLosesTheBrokerAnswers503AndRecovers() async throws {
        let broker = try RestartableBroker()
        try await broker.start()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("attune-gw-outage-\(UUID().uuidString)")
        let fixture = try await GatewayFixture(log: KafkaEventLog(KafkaConfiguration(bootstrapServers: [broker.bootstrap])), prefix: "",
                                               directory: directory)
        fixture.ackTimeout = .seconds(3)
        try await fixture.start()
        #expect(try await fixture.request("POST", "/v1/interactions", key: "acme", body: Data(interaction("acme", 1).utf8)).status == 200)

        broker.kill()
        let down = try await fixture.request("POST", "/v1/interactions", key: "acme", body: Data(interaction("acme", 2).utf8))
        #expect(down.status == 503, "\(down.text)")
        #expect(((down.json["error"] as? [String: Any])?["code"] as? String) == "log_unavailable")
        #expect(down.headers["retry-after"] != nil)
        #expect(try await fixture.request("GET", "/healthz", key: nil).status == 200)
        #expect(await waitUntil(.seconds(60), interval: .seconds(1)) { (try? await fixture.request("GET", "/readyz", key: nil).status) == 503 },
                "/readyz answers 503 while the log does not answer")

        try await broker.start()
        #expect(await waitUntil(.seconds(120), interval: .seconds(1)) { (try? await fixture.request("GET", "/readyz", key: nil).status) == 200 },
                "/readyz answers 200 again")
        var back: HTTPAnswer?
        let recovered = await waitUntil(.seconds(120), interval: .seconds(1)) {
            back = try? await fixture.request("POST", "/v1/interactions", key: "acme", body: Data(interaction("acme", 3).utf8))
            return back?.status == 200
        }
        #expect(recovered, "\(back?.text ?? "")")
        await fixture.finish()
        broker.kill()
    }

    /// A subscriber that drops its connection and reconnects with the last id it processed gets
    /// every later event, none twice, in order — filters included.
    @Test(arguments: TestTransport.selected)
    func theEventStreamResumesWithoutGapOrDuplicate(_ transport: TestTransport) async throws {
        let fixture = try await GatewayFixture(transport, name: "resume")
        try await fixture.start()
        for v in 1...3 { try await fixture.announce("tenant/acme", version: v, domain: "domain/law@1") }
        try await fixture.announce("tenant/bolt", version: 1, domain: "domain/law@1")
        let auth = ["Authorization": "Bearer \(fixture.secrets["acme"]!)"]
        let first = try await LoopbackHTTP.readStream(port: fixture.port, "/v1/events?from=earliest&adapter=tenant/acme", headers: auth) {
            sseEvents($0).count >= 2
        }
        let received = sseEvents(first.text)
        #expect(received.count >= 2)
        let processed = Array(received.prefix(2))
        #expect(processed.compactMap { subject($0.data) } == ["tenant/acme", "tenant/acme"])

        for v in 4...5 { try await fixture.announce("tenant/acme", version: v, domain: "domain/law@1") }
        var resumeHeaders = auth
        resumeHeaders["Last-Event-ID"] = processed[1].id
        let second = try await LoopbackHTTP.readStream(port: fixture.port, "/v1/events?adapter=tenant/acme", headers: resumeHeaders) {
            sseEvents($0).count >= 3
        }
        func version(_ data: String) -> String? {
            ((try? JSONSerialization.jsonObject(with: Data(data.utf8)) as? [String: Any])?["data"] as? [String: Any])?["version"] as? String
        }
        let all = processed + sseEvents(second.text)
        #expect(all.compactMap { version($0.data) } == ["1", "2", "3", "4", "5"])
        #expect(Set(all.map(\.id)).count == 5)
        let malformed = try await fixture.request("GET", "/v1/events", key: "acme", headers: ["Last-Event-ID": "7.7"])
        #expect(malformed.status == 400)
        await fixture.finish()
    }
}
