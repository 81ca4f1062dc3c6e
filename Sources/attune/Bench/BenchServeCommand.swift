import ArgumentParser
import AttuneEventLog
import AttuneModel
import AttuneRegistry
import AttuneServing
import AttuneTensor
import AttuneTokenizer
import AttuneTraining
import Foundation
import Synchronization
import Logging
import Metrics

/// `attune bench serve`: the inference worker's engine, cache and registry on the real model,
/// in one process over an embedded log, with rank-r adapters published as training workers
/// publish them. Prints one JSON line per measurement (ops/bench/serve.sh makes the table).
struct BenchServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serving benchmark: batched decode across adapters, swap latency, adapter memory.")

    enum Phase: String, ExpressibleByArgument, CaseIterable { case throughput, swap, memory }

    @OptionGroup var modelOptions: ModelOptions
    @Option(help: "throughput, swap or memory.") var phase: Phase = .throughput
    @Option(help: "Tenant adapters (one request each in the mixed batch).") var adapters = 32
    @Option(help: "Concurrent streams to time first-token and inter-token latency at.") var concurrency = "1,8,32"
    @Option(help: "Tokens generated per request.") var newTokens = 64
    @Option(help: "Prompt tokens per request.") var promptTokens = 16
    @Option(help: "LoRA rank (all seven projections).") var rank = 8
    @Option(help: "How loaded adapters hold their weights: int8 or half (as attune serve).") var adapterPrecision: AdapterPrecision = .int8
    @Option(help: "Versions published for the swap-latency phase.") var swaps = 50
    @Option(help: "Adapters held in the cache for the memory phase.") var cached = 100
    @Option(name: .customLong("topics-dir"), help: "Directory of topic definitions and schemas (default: the contracts built into attune).") var topicsDirectory: String?

    func run() async throws {
        let (model, tokenizer) = try modelOptions.loadForServing()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("attune-bench-serve-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        let bench = try await Bench(model: model, tokenizer: tokenizer, directory: directory, topics: topicsDirectory, rank: rank,
                                    precision: adapterPrecision)
        switch phase {
        case .throughput: try await throughput(bench)
        case .swap: try await swapLatency(bench)
        case .memory: try await memory(bench)
        }
        await bench.close()
    }

    // MARK: Phases

    private func throughput(_ bench: Bench) async throws {
        let domain = try await bench.publish("domain/bench", version: 1, seed: 1, domain: nil).release
        for i in 0..<adapters { _ = try await bench.publish("tenant/t\(i)", version: 1, seed: UInt64(100 + i), domain: domain.id) }
        let sgemm = BenchTrainCommand.measureSgemm(m: 2048, n: 1536, k: 576)
        let flops = flopsPerToken(bench.model.config, stackedAdapters: 2)
        func report(_ scenario: String, _ streams: Int, _ results: [InferenceSummary]) {
            let decoded = results.reduce(0) { $0 + max(0, $1.completionTokens - 1) }
            let start = results.compactMap(\.firstTokenAt).max()!, end = results.compactMap(\.lastTokenAt).max()!
            let sequential = scenario.hasPrefix("sequential")
            let seconds = sequential
                ? results.reduce(0.0) { $0 + ($1.lastTokenAt! - $1.firstTokenAt!).seconds }
                : (end - start).seconds
            let ttft = results.map { ($0.firstTokenAt! - $0.submittedAt).seconds * 1000 }
            let itl = results.filter { $0.completionTokens > 1 }
                .map { ($0.lastTokenAt! - $0.firstTokenAt!).seconds * 1000 / Double($0.completionTokens - 1) }
            let rate = Double(decoded) / seconds
            emit(json(["kind": "throughput", "scenario": scenario, "streams": streams, "decode_tok_s": rate,
                       "adapter_precision": adapterPrecision.rawValue,
                       "useful_gflop_s": rate * flops / 1e9, "sgemm_gflop_s": sgemm, "share_of_sgemm": rate * flops / 1e9 / sgemm,
                       "ttft_ms_p50": percentile(ttft, 50), "ttft_ms_p95": percentile(ttft, 95),
                       "itl_ms_p50": percentile(itl, 50), "itl_ms_p95": percentile(itl, 95),
                       "completion_tokens_mean": Double(results.reduce(0) { $0 + $1.completionTokens }) / Double(results.count)]))
        }
        let mixed = (0..<adapters).map { "tenant/t\($0)" }
        report("\(adapters) adapters", adapters, try await bench.generate(models: mixed, promptTokens: promptTokens, newTokens: newTokens))
        report("1 adapter", adapters, try await bench.generate(models: Array(repeating: "tenant/t0", count: adapters),
                                                               promptTokens: promptTokens, newTokens: newTokens))
        var alone: [InferenceSummary] = []
        for m in mixed { alone += try await bench.generate(models: [m], promptTokens: promptTokens, newTokens: newTokens) }
        report("sequential", 1, alone)
        for c in concurrency.split(separator: ",").compactMap({ Int($0) }) where c != adapters && c != 1 {
            report("\(c) adapters", c, try await bench.generate(models: Array(mixed.prefix(c)), promptTokens: promptTokens, newTokens: newTokens))
        }
    }

    private func swapLatency(_ bench: Bench) async throws {
        let domain = try await bench.publish("domain/bench", version: 1, seed: 1, domain: nil).release
        _ = try await bench.publish("tenant/t0", version: 1, seed: 100, domain: domain.id)
        let seen = SeenVersions()
        let client = Task {
            while !Task.isCancelled {
                guard let lease = try? await bench.cache.acquire("tenant/t0") else {
                    try await Task.sleep(for: .milliseconds(5))
                    continue
                }
                seen.record(lease.model.release?.version ?? 0)
                let stream = try bench.engine.submit(InferenceRequest(prompt: bench.prompt(8, seed: 1), maxTokens: 2, lease: lease))
                for await _ in stream.events {}
            }
        }
        var latencies: [Double] = []
        for version in 2...(swaps + 1) {
            try await Task.sleep(for: .milliseconds(200))
            let sent = try await bench.publish("tenant/t0", version: version, seed: UInt64(1000 + version), domain: domain.id).sent
            let deadline = ContinuousClock.now + .seconds(30)
            while seen.firstSeen(version) == nil && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(1)) }
            guard let first = seen.firstSeen(version) else {
                let current = await bench.cache.currentVersion(AdapterName.tenant("t0")!)?.version ?? 0
                let latest = await bench.registry.latest(AdapterName.tenant("t0")!)?.version ?? 0
                throw ValidationError("version \(version) was never served (current \(current), registry latest \(latest), last admitted \(seen.last))")
            }
            latencies.append((first - sent).seconds * 1000)
        }
        client.cancel()
        _ = try? await client.value
        emit(json(["kind": "swap", "swaps": latencies.count, "ms_p50": percentile(latencies, 50), "ms_p95": percentile(latencies, 95),
                   "ms_p99": percentile(latencies, 99), "ms_max": latencies.max() ?? 0]))
    }

    private func memory(_ bench: Bench) async throws {
        let before = residentMB()
        let release = try await bench.publish("tenant/m0", version: 1, seed: 7, domain: nil).release
        try await bench.caughtUp()
        let bytes = try await bench.registry.weights(of: release)
        for i in 1..<cached { try await bench.store("tenant/m\(i)", version: 1, bytes: bytes) }
        try await bench.caughtUp()
        for i in 0..<cached {
            let lease = try await bench.cache.acquire("tenant/m\(i)")
            await bench.cache.release(lease)
        }
        let resident = await bench.cache.resident()
        let after = residentMB()
        emit(json(["kind": "memory", "cached": resident.count, "adapter_mb_each": Double(bytes.count) / 1e6,
                   "rss_mb": after.current, "peak_rss_mb": after.peak, "rss_mb_before_adapters": before.current,
                   "mb_per_adapter": (after.current - before.current) / Double(max(1, resident.count))]))
    }

    // MARK: Helpers

    /// Multiply-adds ×2 per generated token: every base projection, the tied head, and the
    /// LoRA terms of `stackedAdapters` adapters (attention over the short context left out).
    private func flopsPerToken(_ c: LlamaConfig, stackedAdapters: Int) -> Double {
        let targets = LinearTarget.allCases.map { $0.shape(c) }
        let base = Double(targets.reduce(0) { $0 + $1.out * $1.in }) * Double(c.layers) + Double(c.vocabSize * c.dim)
        let lora = Double(targets.reduce(0) { $0 + rank * ($1.out + $1.in) }) * Double(c.layers) * Double(stackedAdapters)
        return 2 * (base + lora)
    }

    private func percentile(_ values: [Double], _ p: Double) -> Double {
        guard !values.isEmpty else { return 0 }
        let sorted = values.sorted()
        return sorted[min(sorted.count - 1, Int((p / 100 * Double(sorted.count - 1)).rounded()))]
    }

    /// Resident and peak resident memory of this process (VmRSS, and ru_maxrss for the peak).
    private func residentMB() -> (current: Double, peak: Double) {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        let peak = Double(usage.ru_maxrss) / 1024
        guard let handle = FileHandle(forReadingAtPath: "/proc/self/status") else { return (peak, peak) }
        let status = String(decoding: handle.readDataToEndOfFile(), as: UTF8.self)
        try? handle.close()
        guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
              let kb = line.split(separator: " ").dropFirst().first.flatMap({ Double($0) }) else { return (peak, peak) }
        return (kb / 1024, peak)
    }

    private func json(_ object: [String: Any]) -> String {
        String(decoding: (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data(), as: UTF8.self)
    }
}

