import ArgumentParser
import AttuneEventLog
import AttuneGateway
import AttuneModel
import AttuneRegistry
import AttuneServer
import AttuneServing
import AttuneTokenizer
import Foundation
import Logging
import Prometheus
import ServiceLifecycle

/// `attune serve`: an inference worker.
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve every domain and tenant adapter's newest version over an OpenAI-style HTTP API.",
        discussion: """
        Follows attune.adapters and attune.adapter-events (every partition, no consumer group), swaps each \
        new version of an adapter in use as soon as it is announced and verified, and batches requests for \
        different adapters into the same decode steps. The gateway's routes (POST /v1/interactions,         POST /v1/corpora, GET /v1/events) are served on the same port; with a key file every route but         health, readiness, metrics and the OpenAPI document needs a key of the right tenant and role. `model` selects what serves a request: base, \
        domain/<id>, tenant/<id> (its newest version) or <name>@<version> (exactly that one). Run several \
        behind a load balancer to scale out; each follows every event. SIGTERM or SIGINT stops accepting \
        connections and lets running generations finish.
        """)

    @OptionGroup var transport: TransportOptions
    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var access: AccessOptions
    @OptionGroup var gatewayOptions: GatewayOptions

    @Option(help: "Prefix of every topic name (as given to topics apply).") var topicPrefix = ""
    @Option(name: .customLong("topics-dir"), help: "Topic definitions and schemas for ingestion (default: built in).")
    var topicsDirectory: String?
    @Option(help: "Address to listen on.") var host = "127.0.0.1"
    @Option(help: "Port to listen on (0 picks a free one).") var port = 8000
    @Option(help: "KV-cache memory for all running requests, e.g. 1GiB; requests wait for room.") var kvMemory = "1GiB"
    @Option(help: "Memory for loaded adapter weights, e.g. 512MiB; least recently used versions no request holds are evicted.")
    var adapterMemory = "512MiB"
    @Option(help: "Keep this adapter's current version loaded (repeatable), e.g. --pin tenant/acme.") var pin: [String] = []
    @Option(help: "Most sequences in one decode step.") var maxBatch = 64
    @Option(help: "Most requests waiting for admission before new ones get 429.") var maxQueue = 256
    @Option(help: "Largest request body in bytes.") var maxBodyBytes = 1 << 20
    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.") var logLevel = "info"
    @Option(help: "Log lines as text or json.") var logFormat: LogFormat = .text

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
        guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("--log-level \(logLevel) is not a level") }
        guard modelOptions.adapter.isEmpty else { throw ValidationError("--adapter does not apply to serve: requests choose adapters by model name") }
    }

    func run() async throws {
        LineLogHandler.bootstrap(format: logFormat, level: Logger.Level(rawValue: logLevel)!)
        let logger = Logger(label: "attune.serve")
        let accessControl = try access.accessControl(host: host, logger: logger)
        let prometheus = PrometheusCollectorRegistry()
        let metrics = ServingMetrics(factory: PrometheusMetricsFactory(registry: prometheus))

        var options = modelOptions
        if !CommandLine.arguments.contains("--weights") { options.weights = .dense }
        let (model, tokenizer) = try options.load()
        logger.info("base model loaded", metadata: ["layers": "\(model.config.layers)", "weights": "\(options.weights.rawValue)"])

        let log = try transport.makeLog()
        let registry = try await reportingErrors {
            try await AdapterRegistry(log: log, adaptersTopic: topicPrefix + "attune.adapters",
                                      eventsTopic: topicPrefix + "attune.adapter-events",
                                      report: { [logger] in logger.warning("\($0)") })
        }
        let cache = AdapterCache(registry: registry, config: model.config,
                                 memoryBudget: try ByteSize.parse(adapterMemory, option: "--adapter-memory"),
                                 pinned: Set(pin.compactMap(AdapterName.init(parsing:))), metrics: metrics, logger: logger)
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
            try await Gateway(log: log, catalog: TopicCatalog.load(directory: topicsDirectory, namePrefix: topicPrefix),
                              access: accessControl, stateDirectory: gatewayOptions.stateDirectory,
                              configuration: gatewayOptions.configuration(topicPrefix: topicPrefix),
                              metrics: GatewayMetrics(factory: PrometheusMetricsFactory(registry: prometheus)), logger: logger)
        }
        let server = InferenceServer(configuration: configuration, engine: engine, cache: cache, registry: registry,
                                     watcher: AdapterWatcher(registry: registry, cache: cache, logger: logger),
                                     prometheus: prometheus, access: accessControl, gateway: gateway, logger: logger)
        let group = ServiceGroup(services: [server], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        try await group.run()
        await registry.close()
        logger.info("attune serve stopped")
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
