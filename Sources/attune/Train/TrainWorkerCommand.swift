import ArgumentParser
import Logging
import Prometheus
import ServiceLifecycle
import AttuneEventLog
import AttuneModel
import AttuneTokenizer
import AttuneWorker
import Foundation

/// `attune train-worker`: one member of the trainers' group.
struct TrainWorkerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train-worker",
        abstract: "Continually train domain and tenant adapters from attune.corpora and attune.interactions.",
        discussion: """
        Joins the consumer group (default attune-trainers); owning a partition means owning the adapters keyed to it. \
        Every accepted version is published to attune.adapters and announced on attune.adapter-events before its input \
        offsets are committed. Run several workers to split the partitions. Stops after --idle seconds without input \
        (0 = run until interrupted); SIGTERM/SIGINT finish the current batch, commit and leave the group.
        """)

    @OptionGroup var transport: TransportOptions
    @OptionGroup var service: ServiceOptions
    @OptionGroup var worker: WorkerOptions
    @Option(help: "GGUF base model (default: $ATTUNE_MODEL, else the fetched base model).") var model: String?
    @Option(help: "Stop once every owned partition is read to its end and nothing arrived for this many seconds (0 = never).")
    var idle = 0.0
    @Option(help: "Serve /metrics, /healthz and /readyz on this port (0 picks a free one; default: none).") var metricsPort: Int?
    @Option(help: "Address for --metrics-port.") var metricsHost = "127.0.0.1"

    func validate() throws {
        guard idle >= 0 else { throw ValidationError("--idle must be ≥ 0") }
        guard metricsPort.map({ (0...65535).contains($0) }) ?? true else { throw ValidationError("--metrics-port must be in 0...65535") }
    }

    func run() async throws {
        service.bootstrapLogging()
        let logger = Logger(label: "attune.train-worker")
        let path = try BaseModelStore().resolve(model)
        let base = try LlamaModel(path: path, mode: .quantized)
        let c = try worker.configuration(baseModel: URL(fileURLWithPath: path).lastPathComponent,
                                     baseModelSHA256: try BaseModelStore.sha256(of: path), topicPrefix: service.topicPrefix)
        let prometheus = PrometheusCollectorRegistry()
        let log = try transport.makeLog(), tokenizer = try BPETokenizer(gguf: base.file), catalog = try service.catalog()
        let metrics = WorkerMetrics(factory: PrometheusMetricsFactory(registry: prometheus))
        let trainer = WorkerSupervisor(metrics: PrometheusMetricsFactory(registry: prometheus), logger: logger) {
            TrainWorker(configuration: c, log: log, base: base, tokenizer: tokenizer, catalog: catalog, metrics: metrics, logger: logger)
        }
        let run = WorkerService(supervisor: trainer, idle: idle > 0 ? .milliseconds(Int(idle * 1000)) : .seconds(365 * 86400))
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = []
        if let metricsPort {
            services.append(.init(service: MetricsEndpoint(host: metricsHost, port: metricsPort, registry: prometheus,
                                                           ready: { trainer.isReady }, logger: logger)))
        }
        services.append(.init(service: run, successTerminationBehavior: .gracefullyShutdownGroup))
        try await ServiceGroup(configuration: ServiceGroupConfiguration(services: services, gracefulShutdownSignals: [.sigterm, .sigint],
                                                                        logger: logger)).run()
        trainer.logStats(logger)
    }
}

extension WorkerSupervisor {
    /// One log line with what the worker did since it started.
    func logStats(_ logger: Logger) {
        let s = stats
        logger.info("stopped", metadata: ["published": "\(s.published)", "rebases": "\(s.rebased)", "reannounced": "\(s.reannounced)",
                                          "rejected": "\(s.rejectedByGate)", "superseded": "\(s.superseded)",
                                          "dead_lettered": "\(s.deadLettered)", "already_trained": "\(s.skippedAlreadyTrained)",
                                          "examples_trained": "\(s.examplesTrained)"])
    }
}