/// The serving stack of one benchmark: an embedded log with the topics, a publisher that
/// writes versions as training workers do, and the registry, cache and engine of `attune serve`.
private final class Bench: @unchecked Sendable {
    let model: LlamaModel
    let tokenizer: BPETokenizer
    let registry: AdapterRegistry
    let cache: AdapterCache
    let engine: InferenceEngine
    private let producer: any EventProducer
    private let rank: Int
    private var follow: Task<Void, Never>?

    init(model: LlamaModel, tokenizer: BPETokenizer, directory: URL, topics: String?, rank: Int,
         precision: AdapterPrecision) async throws {
        self.model = model
        self.tokenizer = tokenizer
        self.rank = rank
        let log = EmbeddedEventLog(directory: directory.path)
        let admin = try log.makeAdmin()
        _ = try await TopicCatalog.load(directory: topics).apply(to: admin, dryRun: false)
        await admin.close()
        producer = try log.makeProducer()
        var logger = Logger(label: "attune.bench")
        logger.logLevel = .warning
        let metrics = ServingMetrics(factory: NOOPMetricsHandler.instance)
        registry = try await AdapterRegistry(log: log)
        let cache = AdapterCache(registry: registry, config: model.config, memoryBudget: Int.max / 2, precision: precision,
                                 metrics: metrics, logger: logger)
        self.cache = cache
        engine = InferenceEngine(model: model, tokenizer: tokenizer,
                                 configuration: EngineConfiguration(kvMemoryBytes: 4 << 30, maxBatch: 256, maxWaiting: 4096),
                                 metrics: metrics, onFinish: { lease in Task { await cache.release(lease) } })
        let watcher = AdapterWatcher(registry: registry, cache: cache, logger: logger)
        follow = Task { try? await watcher.run() }
    }

