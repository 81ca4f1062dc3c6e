import ArgumentParser
import AttuneEventLog
import AttuneGateway
import AttuneModel
import AttuneRegistry
import AttuneServer
import AttuneServing
import AttuneTokenizer
import Logging
import Prometheus

/// How an inference worker listens, batches and spends memory: shared by `serve` and `up`.
struct ServingOptions: ParsableArguments {
    @Option(help: "Address to listen on.") var host = "127.0.0.1"
    @Option(help: "Port to listen on (0 picks a free one).") var port = 8000
    @Option(help: "KV-cache memory for all running requests, e.g. 1GiB; requests wait for room.") var kvMemory = "1GiB"
    @Option(help: "Memory for loaded adapter weights, e.g. 512MiB; least recently used versions no request holds are evicted.")
    var adapterMemory = "512MiB"
    @Option(help: "Keep this adapter's current version loaded (repeatable), e.g. --pin tenant/acme.") var pin: [String] = []
    @Option(help: "How loaded adapters hold their weights: int8 (a scale per row; a quarter of fp32's bytes, the fastest mixed batches) or half.")
    var adapterPrecision: AdapterPrecision = .int8
    @Option(help: "Most sequences in one decode step.") var maxBatch = 64
    @Option(help: "Most requests waiting for admission before new ones get 429.") var maxQueue = 256
    @Option(help: "Largest request body in bytes.") var maxBodyBytes = 1 << 20

    func validate() throws {
        guard (1...4096).contains(maxBatch) else { throw ValidationError("--max-batch must be in 1...4096") }
        guard maxQueue >= 0 else { throw ValidationError("--max-queue must be ≥ 0") }
        guard (0...65535).contains(port) else { throw ValidationError("--port must be in 0...65535") }
        guard maxBodyBytes >= 1024 else { throw ValidationError("--max-body-bytes must be at least 1024") }
        _ = try ByteSize.parse(kvMemory, option: "--kv-memory")
        _ = try ByteSize.parse(adapterMemory, option: "--adapter-memory")
        for name in pin where AdapterName(parsing: name) == nil {
            throw ValidationError("--pin \(name): expected domain/<id> or tenant/<id>")
        }
    }

    /// The inference server with the gateway on its port, over `log`, and the registry it follows
    /// (to close once the server stopped). Every metric goes to `prometheus`.
    func makeServer(model: LlamaModel, tokenizer: BPETokenizer, log: any EventLog, service: ServiceOptions,
                    access: AccessControl, gatewayOptions: GatewayOptions, dataDirectory: String = ".attune",
                    alsoReady: @escaping @Sendable () -> Bool = { true }, prometheus: PrometheusCollectorRegistry,
                    logger: Logger) async throws -> (InferenceServer, AdapterRegistry) {
        let metrics = ServingMetrics(factory: PrometheusMetricsFactory(registry: prometheus))
        let registry = try await reportingErrors {
            try await AdapterRegistry(log: log, adaptersTopic: service.topicPrefix + "attune.adapters",
                                      eventsTopic: service.topicPrefix + "attune.adapter-events",
                                      report: { [logger] in logger.warning("\($0)") })
        }
        let cache = AdapterCache(registry: registry, config: model.config,
                                 memoryBudget: try ByteSize.parse(adapterMemory, option: "--adapter-memory"),
                                 pinned: Set(pin.compactMap(AdapterName.init(parsing:))), precision: adapterPrecision,
                                 metrics: metrics, logger: logger)
        let engine = InferenceEngine(
            model: model, tokenizer: tokenizer,
            configuration: EngineConfiguration(kvMemoryBytes: try ByteSize.parse(kvMemory, option: "--kv-memory"),
                                               maxBatch: maxBatch, maxWaiting: maxQueue),
            metrics: metrics, onFinish: { lease in Task { await cache.release(lease) } })
        var configuration = ServerConfiguration()
        configuration.host = host
        configuration.port = port
        configuration.maxBodyBytes = maxBodyBytes
        configuration.tls = gatewayOptions.tls
        configuration.idleTimeout = .seconds(gatewayOptions.idleTimeout)
        let gateway = try await reportingErrors {
            try await Gateway(log: log, catalog: service.catalog(), access: access, stateDirectory: gatewayOptions.stateDirectory(dataDirectory: dataDirectory),
                              configuration: gatewayOptions.configuration(topicPrefix: service.topicPrefix),
                              metrics: GatewayMetrics(factory: PrometheusMetricsFactory(registry: prometheus)), logger: logger)
        }
        let server = InferenceServer(configuration: configuration, engine: engine, cache: cache, registry: registry,
                                     watcher: AdapterWatcher(registry: registry, cache: cache, logger: logger),
                                     prometheus: prometheus, access: access, gateway: gateway, alsoReady: alsoReady,
                                     logger: logger)
        return (server, registry)
    }
}

/// Byte sizes written as 1024, 64KiB, 512MiB, 2GiB (or KB/MB/GB, same powers of two).
enum ByteSize {
    static func parse(_ text: String, option: String) throws -> Int {
        let units: [(String, Int)] = [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10), ("GB", 1 << 30), ("MB", 1 << 20),
                                      ("KB", 1 << 10), ("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10), ("B", 1)]
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        for (suffix, scale) in units where trimmed.hasSuffix(suffix) {
            if let n = Double(trimmed.dropLast(suffix.count)), n >= 0 { return Int(n * Double(scale)) }
        }
        if let n = Int(trimmed), n >= 0 { return n }
        throw ValidationError("\(option) \(text): expected a size such as 512MiB or 2GiB")
    }
}

extension AdapterPrecision: ExpressibleByArgument {}
