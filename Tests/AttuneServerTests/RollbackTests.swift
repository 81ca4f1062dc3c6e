import AttuneTestSupport
import Foundation
import Testing

/// Runs one at a time with the other whole-system tests (they each start processes that train and serve).
extension ServerTests {
    /// `attune adapter rollback` against a running system: the earlier weights come back as the
    /// next version, the server swaps to them, and the training worker trains on from them.
    @Suite struct RollbackTests {
        @Test func aRollbackIsServedAndTrainedOn() async throws {
            let up = try RunningUp("rollback")
            let log = ["--log-dir", up.dataDirectory + "/eventlog"]
            _ = try await up.post("/v1/corpora", [#"{"domain":"d1","doc_id":"d","text":"the cat sat on the mat","source":"test"}"#],
                                  headers: ["Idempotency-Key": "rollback-corpus"])

            // One record per post: the worker may train two records posted together as one version
            // or as two, and a record still pending at the rollback would train on into version 4.
            func interactions(_ batch: Int) -> [String] {
                [#"{"id":"r\#(batch)","tenant":"t1","user":"u","time":"2026-12-01T00:00:00Z","prompt":"the cat","response":"sat on the mat"}"#]
            }
            func served() async throws -> [String: Any]? {
                let models = try await up.get("/v1/models").json["data"] as? [[String: Any]] ?? []
                return models.first { $0["id"] as? String == "tenant/t1" }?["attune"] as? [String: Any]
            }
            func waitForVersion(_ version: Int) async throws -> [String: Any] {
                try await waitUntil(.seconds(180), interval: .milliseconds(300)) { (try await served()?["version"] as? Int ?? 0) >= version }
                return try #require(try await served())
            }

            _ = try await up.post("/v1/interactions", interactions(1))
            let first = try await waitForVersion(1)
            _ = try await up.post("/v1/interactions", interactions(2))
            let second = try await waitForVersion(2)
            #expect(second["sha256"] as? String != first["sha256"] as? String)

            let rollback = try runAttune(["adapter", "rollback", "tenant/t1", "--to", "1"] + log)
            #expect(rollback.status == 0, "\(rollback.err)")
            #expect(rollback.out.contains("published tenant/t1@3"), "\(rollback.out)")
            let restored = try await waitForVersion(3)
            #expect(restored["sha256"] as? String == first["sha256"] as? String)
            #expect(restored["previous"] as? String == "tenant/t1@2")
            let metrics = restored["metrics"] as? [String: Any] ?? [:]
            #expect((metrics["rollback_of"] as? NSNumber)?.intValue == 2 && (metrics["restored"] as? NSNumber)?.intValue == 1)

            let answer = try await LoopbackHTTP.request(
                port: up.port, "POST", "/v1/chat/completions",
                body: Data(#"{"model":"tenant/t1","messages":[{"role":"user","content":"the cat"}],"max_tokens":3}"#.utf8),
                headers: ["Content-Type": "application/json"])
            #expect((answer.json["attune"] as? [String: Any])?["version"] as? Int == 3, "\(answer.text)")

            // The owning worker adopted version 3: its next version stands on it.
            _ = try await up.post("/v1/interactions", interactions(3))
            let next = try await waitForVersion(4)
            #expect(next["previous"] as? String == "tenant/t1@3")

            let refused = try runAttune(["adapter", "rollback", "tenant/t1", "--to", "9"] + log)
            #expect(refused.status != 0 && refused.err.contains("--to must name an earlier one"), "\(refused.err)")
            #expect(up.stop() == 0)
        }
    }
}