    /// Publishes a random rank-r LoRA on every projection (B nonzero, so every term is real
    /// work): the weights record on attune.adapters, then its adapter.updated event. Returns
    /// the release and the instant the event was sent.
    @discardableResult
    func publish(_ name: String, version: Int, seed: UInt64, domain: String?) async throws -> (release: AdapterRelease, sent: ContinuousClock.Instant) {
        let lora = try LoRAAdapter(config: LoRAConfig(rank: rank, alpha: Float(2 * rank)), model: model.config, seed: seed)
        var rng = SeededGenerator(seed: seed ^ 0x5eed)
        for l in 0..<model.config.layers {
            for t in lora.config.targets {
                let b = lora.b(l, t)
                for i in 0..<(t.shape(model.config).out * rank) { b[i] = Float.random(in: -0.01...0.01, using: &rng) }
            }
        }
        let config = try PEFTAdapterFile.configJSON(lora, baseModel: "bench")
        let (_, weights) = try PEFTAdapterFile.encode(lora, baseModel: "bench", metadata: ["adapter_config": String(decoding: config, as: UTF8.self)])
        let release = try await store(name, version: version, bytes: Array(weights), domain: domain, announce: false)
        let sent = ContinuousClock.now
        _ = try await producer.send(ProducerRecord(topic: "attune.adapter-events", key: Array(name.utf8), value: try release.cloudEvent(source: "bench")))
        return (release, sent)
    }

