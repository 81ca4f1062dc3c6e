import AttuneEventLog
import AttuneGateway
import AttuneModel
import AttuneRegistry
import AttuneTraining
import AttuneTensor
import AttuneTestSupport
import Foundation
import Testing
@testable import AttuneServer
@testable import AttuneServing

/// Whether the official OpenAI client can run here (`pip install openai`); with
/// `ATTUNE_REQUIRE_OPENAI=1` (CI) its test must run.
private let openAIClient: Bool = {
    if ProcessInfo.processInfo.environment["ATTUNE_REQUIRE_OPENAI"] == "1" { return true }
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    p.arguments = ["python3", "-c", "import openai"]
    p.standardOutput = FileHandle.nullDevice
    p.standardError = FileHandle.nullDevice
    guard (try? p.run()) != nil else { return false }
    p.waitUntilExit()
    return p.terminationStatus == 0
}()

/// A deployment with `domain/law@1`, `tenant/acme@1` and `@2` (both on law@1) published by a
/// real training worker, served on a loopback port.
private func publishedDeployment(_ transport: TestTransport = .embedded, name: String,
                                 weights: WeightMode = .quantized) async throws -> ServingFixture {
    let fixture = try await ServingFixture(transport, name: name, weights: weights)
    try await fixture.train(domainDocuments: 4, interactions: ["acme": 4])
    try await fixture.train(interactions: ["acme": 3])
    try await fixture.serve()
    return fixture
}

