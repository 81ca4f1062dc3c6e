import AttuneTestSupport
import Foundation
import Testing

/// Runs one at a time with the other whole-system tests (they each start processes that train and serve).
extension ServerTests {
    /// `attune up` on Kafka (a training worker and an inference worker with the gateway) while its
    /// broker is killed for 30 seconds and started again: no process exits, `/readyz` goes unready
    /// and back, writes during the outage are refused (503), and every record acknowledged before
    /// or after is trained into exactly one version, with versions 1, 2, 3… per adapter.
    @Suite struct FaultToleranceTests {
        @Test(.enabled(if: TestTransport.bootstrap != nil || TestTransport.kafkaRequired))
        func aThirtySecondBrokerOutageLosesNothingAndStopsNothing() async throws {
            let broker = try RestartableBroker()
            try await broker.start()
            defer { broker.kill() }
            let errors = FileManager.default.temporaryDirectory.appendingPathComponent("attune-outage-\(UUID().uuidString).log")
            _ = FileManager.default.createFile(atPath: errors.path, contents: nil)
            defer { try? FileManager.default.removeItem(at: errors) }
            let up = try RunningUp("outage", extra: ["--transport", "kafka", "--bootstrap", broker.bootstrap],
                                   errors: try FileHandle(forWritingTo: errors))
            func status(_ path: String) async -> Int { (try? await up.get(path).status) ?? 0 }
            #expect(await waitUntil(.seconds(120)) { await status("/readyz") == 200 })

            var expected: [String: Set<String>] = [:]
            func record(_ answer: HTTPAnswer, topic: String, adapter: (Int) -> String) {
                for (i, result) in (answer.json["results"] as? [[String: Any]] ?? []).enumerated() {
                    if let partition = result["partition"] as? Int, let offset = result["offset"] as? Int {
                        expected[adapter(i), default: []].insert("\(topic)[\(partition)]@\(offset)")
                    }
                }
            }
            func interactions(_ wave: Int) -> [String] {
                ["t1", "t2"].flatMap { tenant in (0..<2).map {
                    #"{"id":"w\#(wave)-\#(tenant)-\#($0)","tenant":"\#(tenant)","user":"u","time":"2026-12-01T00:00:00Z","prompt":"the cat","response":"sat on the mat"}"#
                } }
            }
            record(try await up.post("/v1/corpora", [#"{"domain":"d1","doc_id":"a","text":"the cat sat on the mat","source":"t"}"#],
                                     headers: ["Idempotency-Key": "outage-corpus"]), topic: "attune.corpora") { _ in "domain/d1" }
            record(try await up.post("/v1/interactions", interactions(1)), topic: "attune.interactions") { $0 < 2 ? "tenant/t1" : "tenant/t2" }
            #expect(try await waitUntil(.seconds(600), interval: .seconds(1)) { try await Self.uncovered(expected, port: up.port).isEmpty },
                    "the first wave was trained before the outage")

            broker.kill()
            let down = ContinuousClock.now
            var unready = false, refused = false, attempt = 0
            while ContinuousClock.now - down < .seconds(30) {
                attempt += 1
                #expect(up.process.isRunning, "attune up exited during the outage")
                #expect(await status("/healthz") == 200)
                if await status("/readyz") == 503 { unready = true }
                let body = Data(interactions(100 + attempt).joined(separator: "\n").utf8)
                if let answer = try? await LoopbackHTTP.request(port: up.port, "POST", "/v1/interactions", body: body,
                                                               headers: ["Content-Type": "application/x-ndjson"]), answer.status == 503 {
                    refused = true
                }
                try await Task.sleep(for: .seconds(2))
            }
            #expect(unready, "/readyz stayed ready while the broker was down")
            #expect(refused, "the gateway accepted records while the broker was down")

            try await broker.start()
            #expect(await waitUntil(.seconds(180), interval: .seconds(1)) { await status("/readyz") == 200 }, "/readyz did not come back")
            var second: HTTPAnswer?
            #expect(await waitUntil(.seconds(120), interval: .seconds(1)) {
                second = try? await up.post("/v1/interactions", interactions(2))
                return second != nil
            })
            if let second { record(second, topic: "attune.interactions") { $0 < 2 ? "tenant/t1" : "tenant/t2" } }
            let missing = try await waitUntil(.seconds(600), interval: .seconds(1)) { try await Self.uncovered(expected, port: up.port).isEmpty }
                ? [] : try await Self.uncovered(expected, port: up.port)
            #expect(missing.isEmpty, "never trained: \(missing); what the fleet logged about their adapters:\n\(Self.lines(of: errors, about: missing))")

            let releases = try await Self.announced(port: up.port)
            for (adapter, positions) in expected {
                for position in positions {
                    #expect(releases.filter { $0.adapter == adapter && $0.covers.contains(position) }.count == 1, "\(adapter) \(position)")
                }
            }
            for (adapter, list) in Dictionary(grouping: releases, by: \.adapter) {
                #expect(list.map(\.version).sorted() == Array(1...list.count), "\(adapter) versions")
            }
            #expect(up.process.isRunning)
            #expect(up.stop() == 0)
        }

        struct Announced {
            var adapter: String
            var version: Int
            var covers: Set<String>
        }

        /// Every version announced so far (a repeated announcement counted once, by its event id).
        static func announced(port: Int) async throws -> [Announced] {
            let stream = try await LoopbackHTTP.readStream(port: port, "/v1/events?from=earliest", timeout: .seconds(3)) { _ in false }
            var seen = Set<String>(), releases: [Announced] = []
            for line in stream.text.split(separator: "\n") where line.hasPrefix("data: ") {
                guard let event = try? JSONSerialization.jsonObject(with: Data(line.dropFirst(6).utf8)) as? [String: Any],
                      let id = event["id"] as? String, seen.insert(id).inserted, let data = event["data"] as? [String: Any],
                      let adapter = data["adapter"] as? String, let version = Int(data["version"] as? String ?? "") else { continue }
                var covers = Set<String>()
                for (partition, ranges) in data["covers"] as? [String: [[NSNumber]]] ?? [:] {
                    for range in ranges where range.count == 2 {
                        for offset in range[0].intValue...range[1].intValue { covers.insert("\(partition)@\(offset)") }
                    }
                }
                releases.append(Announced(adapter: adapter, version: version, covers: covers))
            }
            return releases
        }

        /// The fleet's log lines that name one of the adapters in `missing` ("tenant/t1 …"), or
        /// report a warning or an error: what a failed run leaves to explain itself.
        static func lines(of log: URL, about missing: [String]) -> String {
            let adapters = Set(missing.compactMap { $0.split(separator: " ").first.map(String.init) })
            let text = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
            return text.split(separator: "\n").filter { line in
                adapters.contains { line.contains($0) } || line.contains(" error ") || line.contains(" warning ")
            }.suffix(80).joined(separator: "\n")
        }

        static func uncovered(_ expected: [String: Set<String>], port: Int) async throws -> [String] {
            let releases = try await announced(port: port)
            return expected.flatMap { adapter, positions in
                positions.filter { p in !releases.contains { $0.adapter == adapter && $0.covers.contains(p) } }.map { "\(adapter) \($0)" }
            }
        }
    }
}
