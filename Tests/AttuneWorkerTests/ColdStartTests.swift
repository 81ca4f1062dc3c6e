import AttuneEventLog
import AttuneModel
import AttuneRegistry
import AttuneTestSupport
import AttuneTraining
import Foundation
import Testing
@testable import AttuneWorker

/// Tenants of one domain whose answers share a form ("short answer: yes, <word>.") and differ
/// in their word: what a meta-initialization can learn and a new tenant can start from.
private func answers(_ word: String, _ count: Int, builder: ExampleBuilder) -> [TrainingExample] {
    (0..<count).map { builder.interaction(prompt: "question \($0)?", response: "short answer: yes, \(word) \($0).")! }
}

/// Reptile over four tenants gives a starting point from which a fifth tenant's held-out loss
/// is lower than from a fresh adapter, before training (k = 0) and after 5 steps on 3 of its
/// examples: the meta-initialization adapts faster than zero (tiny model, deterministic).
@Test func aMetaInitializationAdaptsFasterThanAFreshAdapter() async throws {
    let base = try RandomModel.load(TinyLogFixture.config)
    let builder = ExampleBuilder(tokenizer: try testTokenizer())
    var config = TrainWorkerConfiguration(baseModel: "tiny.gguf", baseModelSHA256: String(repeating: "0", count: 64))
    config.seqLen = 64
    config.batchSize = 2
    config.learningRate = 5e-3
    config.lora = LoRAConfig(rank: 2, alpha: 4)
    let reptile = Reptile(configuration: config, base: base)
    var settings = MetaLearningSettings()
    settings.iterations = 24
    settings.innerSteps = 3
    let fresh = try LoRAAdapter(config: config.lora, model: base.config, seed: 11)
    let tasks = ["apple", "berry", "cider", "dates"].map { answers($0, 6, builder: builder) }
    let (meta, innerLoss) = try await reptile.learn(tasks, from: fresh, frozen: nil, settings: settings)
    #expect(innerLoss.isFinite && innerLoss > 0)

    let newcomer = answers("eagle", 6, builder: builder)
    let (train, heldOut) = (Array(newcomer.prefix(3)), Array(newcomer.suffix(3)))
    func heldOutLoss(from start: LoRAAdapter, steps: Int) async throws -> Double {
        let adapted = steps > 0 ? try await reptile.adapt(start, frozen: nil, on: train, steps: steps).adapter : start
        return try reptile.evaluate(adapted, frozen: nil, on: heldOut).loss
    }
    for k in [0, 5] {
        let fromMeta = try await heldOutLoss(from: meta, steps: k), fromFresh = try await heldOutLoss(from: fresh, steps: k)
        #expect(fromMeta < fromFresh - 0.05, "k = \(k): held-out loss \(fromMeta) from the meta-initialization vs \(fromFresh) from a fresh adapter")
    }
}

/// `attune meta-init` learns meta/law from the tenants standing on domain/law and publishes it;
/// a worker then starts a new tenant of law from it (its first release names it), while
/// existing tenants continue their own lineage; a domain without enough tenants is a clear error.
private let settings = ["--seq-len", "48", "--batch-size", "2", "--rank", "2"]

private func produce(_ f: TinyLogFixture, _ topic: String, _ key: String, _ values: [String]) async throws {
    let producer = ValidatingProducer(try f.log.makeProducer(), catalog: f.catalog)
    for v in values { _ = try await producer.send(ProducerRecord(topic: topic, key: key, value: v)) }
    await producer.close()
}

