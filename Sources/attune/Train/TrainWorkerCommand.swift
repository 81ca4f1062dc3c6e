import ArgumentParser
import Logging
import Prometheus
import ServiceLifecycle
import Synchronization
import AttuneEventLog
import AttuneModel
import AttuneTokenizer
import AttuneTraining
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
    @Option(help: "GGUF base model (default: $ATTUNE_MODEL, else the fetched base model).") var model: String?
    @Option(help: "Directory of topic definitions and schemas (default: the contracts built into attune).") var topicsDir: String?
    @Option(help: "Consumer group.") var group = "attune-trainers"
    @Option(help: "Prefix of every topic name but the DLQ's (e.g. staging.), as given to topics apply.")
    var topicPrefix = ""
    @Option(help: "Close a micro-batch at this many tokens.") var batchTokens = 2048
    @Option(help: "…or when its oldest record is this many seconds old.") var batchSeconds = 10.0
    @Option(help: "Optimizer steps per micro-batch.") var steps = 4
    @Option(help: "Sequence length.") var seqLen = 128
    @Option(help: "Sequences per step.") var batchSize = 4
    @Option(help: "LoRA rank.") var rank = 8
    @Option(help: "Learning rate.") var lr: Float = 1e-3
    @Option(help: "Replay buffer size per adapter.") var replayCapacity = 256
    @Option(help: "Replayed examples per new example.") var replayRatio = 0.5
    @Option(help: "Regularization toward the parent: l2sp, ewc or none.") var regularizer = "l2sp"
    @Option(help: "Regularization strength.") var regularizerStrength: Float = 0.1
    @Option(help: "Reject a candidate whose loss on held-out new data, replay or domain probe exceeds its parent's by this fraction.")
    var gateTolerance = 0.05
    @Option(help: "Retry a rejected batch after this many seconds without new data.") var gateRetry = 300.0
    @Option(help: "Send a batch's records to the DLQ after this many gate rejections.") var gateMaxRejections = 3
    @Option(help: "Group session timeout in seconds (longer than one micro-batch's training).") var sessionTimeout = 45.0
    @Option(help: "Pin a tenant to a domain: TENANT=DOMAIN (repeatable).") var tenantDomain: [String] = []
    @Flag(help: "Grow a new adapter block for a tenant whose new data drifts, instead of overwriting the old one.")
    var growOnDrift = false
    @Option(help: "Drift: the parent's loss on new data exceeds its replay loss by this fraction.") var driftThreshold = 0.5
    @Option(help: "Most adapter blocks a tenant grows to.") var maxBlocks = 4
    @Option(help: "Rebase tenants onto new domain versions: automatic or on-command (attune adapter rebase).")
    var rebase: RebaseMode = .automatic
    @Option(help: "A new tenant waits this many seconds for its domain's first version before training on the base alone.")
    var domainWait = 60.0
    @Option(help: "Stop once every owned partition is read to its end and nothing arrived for this many seconds (0 = never).")
    var idle = 0.0
    @Option(help: "Serve /metrics, /healthz and /readyz on this port (0 picks a free one; default: none).") var metricsPort: Int?
    @Option(help: "Address for --metrics-port.") var metricsHost = "127.0.0.1"
    @Option(help: "Log lines as text or json.") var logFormat: LogFormat = .text
    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.") var logLevel = "info"

    func validate() throws {
        guard batchTokens > 0, batchSeconds > 0 else { throw ValidationError("--batch-tokens and --batch-seconds must be positive") }
        guard steps > 0, seqLen > 1, batchSize > 0 else { throw ValidationError("--steps and --batch-size must be positive, --seq-len at least 2") }
        guard (1...1024).contains(rank) else { throw ValidationError("--rank must be in 1…1024, got \(rank)") }
        guard lr > 0, lr < 1 else { throw ValidationError("--lr must be in (0, 1), got \(lr)") }
        guard replayCapacity > 0, replayRatio >= 0 else { throw ValidationError("--replay-capacity must be positive and --replay-ratio ≥ 0") }
        guard gateRetry >= 0, gateMaxRejections > 0 else { throw ValidationError("--gate-retry must be ≥ 0 and --gate-max-rejections positive") }
        guard driftThreshold >= 0, maxBlocks > 0 else { throw ValidationError("--drift-threshold must be ≥ 0 and --max-blocks positive") }
        guard domainWait >= 0, idle >= 0 else { throw ValidationError("--domain-wait and --idle must be ≥ 0") }
        guard sessionTimeout >= 1 else { throw ValidationError("--session-timeout must be at least 1 second") }
        guard metricsPort.map({ (0...65535).contains($0) }) ?? true else { throw ValidationError("--metrics-port must be in 0...65535") }
        guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("--log-level \(logLevel) is not a level") }
    }

    func run() async throws {
        LineLogHandler.bootstrap(format: logFormat, level: Logger.Level(rawValue: logLevel)!)
        let logger = Logger(label: "attune.train-worker")
        let path = try BaseModelStore().resolve(model)
        let base = try LlamaModel(path: path, mode: .quantized)
        let tokenizer = try BPETokenizer(gguf: base.file)
        var c = TrainWorkerConfiguration(baseModel: URL(fileURLWithPath: path).lastPathComponent,
                                         baseModelSHA256: try BaseModelStore.sha256(of: path))
        c.groupID = group
        c.prefixTopics(topicPrefix)
        c.batchTokens = batchTokens
        c.batchSeconds = batchSeconds
        c.stepsPerBatch = steps
        c.seqLen = seqLen
        c.batchSize = batchSize
        c.lora = LoRAConfig(rank: rank, alpha: Float(2 * rank))
        c.learningRate = lr
        c.replayCapacity = replayCapacity
        c.replayRatio = replayRatio
        guard regularizer == "none" || Regularizer.Kind(rawValue: regularizer) != nil else {
            throw ValidationError("--regularizer must be l2sp, ewc or none")
        }
        c.regularizer = Regularizer.Kind(rawValue: regularizer)
        c.regularizerStrength = regularizerStrength
        c.gateTolerance = gateTolerance
        c.gateRetrySeconds = gateRetry
        c.gateMaxRejections = gateMaxRejections
        c.sessionTimeout = .milliseconds(Int(sessionTimeout * 1000))
        c.domainWaitSeconds = domainWait
        c.rebase = rebase
        c.growOnDrift = growOnDrift
        c.driftThreshold = driftThreshold
        c.maxBlocks = maxBlocks
        for pin in tenantDomain {
            let parts = pin.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2 else { throw ValidationError("--tenant-domain takes TENANT=DOMAIN") }
            c.tenantDomains[parts[0]] = parts[1]
        }
        let prometheus = PrometheusCollectorRegistry()
        let worker = TrainWorker(configuration: c, log: try transport.makeLog(), base: base, tokenizer: tokenizer,
                                 catalog: try TopicCatalog.load(directory: topicsDir, namePrefix: topicPrefix),
                                 metrics: WorkerMetrics(factory: PrometheusMetricsFactory(registry: prometheus)), logger: logger)
        let run = WorkerService(worker: worker, idle: idle > 0 ? .milliseconds(Int(idle * 1000)) : .seconds(365 * 86400))
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = []
        if let metricsPort {
            services.append(.init(service: MetricsEndpoint(host: metricsHost, port: metricsPort, registry: prometheus,
                                                           ready: { worker.isReady }, logger: logger)))
        }
        services.append(.init(service: run, successTerminationBehavior: .gracefullyShutdownGroup))
        try await ServiceGroup(configuration: ServiceGroupConfiguration(services: services, gracefulShutdownSignals: [.sigterm, .sigint],
                                                                        logger: logger)).run()
        let s = worker.stats
        logger.info("stopped", metadata: ["published": "\(s.published)", "rebases": "\(s.rebased)", "reannounced": "\(s.reannounced)",
                                          "rejected": "\(s.rejectedByGate)", "superseded": "\(s.superseded)",
                                          "dead_lettered": "\(s.deadLettered)", "already_trained": "\(s.skippedAlreadyTrained)",
                                          "examples_trained": "\(s.examplesTrained)"])
    }
}

/// Runs a training worker until it is idle or the service group shuts down gracefully (it
/// then finishes the batch in hand, commits and leaves its group).
private struct WorkerService: Service {
    let worker: TrainWorker
    let idle: Duration

    func run() async throws {
        let stop = StopRequest()
        try await withGracefulShutdownHandler {
            try await worker.run(idle: idle) { stop.requested.load(ordering: .acquiring) }
        } onGracefulShutdown: {
            stop.requested.store(true, ordering: .releasing)
        }
    }
}

/// Set once by graceful shutdown, read by the worker between batches.
final class StopRequest: Sendable {
    let requested = Atomic(false)
}

extension RebaseMode: ExpressibleByArgument {}