@Suite(.serialized, .sharedBroker) struct ServerTests {
    /// The official OpenAI Python client, as a user runs it: completions and chat, plain and
    /// streamed with usage, pinned and unpinned models, the model list, typed errors.
    @Test(.enabled(if: openAIClient)) func theOpenAIClientDrivesTheServer() async throws {
        let fixture = try await publishedDeployment(name: "openai")
        defer { Task { await fixture.stop() } }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", repository.appendingPathComponent("ops/serve/openai_check.py").path,
                       "--base-url", fixture.baseURL + "/v1", "--model", "tenant/acme", "--pinned", "tenant/acme@1"]
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        #expect(p.terminationStatus == 0)
        let summary = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        #expect((summary["completion"] as? [String: Any])?["model"] as? String == "tenant/acme@2", "the newest version serves")
        #expect(summary["pinned"] as? String == "tenant/acme@1")
        #expect(summary["models"] as? [String] == ["base", "domain/law", "tenant/acme"])
        #expect((summary["errors"] as? [String: Int]) == ["unknown model": 404, "unknown version": 404, "max_tokens 0": 400, "too long": 400])
    }

    /// `attune adapter list`, `history` and `pull` against the published topics: every adapter
    /// with its latest version, a lineage oldest first, and a pulled version that loads as the
    /// PEFT folder it was published as (same sha256 of the weights file).
    @Test func theAdapterCommandsListHistoryAndPull() async throws {
        let fixture = try await ServingFixture(.embedded, name: "cli")
        defer { Task { await fixture.stop() } }
        try await fixture.train(domainDocuments: 4, interactions: ["acme": 4])
        try await fixture.train(interactions: ["acme": 3])
        let logDir = fixture.directory.appendingPathComponent("log").path
        func attune(_ arguments: [String]) throws -> (status: Int32, out: String, err: String) { try runAttune(arguments) }
        let list = try attune(["adapter", "list", "--log-dir", logDir])
        #expect(list.status == 0)
        let lines = list.out.split(separator: "\n").map(String.init)
        #expect(lines.map { $0.split(separator: " ").first.map(String.init) ?? "" } == ["domain/law@1", "tenant/acme@2"])
        #expect(lines.last?.contains("parent:tenant/acme@1") == true && lines.last?.contains("domain:domain/law@1") == true)

        let history = try attune(["adapter", "history", "tenant/acme", "--log-dir", logDir, "--json"])
        let releases = try history.out.split(separator: "\n").map { try JSONDecoder().decode(AdapterRelease.self, from: Data($0.utf8)) }
        #expect(releases.map(\.version) == [1, 2] && releases[1].parent == releases[0].id)

        let out = fixture.directory.appendingPathComponent("pulled").path
        let pull = try attune(["adapter", "pull", "tenant/acme@1", "--out", out, "--log-dir", logDir])
        #expect(pull.status == 0, "\(pull.err)")
        let weights = try Data(contentsOf: URL(fileURLWithPath: out).appendingPathComponent("adapter_model.safetensors"))
        #expect(AdapterRelease.digest(Array(weights)) == releases[0].sha256)
        let lora = try PEFTAdapterFile.load(from: URL(fileURLWithPath: out), model: tiny)
        #expect(lora.config.rank == 2)

        let missing = try attune(["adapter", "pull", "tenant/acme@9", "--out", out, "--log-dir", logDir])
        #expect(missing.status == 1 && missing.err.contains("no version 9"))
        let nobody = try attune(["adapter", "history", "tenant/nobody", "--log-dir", logDir])
        #expect(nobody.status == 1 && nobody.err.contains("no adapter named tenant/nobody"))
    }

    /// Keys bind inference to tenants (a key for bolt cannot use, score or list acme's adapter;
    /// no key gets 401), and the loop closes through one server: interactions and a correction
    /// posted through the gateway, the tenant's next version announced on `/v1/events` covering
    /// exactly those records, then a completion served by that version.
    @Test func keysBindInferenceToTenantsAndTheLoopClosesThroughTheGateway() async throws {
        let fixture = try await ServingFixture(.embedded, name: "tenancy")
        defer { Task { await fixture.stop() } }
        try await fixture.train(domainDocuments: 4, interactions: ["acme": 3, "bolt": 3])
        let keys = try KeyStore(path: fixture.directory.appendingPathComponent("keys.json").path, create: true)
        let acme = try keys.create(name: "acme", tenants: ["acme"], roles: [.ingest, .infer, .subscribe]).secret
        let bolt = try keys.create(name: "bolt", tenants: ["bolt"], roles: [.infer]).secret
        try await fixture.serve(keys: keys)

        func post(_ path: String, _ json: [String: Any], key: String?) async throws -> HTTPAnswer {
            try await fixture.http("POST", path, body: try JSONSerialization.data(withJSONObject: json), key: key)
        }
        func code(_ answer: HTTPAnswer) -> String? { (answer.json["error"] as? [String: Any])?["code"] as? String }
        let ask: [String: Any] = ["model": "tenant/acme", "prompt": "Question 1?", "max_tokens": 2]
        for path in ["/v1/completions", "/v1/score"] {
            #expect(code(try await post(path, ask.merging(["text": "Answer 1."]) { a, _ in a }, key: nil)) == "missing_api_key")
        }
        #expect(try await fixture.http("GET", "/v1/models", body: nil).status == 401)
        let foreign = try await post("/v1/completions", ask, key: bolt)
        #expect(foreign.status == 403 && code(foreign) == "tenant_forbidden")
        #expect(code(try await post("/v1/completions", ask.merging(["model": "tenant/acme@1"]) { _, b in b }, key: bolt)) == "tenant_forbidden")
        #expect(code(try await post("/v1/chat/completions", ["model": "tenant/acme", "messages": [["role": "user", "content": "hi"]]],
                                    key: bolt)) == "tenant_forbidden")
        #expect(code(try await post("/v1/score", ["model": "tenant/acme", "text": "Answer 1."], key: bolt)) == "tenant_forbidden")
        func models(_ key: String) async throws -> [String] {
            ((try await fixture.http("GET", "/v1/models", body: nil, key: key)).json["data"] as? [[String: Any]] ?? []).compactMap { $0["id"] as? String }
        }
        #expect(try await models(bolt) == ["base", "domain/law", "tenant/bolt"])
        #expect(try await models(acme) == ["base", "domain/law", "tenant/acme"])
        #expect(try await post("/v1/completions", ask, key: acme).headers["x-attune-adapter"] == "tenant/acme@1")
        #expect(code(try await post("/v1/interactions", ["tenant": "acme", "user": "u", "time": "2026-12-02T10:00:00Z", "prompt": "p",
                                                          "response": "r"], key: bolt)) == "missing_role")

        // The loop: two interactions and a correction in through the gateway …
        let lines = [
            #"{"tenant":"acme","user":"ann","time":"2026-12-02T10:00:00Z","prompt":"Where is the office?","response":"On Main Street."}"#,
            #"{"tenant":"acme","user":"ann","time":"2026-12-02T10:01:00Z","prompt":"When does it open?","response":"At nine."}"#,
            #"{"tenant":"acme","user":"bob","time":"2026-12-02T10:02:00Z","prompt":"Who answers the phone?","response":"Nobody.","feedback":"down","correction":"The front desk, from nine to five."}"#,
        ]
        let ingested = try await LoopbackHTTP.request(port: fixture.port, "POST", "/v1/interactions", body: Data(lines.joined(separator: "\n").utf8),
                                                      headers: ["Authorization": "Bearer \(acme)", "Content-Type": "application/x-ndjson"])
        #expect(ingested.status == 200 && ingested.json["accepted"] as? Int == 3, "\(ingested.text)")
        let landed = (ingested.json["results"] as? [[String: Any]] ?? []).compactMap { r -> (Int, Int64)? in
            guard let p = r["partition"] as? Int, let o = r["offset"] as? Int else { return nil }
            return (p, Int64(o))
        }
        // … the worker trains on them and announces tenant/acme@2 on the event stream …
        async let stream = LoopbackHTTP.readStream(port: fixture.port, "/v1/events?from=earliest&adapter=tenant/acme",
                                                   headers: ["Authorization": "Bearer \(acme)"], timeout: .seconds(600)) {
            $0.contains(#""version":"2""#)
        }
        try await fixture.train()
        let events = try await stream
        let announced = try #require(events.text.components(separatedBy: "\n").first { $0.hasPrefix("data: ") && $0.contains(#""version":"2""#) })
        let event = try #require(AdapterEvent(Array(announced.dropFirst(6).utf8)))
        #expect(event.release.adapter == "tenant/acme" && event.release.version == 2)
        for (partition, offset) in landed {
            #expect(event.release.covers(TopicPartition(fixture.prefix + "attune.interactions", partition), offset),
                    "the new version covers the ingested record at \(partition)@\(offset)")
        }
        // … and serves the next completion.
        let served = await waitUntil(.seconds(60)) {
            (try? await post("/v1/completions", ask, key: acme).headers["x-attune-adapter"]) == "tenant/acme@2"
        }
        #expect(served, "tenant/acme@2 serves once announced")
    }

    /// With `--log-interactions`, each completion a tenant adapter serves (plain or streamed)
    /// lands on `attune.interactions` under its completion id; `POST /v1/feedback` turns a
    /// rating and correction for that id into an interaction of the tenant, once.
    @Test func servedCompletionsAreLoggedAndFeedbackBecomesAnInteraction() async throws {
        let fixture = try await ServingFixture(.embedded, name: "feedback")
        defer { Task { await fixture.stop() } }
        try await fixture.train(domainDocuments: 4, interactions: ["acme": 3])
        try await fixture.serve(logInteractions: true)
        let plain = try await fixture.post("/v1/completions", json: ["model": "tenant/acme", "prompt": "Question 9?", "max_tokens": 4,
                                                                     "user": "ann"])
        let id = try #require(plain.json["id"] as? String)
        let text = try #require((plain.json["choices"] as? [[String: Any]])?.first?["text"] as? String)
        let streamed = try await fixture.post("/v1/chat/completions", json: ["model": "tenant/acme", "stream": true, "max_tokens": 3,
                                                                             "messages": [["role": "user", "content": "Hello there"]]])
        let streamedID = try #require(streamed.text.components(separatedBy: "\n").first { $0.hasPrefix("data: {") }
            .flatMap { try? JSONSerialization.jsonObject(with: Data($0.dropFirst(6).utf8)) as? [String: Any] }?["id"] as? String)
        let baseAnswer = try await fixture.post("/v1/completions", json: ["model": "base", "prompt": "Question 9?", "max_tokens": 2])
        let baseID = try #require(baseAnswer.json["id"] as? String)

        let rated = try await fixture.post("/v1/feedback", json: ["id": id, "rating": "down", "correction": "The answer is nine."])
        #expect(rated.status == 200 && rated.json["status"] as? String == "accepted" && rated.json["model"] as? String == "tenant/acme@1",
                "\(rated.text)")
        let again = try await fixture.post("/v1/feedback", json: ["id": id, "rating": "down", "correction": "The answer is nine."])
        #expect(again.json["status"] as? String == "duplicate")
        #expect(try await fixture.post("/v1/feedback", json: ["id": id, "rating": "up"]).status == 422)
        #expect(try await fixture.post("/v1/feedback", json: ["id": baseID, "rating": "up"]).status == 404, "base completions are not tenant data")
        #expect(try await fixture.post("/v1/feedback", json: ["id": "cmpl-nothing", "rating": "up"]).status == 404)
        #expect(try await fixture.post("/v1/feedback", json: ["id": id, "rating": "meh"]).status == 400)

        let values = try await fixture.values(of: "attune.interactions") { values in
            Set(values.compactMap { $0["id"] as? String }).isSuperset(of: [id, streamedID, id + "#feedback"])
        }
        let byID = Dictionary(values.compactMap { v in (v["id"] as? String).map { ($0, v) } }, uniquingKeysWith: { a, _ in a })
        #expect(byID[id]?["tenant"] as? String == "acme" && byID[id]?["user"] as? String == "ann")
        #expect(byID[id]?["prompt"] as? String == "Question 9?" && byID[id]?["response"] as? String == text)
        #expect(byID[id]?["served_by"] as? String == "tenant/acme@1" && byID[id + "#feedback"]?["served_by"] as? String == "tenant/acme@1",
                "logged completions and their feedback name the version that served them (attune eval acceptance counts by it)")
        #expect(byID[streamedID]?["prompt"] as? String == "Hello there" && byID[streamedID]?["user"] as? String == "anonymous")
        #expect(byID[id + "#feedback"]?["feedback"] as? String == "down")
        #expect(byID[id + "#feedback"]?["correction"] as? String == "The answer is nine.")
        #expect(byID[baseID] == nil)
        #expect(values.filter { ($0["id"] as? String) == id + "#feedback" }.count == 1)
    }

    /// Bad input gets a clear 4xx with OpenAI's error object; health, readiness, metrics, the
    /// OpenAPI document and scoring answer.
    @Test func badRequestsGetClearErrorsAndTheOtherRoutesAnswer() async throws {
        let fixture = try await publishedDeployment(name: "errors")
        defer { Task { await fixture.stop() } }
        func expectError(_ answer: HTTPAnswer, _ status: Int, _ fragment: String, param: String? = nil,
                         sourceLocation: SourceLocation = #_sourceLocation) {
            #expect(answer.status == status, sourceLocation: sourceLocation)
            let error = answer.json["error"] as? [String: Any]
            #expect((error?["message"] as? String)?.contains(fragment) == true, "\(String(decoding: answer.body, as: UTF8.self))",
                    sourceLocation: sourceLocation)
            #expect(error?["type"] is String && error?.keys.contains("param") == true, sourceLocation: sourceLocation)
            if let param { #expect(error?["param"] as? String == param, sourceLocation: sourceLocation) }
        }
        expectError(try await fixture.post("/v1/completions", raw: Data("{not json".utf8)), 400, "not valid JSON")
        expectError(try await fixture.post("/v1/completions", json: ["prompt": "x"]), 400, "missing field \"model\"", param: "model")
        expectError(try await fixture.post("/v1/completions", json: ["model": "base", "prompt": 3]), 400,
                    "wrong type at prompt: expected a string or a list of strings", param: "prompt")
        expectError(try await fixture.post("/v1/completions", json: ["model": "tenant/nobody", "prompt": "x"]), 404, "no adapter named tenant/nobody")
        expectError(try await fixture.post("/v1/completions", json: ["model": "tenant/acme@7", "prompt": "x"]), 404, "no version 7")
        expectError(try await fixture.post("/v1/completions", json: ["model": "gpt-4", "prompt": "x"]), 404, "is not base")
        expectError(try await fixture.post("/v1/completions", json: ["model": "base", "prompt": "x", "max_tokens": 0]), 400, "max_tokens",
                    param: "max_tokens")
        expectError(try await fixture.post("/v1/completions", json: ["model": "base", "prompt": "x", "max_tokens": 100_000]), 400, "max_tokens")
        expectError(try await fixture.post("/v1/completions", json: ["model": "base", "prompt": "x", "n": 2]), 400, "n must be 1")
        expectError(try await fixture.post("/v1/completions", json: ["model": "base", "prompt": "x", "temperature": 7]), 400, "temperature")
        expectError(try await fixture.post("/v1/completions", json: ["model": "base", "prompt": String(repeating: "long ", count: 40)]),
                    400, "context length")
        expectError(try await fixture.post("/v1/chat/completions", json: ["model": "base", "messages": []]), 400, "messages")
        expectError(try await fixture.post("/v1/chat/completions", json: ["model": "base", "messages": [["role": "robot", "content": "x"]]]),
                    400, "role", param: "messages[0].role")
        expectError(try await fixture.post("/v1/completions", raw: Data(repeating: 0x20, count: 70_000)), 413, "limit")
        let wrongMethod = try await fixture.get("/v1/completions")
        expectError(wrongMethod, 405, "/v1/completions answers POST, not GET")
        #expect(wrongMethod.headers["allow"] == "POST")
        let capture = try await fixture.http("PUT", "/v1/subscriptions/sub-1", body: nil)
        expectError(capture, 405, "not PUT")
        #expect(capture.headers["allow"] == "DELETE")
        expectError(try await fixture.get("/v1/nowhere"), 404, "no route GET /v1/nowhere")

        #expect(try await fixture.get("/healthz").status == 200)
        #expect(try await fixture.get("/readyz").status == 200)
        let openapi = try await fixture.get("/openapi.json")
        #expect(openapi.status == 200 && (openapi.json["openapi"] as? String)?.hasPrefix("3.1") == true)
        let paths = try #require(openapi.json["paths"] as? [String: Any])
        for path in ["/v1/completions", "/v1/chat/completions", "/v1/models", "/v1/score", "/healthz", "/readyz", "/metrics"] {
            #expect(paths[path] != nil, "\(path) documented")
        }

        let base = try await fixture.post("/v1/score", json: ["model": "base", "text": "Answer 1 for acme."])
        let tenant = try await fixture.post("/v1/score", json: ["model": "tenant/acme", "text": "Answer 1 for acme."])
        #expect(base.status == 200 && tenant.status == 200)
        let basePPL = try #require(base.json["perplexity"] as? Double), tenantPPL = try #require(tenant.json["perplexity"] as? Double)
        #expect(basePPL > 1 && tenantPPL > 1 && tenantPPL != basePPL, "the adapter changes the score")
        #expect((tenant.json["attune"] as? [String: Any])?["model"] as? String == "tenant/acme@2")

        let completion = try await fixture.post("/v1/completions", json: ["model": "tenant/acme", "prompt": "Question 2?", "max_tokens": 4,
                                                                          "temperature": 0])
        #expect(completion.status == 200 && completion.headers["x-attune-adapter"] == "tenant/acme@2")
        #expect(completion.headers["x-attune-adapter-sha256"]?.count == 64)
        let metrics = String(decoding: try await fixture.get("/metrics").body, as: UTF8.self)
        for name in ["vllm:num_requests_running", "vllm:time_to_first_token_seconds", "vllm:e2e_request_latency_seconds",
                     "vllm:generation_tokens_total", "attune_adapter_cache_bytes", "attune_adapter_cache_misses_total"] {
            #expect(metrics.contains(name), "metric \(name)")
        }
    }

    /// Admission: requests whose KV memory does not fit wait for room instead of failing (all
    /// finish, one at a time, when the budget holds one), a request larger than the whole
    /// budget is a 400, and past the queue limit new requests get 429 with Retry-After.
    @Test func requestsWaitForKVMemoryAndAFullQueueAnswers429() async throws {
        let fixture = try await ServingFixture(.embedded, name: "admission-queue")
        defer { Task { await fixture.stop() } }
        try await fixture.train(domainDocuments: 4)
        let perRequest = KVCache.bytes(config: tiny, positions: 12 + 40, precision: fixture.model.kvPrecision)
        try await fixture.serve(kvMemory: perRequest + perRequest / 2)
        let answers = try await withThrowingTaskGroup(of: HTTPAnswer.self) { group in
            for i in 0..<6 {
                group.addTask {
                    try await fixture.post("/v1/completions", json: ["model": "domain/law", "prompt": "Question \(i) is?",
                                                                    "max_tokens": 40, "temperature": 0])
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(answers.allSatisfy { $0.status == 200 }, "\(answers.map(\.status))")
        let huge = try await fixture.post("/v1/completions", json: ["model": "base", "prompt": "Q", "max_tokens": 120])
        #expect(huge.status == 400 && String(decoding: huge.body, as: UTF8.self).contains("KV cache"))

        let full = try await ServingFixture(.embedded, name: "full-queue")
        defer { Task { await full.stop() } }
        try await full.train(domainDocuments: 4)
        try await full.serve(maxWaiting: 0)
        let refused = try await full.post("/v1/completions", json: ["model": "domain/law", "prompt": "Q", "max_tokens": 4])
        #expect(refused.status == 429 && refused.headers["retry-after"] == "1")
        #expect((refused.json["error"] as? [String: Any])?["code"] as? String == "overloaded")
        let metrics = String(decoding: try await full.get("/metrics").body, as: UTF8.self)
        #expect(metrics.contains("attune_requests_rejected_total 1"))
    }

    /// The adapter cache stays within `--adapter-memory` by evicting least recently used
    /// versions no request holds; a leased version and a pinned adapter are never evicted, and
    /// an evicted version loads again on its next request.
    @Test func theAdapterCacheEvictsLeastRecentlyUsedButNeverLeasedOrPinned() async throws {
        let fixture = try await ServingFixture(.embedded, name: "cache")
        defer { Task { await fixture.stop() } }
        try await fixture.train(domainDocuments: 4, interactions: ["acme": 4, "bolt": 4])
        // The fixture's adapters (rank 2) as the server holds them: 8-bit weights and row scales.
        let oneAdapter = ServingLoRA(try LoRAAdapter(config: LoRAConfig(rank: 2, alpha: 4), model: tiny, seed: 1), precision: .int8).byteCount
        try await fixture.serve(adapterMemory: oneAdapter * 2, pinned: [AdapterName.domain("law")!])
        let cache = fixture.cache!
        let acme = try await cache.acquire("tenant/acme")
        let bolt = try await cache.acquire("tenant/bolt")
        #expect(Set(await cache.resident().map(\.id)) == ["domain/law@1", "tenant/acme@1", "tenant/bolt@1"],
                "over budget rather than evicting what running requests hold")
        await cache.release(acme)
        #expect(Set(await cache.resident().map(\.id)) == ["domain/law@1", "tenant/bolt@1"], "the unleased tenant goes; the pinned domain stays")
        await cache.release(bolt)
        #expect(await cache.resident().reduce(0) { $0 + $1.bytes } <= oneAdapter * 2)
        let again = try await cache.acquire("tenant/acme")
        let reloaded = Set(await cache.resident().map(\.id))
        #expect(again.model.id == "tenant/acme@1" && reloaded.contains("tenant/acme@1"), "loaded again")
        await cache.release(again)
        let metrics = String(decoding: try await fixture.get("/metrics").body, as: UTF8.self)
        #expect(metrics.contains("attune_adapter_cache_evictions_total"))
    }

    /// Requests on different adapters batched into the same decode steps produce what each
    /// produces alone: the same greedy tokens, and logits within 1e-3 of a forward pass per
    /// request (short prompts and one-token steps multiply by the stored weights, batched or alone; the
    /// adapter terms are grouped differently). In both weight modes: quantized decode multiplies
    /// 8-bit activations with the interleaved kernels.
    @Test(arguments: [WeightMode.dense, .quantized])
    func batchedEqualsSeparate(weights: WeightMode) async throws {
        let fixture = try await publishedDeployment(name: "batch", weights: weights)
        defer { Task { await fixture.stop() } }
        #expect(fixture.model.prompts == (weights == .quantized ? .int8 : .fp32), "prompts as a server loads them")
        let models = ["base", "domain/law", "tenant/acme", "tenant/acme@1", "tenant/acme", "domain/law"]
        let prompts = ["Question 1?", "The law rule", "Question 9?", "Answer 3 for", "Q", "say it well"]
        let ids = prompts.map { fixture.tokenizer.encode($0, parseSpecial: false) }
        let engine = fixture.server.engine

        func run(_ i: Int) async throws -> (InferenceEngine.Stream, String) {
            let lease = try await fixture.cache.acquire(models[i])
            return (try engine.submit(InferenceRequest(prompt: ids[i], maxTokens: 20, lease: lease)), lease.model.id)
        }
        func tokens(_ stream: InferenceEngine.Stream) async -> [Int32] {
            for await event in stream.events { if case .finished(let s) = event { return s.tokens } }
            return []
        }
        var streams: [(InferenceEngine.Stream, String)] = []
        for i in models.indices { streams.append(try await run(i)) }
        var together: [[Int32]] = []
        for (stream, _) in streams { together.append(await tokens(stream)) }
        var alone: [[Int32]] = []
        for i in models.indices { alone.append(await tokens(try await run(i).0)) }
        #expect(together == alone)
        #expect(Set(streams.map(\.1)) == ["base", "domain/law@1", "tenant/acme@2", "tenant/acme@1"])
        #expect(Set(alone).count > 1, "different adapters and prompts give different outputs")

        // Logits of one mixed forward pass against one pass per sequence.
        var leases: [AdapterLease] = []
        for m in models { leases.append(try await fixture.cache.acquire(m)) }
        let model = fixture.model
        let caches = ids.map { model.makeCache(capacity: $0.count) }
        var rows: [Range<Int>] = []
        for i in ids.indices { rows.append((rows.last?.upperBound ?? 0)..<((rows.last?.upperBound ?? 0) + ids[i].count)) }
        let grouped = RowGroupedAdapter(config: model.config, stacks: leases.map(\.model.layers), rows: rows)
        #expect(grouped.levels.map(\.count) == [1, 3], "one domain group over all its rows; a tenant group per run of one version")
        let mixed = try model.forward(tokens: ids, caches: caches, logits: .last, adapter: grouped)
        var worst: Float = 0
        for (i, lease) in leases.enumerated() {
            let single = try model.forward(tokens: [ids[i]], caches: [model.makeCache(capacity: ids[i].count)], logits: .last,
                                           adapter: lease.model.adapter)
            for (a, b) in zip(mixed[(i * tiny.vocabSize)..<((i + 1) * tiny.vocabSize)], single) { worst = max(worst, abs(a - b)) }
        }
        #expect(worst <= 1e-3, "max |Δlogit| \(worst)")
        for lease in leases { await fixture.cache.release(lease) }
    }

    /// With quantized weights a row's logits do not depend on what else is in its forward pass:
    /// the engine takes new prompts into a step within a `PromptBudget` (with fp32 prompts, which
    /// take sgemm, one prompt per step; with 8-bit prompts any number), and prompts grouped into
    /// steps that way — a prompt beside a one-token row among them — get the logits they get
    /// alone, bit for bit. SmolLM2's widths (576, 1536), where sgemm splits the inner dimension.
    /// A server's base model takes 8-bit prompts where its matrices have the integer kernels
    /// and fp32 prompts where they do not (an f16 GGUF), rather than refusing to start.
    @Test func aServedModelWithoutIntegerKernelsKeepsFP32Prompts() throws {
        let tiny = LlamaConfig(layers: 1, dim: 64, ffnDim: 128, heads: 4, kvHeads: 2, vocabSize: 80, contextLength: 64)
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("attune-fallback-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        for (format, expected) in [(QuantFormat.q4_1, PromptActivations.int8), (.f16, .fp32)] {
            let path = directory.appendingPathComponent("\(format.name).gguf").path
            try RandomModel.write(tiny, to: path, matrixFormat: format, vocabulary: testVocabulary)
            let model = try LlamaModel.forServing(path: path, mode: .quantized)
            #expect(model.prompts == expected, "\(format.name)")
            let logits = try model.forward(tokens: [[1, 2, 3]], caches: [model.makeCache(capacity: 3)])
            #expect(logits.count == tiny.vocabSize && logits.allSatisfy(\.isFinite))
        }
        #expect(throws: ModelError.self) { try LlamaModel(path: directory.appendingPathComponent("\(QuantFormat.f16.name).gguf").path, mode: .quantized, prompts: .int8) }
    }

    @Test(arguments: [PromptActivations.fp32, .int8])
    func promptsStepByStepGetTheBitsTheyGetAlone(prompts: PromptActivations) throws {
        let wide = LlamaConfig(layers: 1, dim: 576, ffnDim: 1536, heads: 9, kvHeads: 3, vocabSize: 80, contextLength: 128)
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("attune-steps-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("tiny.gguf").path
        try RandomModel.write(wide, to: path, vocabulary: testVocabulary)
        let model = try LlamaModel(path: path, mode: .quantized, prompts: prompts)
        var rng = SeededGenerator(seed: 5)
        let ids = [100, 40, 1, 60, 30, 120, 2].map { n in
            (0..<n).map { _ in Int32.random(in: 0..<Int32(wide.vocabSize), using: &rng) }
        }
        var steps: [[Int]] = [[]]
        var budget = PromptBudget(onePrompt: model.batchInvariantPromptsAlone)
        for i in ids.indices {
            if !budget.admit(ids[i].count) {
                steps.append([])
                budget = PromptBudget(onePrompt: model.batchInvariantPromptsAlone)
                let first = budget.admit(ids[i].count)
                #expect(first, "a step takes its first prompt whatever its length")
            }
            steps[steps.count - 1].append(i)
        }
        #expect(steps == (prompts == .fp32 ? [[0], [1, 2], [3], [4], [5], [6]] : [Array(ids.indices)]))
        for step in steps {
            let together = try model.forward(tokens: step.map { ids[$0] }, caches: step.map { model.makeCache(capacity: ids[$0].count) })
            for (k, i) in step.enumerated() {
                let alone = try model.forward(tokens: [ids[i]], caches: [model.makeCache(capacity: ids[i].count)])
                #expect(Array(together[(k * wide.vocabSize)..<((k + 1) * wide.vocabSize)]) == alone, "prompt \(i) in step \(step)")
            }
        }
    }

    /// A decode step's tenant terms (one row per tenant version) are split across the cores:
    /// every row gets exactly what its own adapter adds to it alone, bit for bit, on every
    /// projection.
    @Test func singleRowGroupsAcrossCoresAddWhatEachAdapterAddsAlone() throws {
        var rng = SeededGenerator(seed: 11)
        let adapters = try (0..<6).map { i -> LoRAAdapter in
            let a = try LoRAAdapter(config: LoRAConfig(rank: 8, alpha: 16), model: tiny, seed: UInt64(i))
            for j in 0..<a.parameters.count { a.parameters.pointer[j] = Float.random(in: -0.2...0.2, using: &rng) }
            return a
        }
        let grouped = RowGroupedAdapter(config: tiny, stacks: adapters.enumerated().map { [(id: "tenant/t\($0.offset)@1", adapter: $0.element)] },
                                        rows: adapters.indices.map { $0..<($0 + 1) })
        #expect(grouped.levels.map(\.count) == [6])
        for target in LinearTarget.allCases {
            let (out, inFeatures) = target.shape(tiny)
            let x = (0..<(6 * inFeatures)).map { _ in Float.random(in: -1...1, using: &rng) }
            let start = (0..<(6 * out)).map { _ in Float.random(in: -1...1, using: &rng) }
            var together = start, alone = start
            x.withUnsafeBufferPointer { x in
                grouped.addDelta(layer: 1, target: target, x: x.baseAddress!, m: 6, y: &together)
                alone.withUnsafeMutableBufferPointer { y in
                    for (i, a) in adapters.enumerated() {
                        a.addDelta(layer: 1, target: target, x: x.baseAddress! + i * inFeatures, m: 1, y: y.baseAddress! + i * out)
                    }
                }
            }
            #expect(together == alone, "\(target)")
            #expect(together != start, "\(target): the adapters add something")
        }
    }

    /// A served adapter holds its weights in half precision or in 8 bits with a scale per row:
    /// on every projection it adds what the fp32 adapter adds within its rounding's bound plus
    /// fp32 rounding — half: 2⁻¹⁰ of the terms' magnitude (each weight rounded by at most 2⁻¹¹ of
    /// itself, twice per term); int8: s·Σ_r (|B[o,r]|·δA_r·Σ|x| + δB_r·(|A_r|·|x| + δA_r·Σ|x|)),
    /// δ half a row's step (max|row| / 254) — in half or a quarter of the bytes; a row gets the
    /// same terms alone or in a batch, bit for bit.
    @Test(arguments: AdapterPrecision.allCases)
    func aServedAdapterAddsWhatItsFP32WeightsAdd(precision: AdapterPrecision) throws {
        var rng = SeededGenerator(seed: 12)
        let lora = try LoRAAdapter(config: LoRAConfig(rank: 8, alpha: 16), model: tiny, seed: 3)
        for j in 0..<lora.parameters.count { lora.parameters.pointer[j] = Float.random(in: -0.2...0.2, using: &rng) }
        let served = ServingLoRA(lora, precision: precision)
        let r = lora.config.rank
        let scaleBytes = precision == .int8 ? tiny.layers * LinearTarget.allCases.filter(lora.has).count * 2 * r * 4 : 0
        #expect(served.byteCount == lora.parameterCount * (precision == .int8 ? 1 : 2) + scaleBytes)
        let m = 5
        for target in LinearTarget.allCases {
            let (out, inF) = target.shape(tiny)
            let x = (0..<(m * inF)).map { _ in Float.random(in: -1...1, using: &rng) }
            var exact = [Float](repeating: 0, count: m * out), terms = exact
            lora.addDelta(layer: 1, target: target, x: x, m: m, y: &exact)
            served.addDelta(layer: 1, target: target, x: x, m: m, y: &terms)
            let a = lora.a(1, target), b = lora.b(1, target), s = lora.config.scale
            // Half a step of each row of A and of Bᵀ (int8).
            let halfStepA = (0..<r).map { j in (0..<inF).map { abs(a[j * inF + $0]) }.max()! / 254 }
            let halfStepB = (0..<r).map { j in (0..<out).map { abs(b[$0 * r + j]) }.max()! / 254 }
            for i in 0..<m {
                let ax = (0..<r).map { j in (0..<inF).reduce(Float(0)) { $0 + abs(a[j * inF + $1] * x[i * inF + $1]) } }
                let sumX = (0..<inF).reduce(Float(0)) { $0 + abs(x[i * inF + $1]) }
                for o in 0..<out {
                    let magnitude = (0..<r).reduce(Float(0)) { $0 + abs(b[o * r + $1]) * ax[$1] } * s
                    let bound: Float
                    switch precision {
                    case .half: bound = magnitude / 1024
                    case .int8:
                        bound = s * (0..<r).reduce(Float(0)) { acc, j in
                            acc + abs(b[o * r + j]) * halfStepA[j] * sumX + halfStepB[j] * (ax[j] + halfStepA[j] * sumX)
                        } * 1.01
                    }
                    #expect(abs(terms[i * out + o] - exact[i * out + o]) <= bound + magnitude * 1e-5 + 1e-6,
                            "\(precision) \(target) row \(i) output \(o): \(terms[i * out + o]) vs \(exact[i * out + o])")
                }
                var alone = [Float](repeating: 0, count: out)
                x.withUnsafeBufferPointer { served.addDelta(layer: 1, target: target, x: $0.baseAddress! + i * inF, m: 1, y: &alone) }
                #expect(alone == Array(terms[(i * out)..<((i + 1) * out)]), "\(precision) \(target) row \(i) alone")
            }
            #expect(terms != [Float](repeating: 0, count: m * out), "\(target): the adapter adds something")
        }
    }

    /// A request admitted on a version finishes on it however many swaps happen meanwhile: its
    /// lease binds the loaded weights, so it produces exactly what a request pinned to that
    /// version produces, while requests admitted after the swap get the new version.
    @Test func aRequestFinishesOnItsAdmissionVersion() async throws {
        let fixture = try await ServingFixture(.embedded, name: "admission")
        defer { Task { await fixture.stop() } }
        try await fixture.train(domainDocuments: 4, interactions: ["acme": 4])
        try await fixture.serve()
        let prompt = fixture.tokenizer.encode("Question 5?", parseSpecial: false)
        func generate(_ lease: AdapterLease) async throws -> [Int32] {
            for await event in try fixture.server.engine.submit(InferenceRequest(prompt: prompt, maxTokens: 30, lease: lease)).events {
                if case .finished(let s) = event { return s.tokens }
            }
            return []
        }
        let admitted = try await fixture.cache.acquire("tenant/acme")
        #expect(admitted.model.id == "tenant/acme@1")
        try await fixture.train(interactions: ["acme": 3])
        let swapped = await waitUntil { await fixture.cache.currentVersion(AdapterName.tenant("acme")!)?.version == 2 }
        #expect(swapped, "version 2 swapped in while a request holds version 1")
        let onAdmission = try await generate(admitted)
        let pinned = try await generate(try await fixture.cache.acquire("tenant/acme@1"))
        let after = try await fixture.cache.acquire("tenant/acme")
        #expect(after.model.id == "tenant/acme@2")
        let onNew = try await generate(after)
        #expect(onAdmission == pinned)
        #expect(onNew != pinned, "version 2 answers differently")
    }

    /// Hot swap under continuous load, on the embedded log and on Kafka: while clients keep
    /// requesting a tenant, two new versions are published by the training worker and one
    /// corrupted version (bytes that do not match its sha256) is announced. No request fails,
    /// every response names the version that served it, versions never go backwards for new
    /// requests, both new versions are served, and the corrupted one is refused while the last
    /// good one keeps serving.
    @Test(arguments: TestTransport.selected)
    func hotSwapUnderLoadNeverFailsOrGoesBackwards(_ transport: TestTransport) async throws {
        let fixture = try await ServingFixture(transport, name: "hotswap")
        defer { Task { await fixture.stop() } }
        try await fixture.train(domainDocuments: 4, interactions: ["acme": 4])
        try await fixture.serve()
        let clients = Clients()
        let load = Task {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for c in 0..<3 {
                    group.addTask {
                        var i = 0
                        while !clients.stopped {
                            i += 1
                            let answer = try await fixture.post("/v1/completions", json: [
                                "model": "tenant/acme", "prompt": "Question \(i)?", "max_tokens": 12, "temperature": 0,
                                "stream": i % 2 == 0])
                            clients.record(client: c, status: answer.status, version: answer.headers["x-attune-adapter"] ?? "")
                        }
                    }
                }
                try await group.waitForAll()
            }
        }
        #expect(await waitUntil { clients.versions.contains("tenant/acme@1") })
        try await fixture.train(interactions: ["acme": 3])
        #expect(await waitUntil { clients.versions.contains("tenant/acme@2") }, "version 2 served")
        try await fixture.train(interactions: ["acme": 3])
        #expect(await waitUntil { clients.versions.contains("tenant/acme@3") }, "version 3 served")

        let v3 = try #require(await fixture.registry.latest(AdapterName.tenant("acme")!))
        var bytes = try await fixture.registry.weights(of: v3)
        bytes[bytes.count / 2] ^= 0xff
        var v4 = v3
        v4.version = 4
        v4.parent = v3.id
        let producer = try fixture.log.makeProducer()
        _ = try await producer.send(ProducerRecord(topic: fixture.prefix + "attune.adapters", key: Array(v4.adapter.utf8), value: bytes,
                                                   headers: try v4.headers()))
        _ = try await producer.send(ProducerRecord(topic: fixture.prefix + "attune.adapter-events", key: Array(v4.adapter.utf8),
                                                   value: try v4.cloudEvent(source: "test/corruptor")))
        await producer.close()
        #expect(await waitUntil {
            String(decoding: (try? await fixture.get("/metrics").body) ?? Data(), as: UTF8.self)
                .contains("attune_adapter_versions_refused_total 1")
        }, "the corrupted version is refused")
        let servedBefore = clients.count
        #expect(await waitUntil { clients.count >= servedBefore + 6 })
        clients.stop()
        try await load.value

        #expect(clients.failures == 0, "no request failed")
        #expect(!clients.versions.contains("tenant/acme@4"), "the corrupted version never served")
        #expect(clients.lastVersions.allSatisfy { $0 == "tenant/acme@3" }, "the last good version keeps serving")
        for (c, seen) in clients.perClient.enumerated() {
            let numbers = seen.compactMap { Int($0.split(separator: "@").last ?? "") }
            #expect(numbers == numbers.sorted(), "client \(c): versions never go backwards")
        }
    }
}

/// What the load clients saw.
private final class Clients: @unchecked Sendable {
    private let lock = NSLock()
    private var stopFlag = false
    private var seen: [[String]] = [[], [], []]
    private var failed = 0

    var stopped: Bool { lock.withLock { stopFlag } }
    func stop() { lock.withLock { stopFlag = true } }
    func record(client: Int, status: Int, version: String) {
        lock.withLock {
            if status == 200 { seen[client].append(version) } else { failed += 1 }
        }
    }
    var versions: Set<String> { lock.withLock { Set(seen.flatMap { $0 }) } }
    var count: Int { lock.withLock { seen.reduce(0) { $0 + $1.count } } }
    var failures: Int { lock.withLock { failed } }
    var perClient: [[String]] { lock.withLock { seen } }
    var lastVersions: [String] { lock.withLock { seen.compactMap(\.last) } }
}
