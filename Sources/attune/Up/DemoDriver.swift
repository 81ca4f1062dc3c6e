import AttuneGateway
import AttuneRegistry
import Foundation
import ServiceLifecycle

/// `attune up --demo`: drives the running system through its public HTTP API as a user
/// would — a domain corpus and two tenants' interactions in, each adapter version out as it
/// is announced, then the same question to every model and held-out loss side by side.
/// Records carry stable idempotency keys, so a second run adds nothing and goes straight to
/// the answers once the versions covering them exist.
struct DemoDriver: Service {
    let port: @Sendable () async -> Int?
    let host: String
    let console: Console
    let data: DemoData
    let keys: KeyStore?
    let topicPrefix: String
    let timeout: Duration

    func run() async throws {
        guard let port = await port() else { throw APIClient.Failure(description: "the server did not start listening") }
        var demoKey: (id: String, secret: String)?
        if let keys {
            let created = try keys.create(name: "attune-up-demo", tenants: ["*"], roles: [.admin, .ingest, .infer, .subscribe])
            demoKey = (created.key.id, created.secret)
        }
        defer { if let keys, let demoKey { _ = try? keys.revoke(id: demoKey.id) } }
        let api = APIClient(base: "http://\(host):\(port)", key: demoKey?.secret)

        var expected: [String: Set<String>] = [:]
        console.line("== 1. a domain corpus in: \(data.trainDocuments.count) paragraphs of \(DemoData.licenses.joined(separator: ", ")) "
                     + "(/usr/share/common-licenses) → POST /v1/corpora; \(data.heldOutDocuments.count) held out")
        let documents = data.trainDocuments.map { document in
            ["domain": DemoData.domain, "doc_id": document.id, "text": document.text, "source": "common-licenses"]
        }
        expected["domain/\(DemoData.domain)"] = try await ingest(api, "/v1/corpora", topic: "attune.corpora", documents,
                                                                 idempotencyKey: "attune-up-demo-corpus-\(documents.count)")
        console.line("== 2. interactions in for \(DemoData.tenants.count) tenants → POST /v1/interactions; 2 per tenant held out")
        for tenant in DemoData.tenants {
            let records = (data.trainExchanges[tenant] ?? []).enumerated().map { i, exchange in
                ["id": "attune-up-demo-\(tenant)-\(i)", "tenant": tenant, "user": "\(tenant)-user-\(i % 3)",
                 "time": "2026-12-01T09:\(String(format: "%02d", i)):00Z", "prompt": exchange.prompt, "response": exchange.response,
                 "feedback": "up"]
            }
            expected["tenant/\(tenant)"] = try await ingest(api, "/v1/interactions", topic: "attune.interactions", records, idempotencyKey: nil)
        }

        console.line("== 3. training: each version as it is announced (GET /v1/events, adapter.updated)")
        let inputs = expected
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await follow(api, until: inputs) }
            group.addTask {
                try await Task.sleep(for: timeout)
                throw APIClient.Failure(description: "the demo's inputs were not all trained within \(timeout); "
                                        + "see the log file, or raise --demo-timeout")
            }
            try await group.next()
            group.cancelAll()
        }

        let models = ["base", "domain/\(DemoData.domain)"] + DemoData.tenants.map { "tenant/\($0)" }
        console.line("== 4. the same question to every model → POST /v1/chat/completions")
        console.line("   \(DemoData.question)")
        for model in models {
            let answer = try await api.post("/v1/chat/completions", json: [
                "model": model, "messages": [["role": "user", "content": DemoData.question]], "max_tokens": 40, "temperature": 0,
            ])
            let served = (answer["attune"] as? [String: Any]).flatMap { a in (a["version"] as? Int).map { "@\($0)" } } ?? ""
            let text = ((answer["choices"] as? [[String: Any]])?.first?["message"] as? [String: Any])?["content"] as? String ?? ""
            console.line("   \((model + served).padding(toLength: 22, withPad: " ", startingAt: 0)) → \(text.split(whereSeparator: \.isNewline).joined(separator: " "))")
        }
        try await heldOutLoss(api, models: models)
        console.line("== done. The system keeps running under `attune up` without --demo; the API: http://\(host):\(port)/v1")
    }

    /// Posts records as NDJSON; returns the "topic[partition]@offset" of every accepted or duplicate one.
    private func ingest(_ api: APIClient, _ path: String, topic: String, _ records: [[String: String]],
                        idempotencyKey: String?) async throws -> Set<String> {
        let body = try records.map { String(decoding: try JSONSerialization.data(withJSONObject: $0, options: [.sortedKeys]), as: UTF8.self) }
            .joined(separator: "\n")
        let answer = try await api.post(path, Data(body.utf8), contentType: "application/x-ndjson",
                                        headers: idempotencyKey.map { [("Idempotency-Key", $0)] } ?? [])
        var positions = Set<String>()
        var accepted = 0, duplicates = 0
        for result in answer["results"] as? [[String: Any]] ?? [] {
            guard let partition = result["partition"] as? Int, let offset = result["offset"] as? Int else {
                throw APIClient.Failure(description: "\(path) refused a demo record: \(result)")
            }
            positions.insert("\(topicPrefix + topic)[\(partition)]@\(offset)")
            if result["status"] as? String == "duplicate" { duplicates += 1 } else { accepted += 1 }
        }
        console.line("   \(path): \(accepted) accepted" + (duplicates > 0 ? ", \(duplicates) already there from an earlier run" : ""))
        return positions
    }

    /// Prints every announced version (with its gate metrics from /v1/models) until each
    /// adapter's versions cover all of its demo records.
    private func follow(_ api: APIClient, until expected: [String: Set<String>]) async throws {
        var missing = expected
        for try await json in api.events("/v1/events?from=earliest") {
            guard let event = try? JSONSerialization.jsonObject(with: json) as? [String: Any], let data = event["data"] as? [String: Any], let adapter = data["adapter"] as? String,
                  let version = data["version"] as? String else { continue }
            var covered = 0
            for (partition, numbers) in data["covers"] as? [String: [[NSNumber]]] ?? [:] {
                for range in numbers.map({ $0.map(\.intValue) }) where range.count == 2 && range[0] <= range[1] {
                    covered += range[1] - range[0] + 1
                    for offset in range[0]...range[1] { missing[adapter]?.remove("\(partition)@\(offset)") }
                }
            }
            let stands = AdapterName(parsing: adapter)?.kind == .tenant ? (data["domain"] as? String ?? "base") : "base"
            let previous = (data["parent"] as? String).map { ", after \($0)" } ?? ""
            console.line("   \(adapter)@\(version) on \(stands)\(previous), \(covered) records" + (try await metrics(api, adapter, version)))
            if missing.values.allSatisfy(\.isEmpty) { return }
        }
    }

    /// The version's gate metrics as /v1/models lists them (once the server has read the version).
    private func metrics(_ api: APIClient, _ adapter: String, _ version: String) async throws -> String {
        var found: [String: NSNumber]?
        for _ in 0..<10 where found == nil {
            let list = try await api.get("/v1/models")
            if let card = (list["data"] as? [[String: Any]])?.first(where: { $0["id"] as? String == adapter }),
               let attune = card["attune"] as? [String: Any], "\(attune["version"] ?? "")" == version {
                found = attune["metrics"] as? [String: NSNumber]
            } else {
                try await Task.sleep(for: .milliseconds(300))
            }
        }
        guard let numbers = found, let loss = numbers["heldout_loss"]?.doubleValue else { return "" }
        let m = numbers.mapValues(\.doubleValue)
        var text = String(format: " · held-out loss %.3f", loss)
        if let parent = m["heldout_loss_parent"] { text += String(format: " (parent %.3f)", parent) }
        if let replay = m["replay_loss"] { text += String(format: " · replay %.3f", replay) }
        return text
    }

    /// Mean loss per token of every model on each held-out set: the domain's paragraphs and
    /// each tenant's held-out answers (scored as answers to their prompts).
    private func heldOutLoss(_ api: APIClient, models: [String]) async throws {
        console.line("== 5. held-out loss (mean negative log-likelihood per token, lower is better) → POST /v1/score")
        var sets: [(String, [[String: Any]])] = [("licenses", data.heldOutDocuments.map { ["text": $0.text] })]
        for tenant in DemoData.tenants {
            sets.append((tenant, (data.heldOutExchanges[tenant] ?? []).map {
                ["text": $0.response, "messages": [["role": "user", "content": $0.prompt]]]
            }))
        }
        console.line("   " + "held out".padding(toLength: 10, withPad: " ", startingAt: 0)
                     + models.map { $0.padding(toLength: 16, withPad: " ", startingAt: 0) }.joined())
        for (name, items) in sets {
            var row = "   " + name.padding(toLength: 10, withPad: " ", startingAt: 0)
            var losses: [String: Double] = [:]
            for model in models {
                var nll = 0.0, tokens = 0
                for item in items {
                    var request = item
                    request["model"] = model
                    let score = try await api.post("/v1/score", json: request)
                    nll -= (score["log_likelihood"] as? NSNumber)?.doubleValue ?? 0
                    tokens += (score["tokens"] as? NSNumber)?.intValue ?? 0
                }
                losses[model] = nll / Double(max(tokens, 1))
                row += String(format: "%-16.3f", losses[model]!)
            }
            console.line(row + verdict(name, losses))
        }
    }

    private func verdict(_ set: String, _ loss: [String: Double]) -> String {
        let base = loss["base"] ?? 0, domain = loss["domain/\(DemoData.domain)"] ?? 0
        guard let own = loss["tenant/\(set)"] else { return domain < base ? "  domain < base ✓" : "  domain ≥ base ✗" }
        return own < domain && domain < base ? "  personalized < domain < base ✓" : "  personalized < domain < base ✗"
    }
}
