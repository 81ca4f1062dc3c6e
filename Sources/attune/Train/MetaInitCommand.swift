import ArgumentParser
import AttuneModel
import AttuneRegistry
import AttuneTokenizer
import AttuneWorker
import Foundation
import Logging
import Prometheus
import ServiceLifecycle
import Synchronization

/// `attune meta-init --domain X`: learn where the domain's new tenants start.
struct MetaInitCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "meta-init",
        abstract: "Meta-learn (Reptile) a starting point for a domain's new tenants from its existing tenants; publish it as meta/<domain>.",
        discussion: """
        Each iteration fine-tunes a copy of the current starting point on one tenant's data for --inner-steps and \
        moves it toward the result. The version is published as meta/<domain>@N, standing on the domain's latest \
        version; training workers start every new tenant of the domain from it (its first release names it in \
        `initialization`). Run again as tenants accumulate, or keep it running with --follow (without --domain: for \
        every domain): it then learns the next version whenever --refresh-after more tenants stand on a domain. \
        SIGTERM/SIGINT stop it between two iterations; a version in progress is dropped unpublished and learned \
        again at the next start. Each version continues from the previous one. Only admin keys may use or follow \
        meta adapters (they are learned from many tenants' data).
        """)
    @OptionGroup var registryOptions: RegistryOptions
    @OptionGroup var worker: WorkerOptions
    @OptionGroup var logging: LoggingOptions
    @Option(help: "GGUF base model (default: $ATTUNE_MODEL, else the fetched base model).") var model: String?
    @Option(help: "The domain, e.g. legal (or domain/legal); with --follow, default: every domain.") var domain: String?
    @Option(help: "Outer iterations (one tenant's inner fine-tune each).") var iterations = 48
    @Option(help: "Optimizer steps of each inner fine-tune.") var innerSteps = 4
    @Option(help: "Outer step size at the first iteration, annealed linearly to 0.") var metaStep = 1.0
    @Option(help: "Most examples of one tenant per inner fine-tune.") var examplesPerTask = 8
    @Option(help: "Fewest tenants with data the domain needs.") var minTenants = 2
    @Flag(help: "Keep running: follow the registry and learn the next version as tenants accumulate.") var follow = false
    @Option(help: "With --follow: learn the next version once this many more tenants stand on the domain.") var refreshAfter = 2
    @Option(help: "With --follow: serve /metrics, /healthz and /readyz on this port (0 picks a free one; default: none).")
    var metricsPort: Int?
    @Option(help: "Address for --metrics-port.") var metricsHost = "127.0.0.1"

    func validate() throws {
        if let domain {
            guard AdapterName.domain(domainID) != nil, !domainID.contains("~") else { throw ValidationError("--domain \(domain): not a domain id") }
        } else if !follow {
            throw ValidationError("--domain is required (or --follow, to keep every domain's meta-initialization current)")
        }
        guard iterations >= 1, innerSteps >= 1, examplesPerTask >= 1, minTenants >= 1 else {
            throw ValidationError("--iterations, --inner-steps, --examples-per-task and --min-tenants must be at least 1")
        }
        guard metaStep > 0, metaStep <= 1 else { throw ValidationError("--meta-step must be in (0, 1]") }
        guard refreshAfter >= 1 else { throw ValidationError("--refresh-after must be at least 1") }
        guard metricsPort.map({ (0...65535).contains($0) }) ?? true else { throw ValidationError("--metrics-port must be in 0...65535") }
        guard follow || metricsPort == nil else { throw ValidationError("--metrics-port needs --follow") }
    }

    private var domainID: String { domain.map { $0.hasPrefix("domain/") ? String($0.dropFirst(7)) : $0 } ?? "" }

    func run() async throws {
        let path = try BaseModelStore().resolve(model)
        let base = try LlamaModel(path: path, mode: .quantized)
        let tokenizer = try BPETokenizer(gguf: base.file)
        let c = try worker.configuration(baseModel: URL(fileURLWithPath: path).lastPathComponent,
                                         baseModelSHA256: try BaseModelStore.sha256(of: path), topicPrefix: registryOptions.topicPrefix)
        var settings = MetaLearningSettings()
        settings.iterations = iterations
        settings.innerSteps = innerSteps
        settings.metaStep = metaStep
        settings.examplesPerTask = examplesPerTask
        settings.minimumTenants = minTenants
        try await reportingErrors {
            let registry = try await registryOptions.open()
            let log = try registryOptions.transport.makeLog()
            let domain = AdapterName.domain(domainID)
            do {
                if follow {
                    try await keepCurrent(domain.map { [$0] }, settings: settings) {
                        MetaInitializer(configuration: c, log: log, base: base, tokenizer: tokenizer, registry: registry)
                    }
                } else {
                    let release = try await MetaInitializer(configuration: c, log: log, base: base, tokenizer: tokenizer, registry: registry)
                        .run(domain: domain!, settings: settings, progress: { emit($0) })
                    emit("published \(release.id) on \(release.domain ?? "-") (sha256:\(release.sha256.prefix(12)))")
                }
            } catch {
                await registry.close()
                throw error
            }
            await registry.close()
        }
    }

    /// `--follow`: a service that keeps the meta-initializations of `domains` (nil: every
    /// domain) current until SIGTERM or SIGINT.
    private func keepCurrent(_ domains: [AdapterName]?, settings: MetaLearningSettings,
                             initializer: @escaping @Sendable () -> MetaInitializer) async throws {
        logging.bootstrap()
        let logger = Logger(label: "attune.meta-init")
        let prometheus = PrometheusCollectorRegistry()
        let refreshAfter = refreshAfter
        let refresher: @Sendable () -> MetaRefresher = {
            MetaRefresher(initializer: initializer(), domains: domains, settings: settings, refreshAfter: refreshAfter,
                          metrics: PrometheusMetricsFactory(registry: prometheus), logger: logger)
        }
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = []
        if let metricsPort {
            services.append(.init(service: MetricsEndpoint(host: metricsHost, port: metricsPort, registry: prometheus,
                                                           ready: { true }, logger: logger)))
        }
        services.append(.init(service: MetaRefreshService(refresher: refresher), successTerminationBehavior: .gracefullyShutdownGroup))
        let followed = domains.map { $0.map(\.description).joined(separator: ", ") } ?? "every domain"
        logger.info("following the registry for \(followed): a new meta-initialization every \(refreshAfter) more tenants")
        try await ServiceGroup(configuration: ServiceGroupConfiguration(services: services, gracefulShutdownSignals: [.sigterm, .sigint],
                                                                        logger: logger)).run()
    }
}

/// Runs a `MetaRefresher` (made in the service's own task) until the service group shuts down gracefully.
private struct MetaRefreshService: Service {
    let refresher: @Sendable () -> MetaRefresher

    func run() async throws {
        let stop = StopRequest()
        let refresher = refresher()
        try await withGracefulShutdownHandler {
            try await refresher.run { stop.requested.load(ordering: .acquiring) }
        } onGracefulShutdown: {
            stop.requested.store(true, ordering: .releasing)
        }
    }
}