private func interactions(_ tenant: String) -> [String] {
    (0..<3).map { #"{"tenant":"\#(tenant)","user":"u","time":"2026-12-01T00:00:0\#($0)Z","prompt":"question \#($0)?","response":"short answer: yes, \#(tenant) \#($0)."}"# }
}

private func trainWorker(_ f: TinyLogFixture) -> [String] {
    ["train-worker", "--model", f.model, "--log-dir", f.logDir, "--idle", "1", "--steps", "1", "--gate-tolerance", "100"] + settings
}

/// domain/law and its tenants t1 and t2, trained by a worker run.
private func lawWithTwoTenants(_ f: TinyLogFixture) async throws {
    try await produce(f, "attune.corpora", "law", (0..<3).map { #"{"domain":"law","doc_id":"d\#($0)","text":"A law text number \#($0).","source":"test"}"# })
    try await produce(f, "attune.interactions", "t1", interactions("t1"))
    try await produce(f, "attune.interactions", "t2", interactions("t2"))
    #expect(try runAttune(trainWorker(f), in: f.dir).status == 0)
}

@Test func aNewTenantStartsFromItsDomainsMetaInitialization() async throws {
    let f = try await TinyLogFixture("coldstart")
    defer { f.remove() }
    try await lawWithTwoTenants(f)
    let worker = trainWorker(f)

    let tooFew = try runAttune(["meta-init", "--domain", "law", "--min-tenants", "3", "--model", f.model, "--log-dir", f.logDir] + settings, in: f.dir)
    #expect(tooFew.status != 0 && tooFew.err.contains("needs at least 3 tenants"), "\(tooFew.err)")
    let meta = try runAttune(["meta-init", "--domain", "law", "--iterations", "4", "--inner-steps", "1", "--model", f.model,
                              "--log-dir", f.logDir] + settings, in: f.dir)
    #expect(meta.status == 0 && meta.out.contains("published meta/law@1 on domain/law@"), "\(meta.out)\(meta.err)")

    try await produce(f, "attune.interactions", "t3", interactions("t3"))
    try await produce(f, "attune.interactions", "t1", [#"{"tenant":"t1","user":"u","time":"2026-12-01T00:01:00Z","prompt":"again?","response":"short answer: yes."}"#])
    #expect(try runAttune(worker, in: f.dir).status == 0)
    let registry = try await AdapterRegistry(log: f.log)
    _ = try await registry.catchUp()
    let t3 = await registry.history(AdapterName.tenant("t3")!).map(\.release)
    let t1 = await registry.history(AdapterName.tenant("t1")!).map(\.release)
    let published = await registry.latest(AdapterName.meta("law")!)
    await registry.close()
    #expect(published?.domain?.hasPrefix("domain/law@") == true && published?.metrics["tenants"] == 2)
    #expect(t3.first?.initialization == "meta/law@1", "the new tenant started from the meta-initialization")
    #expect(t3.first?.domain?.hasPrefix("domain/law@") == true)
    #expect(t1.count >= 2 && t1.allSatisfy { $0.initialization == nil }, "existing tenants keep their lineage")
}

/// `attune meta-init --follow` (every domain) keeps meta/law current: it publishes the first
/// version once two tenants stand on law, the next one when a third arrives (learned from three,
/// continuing from the first), and stops cleanly on SIGTERM.
@Test func aFollowingMetaInitRefreshesAsTenantsAccumulate() async throws {
    let f = try await TinyLogFixture("meta-follow")
    defer { f.remove() }
    try await lawWithTwoTenants(f)
    let errors = f.dir.appendingPathComponent("meta-init.err")
    #expect(FileManager.default.createFile(atPath: errors.path, contents: nil))
    let follower = Process()
    follower.executableURL = URL(fileURLWithPath: try attuneExecutable())
    follower.arguments = ["meta-init", "--follow", "--refresh-after", "1", "--iterations", "2", "--inner-steps", "1",
                          "--model", f.model, "--log-dir", f.logDir] + settings
    follower.currentDirectoryURL = f.dir
    follower.standardOutput = FileHandle.nullDevice
    follower.standardError = try FileHandle(forWritingTo: errors)
    try follower.run()
    defer { if follower.isRunning { follower.terminate() } }

    let registry = try await AdapterRegistry(log: f.log)
    _ = try await registry.catchUp()
    let meta = AdapterName.meta("law")!
    func waitForMeta(_ version: Int) async throws -> AdapterRelease? {
        try await waitUntil(.seconds(180), interval: .milliseconds(200)) {
            _ = try await registry.poll(timeout: .milliseconds(100))
            return await (registry.latest(meta)?.version ?? 0) >= version
        }
        return await registry.latest(meta)
    }
    let first = try await waitForMeta(1)
    #expect(first?.version == 1 && first?.metrics["tenants"] == 2)

    try await produce(f, "attune.interactions", "t3", interactions("t3"))
    #expect(try runAttune(trainWorker(f), in: f.dir).status == 0)
    let second = try await waitForMeta(2)
    await registry.close()
    #expect(second?.version == 2 && second?.metrics["tenants"] == 3 && second?.metrics["standing_tenants"] == 3 && second?.parent == "meta/law@1", "\(String(describing: second))")

    follower.terminate()
    follower.waitUntilExit()
    let log = (try? String(contentsOf: errors, encoding: .utf8)) ?? ""
    #expect(follower.terminationStatus == 0, "\(log)")
    #expect(log.contains("published meta/law@2") && !log.contains("meta/law@3"), "\(log)")
}