    /// Stores (and announces) a version with the given bytes.
    @discardableResult
    func store(_ name: String, version: Int, bytes: [UInt8], domain: String? = nil, announce: Bool = true) async throws -> AdapterRelease {
        let release = AdapterRelease(adapter: name, version: version, sha256: AdapterRelease.digest(bytes),
                                     parent: version > 1 ? "\(name)@\(version - 1)" : nil, domain: domain, baseModel: "bench",
                                     baseModelSHA256: String(repeating: "0", count: 64), covers: [:], metrics: [:])
        _ = try await producer.send(ProducerRecord(topic: "attune.adapters", key: Array(name.utf8), value: bytes, headers: try release.headers()))
        if announce {
            _ = try await producer.send(ProducerRecord(topic: "attune.adapter-events", key: Array(name.utf8), value: try release.cloudEvent(source: "bench")))
        }
        return release
    }

    /// Waits until the watcher has read everything published so far.
    func caughtUp() async throws {
        while try await registry.lag() > 0 { try await Task.sleep(for: .milliseconds(5)) }
    }

    /// Deterministic prompt ids of ordinary tokens.
    func prompt(_ n: Int, seed: Int) -> [Int32] {
        (0..<n).map { Int32(100 + (($0 + 1) * 7919 + seed * 104_729) % 40_000) }
    }

    /// Submits one greedy request per model at once and waits for all.
    func generate(models: [String], promptTokens: Int, newTokens: Int) async throws -> [InferenceSummary] {
        try await caughtUp()
        var streams: [InferenceEngine.Stream] = []
        for (i, m) in models.enumerated() {
            let lease = try await cache.acquire(m)
            streams.append(try engine.submit(InferenceRequest(prompt: prompt(promptTokens, seed: i), maxTokens: newTokens, lease: lease)))
        }
        var results: [InferenceSummary] = []
        for stream in streams {
            for await event in stream.events { if case .finished(let s) = event { results.append(s) } }
        }
        return results
    }

    func close() async {
        follow?.cancel()
        await engine.drain()
        await producer.close()
    }
}

/// The first instant each version was admitted.
private final class SeenVersions: Sendable {
    private let state = Mutex((first: [Int: ContinuousClock.Instant](), latest: 0))

    func record(_ version: Int) {
        state.withLock {
            $0.latest = version
            if $0.first[version] == nil { $0.first[version] = .now }
        }
    }

    var last: Int { state.withLock { $0.latest } }

    func firstSeen(_ version: Int) -> ContinuousClock.Instant? { state.withLock { $0.first[version] } }
}
