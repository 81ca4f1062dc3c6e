import ArgumentParser
import AttuneEventLog
import AttuneGateway
import Foundation
import Logging
import Prometheus
import ServiceLifecycle

/// `attune gateway`: the HTTP front door without a model (ingestion and events only).
struct GatewayCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gateway",
        abstract: "Take interactions and corpora over HTTP and stream adapter events, with API keys bound to tenants.",
        discussion: """
        POST /v1/interactions (one JSON object, a JSON array, or NDJSON; answered once the log acknowledged \
        every record, with each record's offset or the reason it was refused), POST /v1/corpora (admin), \
        GET /v1/events (adapter.updated CloudEvents as server-sent events, resumable with Last-Event-ID). \
        `attune serve` answers the same routes beside inference.
        """)

    @OptionGroup var transport: TransportOptions
    @OptionGroup var validation: ValidationOptions
    @OptionGroup var access: AccessOptions
    @OptionGroup var gatewayOptions: GatewayOptions

    @Option(help: "Address to listen on.") var host = "127.0.0.1"
    @Option(help: "Port to listen on (0 picks a free one).") var port = 8080
    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.") var logLevel = "info"
    @Option(help: "Log lines as text or json.") var logFormat: LogFormat = .text

    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port must be in 0...65535") }
        guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("--log-level \(logLevel) is not a level") }
        guard !validation.skipValidation else { throw ValidationError("the gateway always validates records (--no-validate does not apply)") }
    }

    func run() async throws {
        LineLogHandler.bootstrap(format: logFormat, level: Logger.Level(rawValue: logLevel)!)
        let logger = Logger(label: "attune.gateway")
        let accessControl = try access.accessControl(host: host, logger: logger)
        let prometheus = PrometheusCollectorRegistry()
        let gateway = try await reportingErrors {
            try await Gateway(log: transport.makeLog(), catalog: TopicCatalog.load(directory: validation.topicsDirectory,
                                                                                   namePrefix: validation.topicPrefix),
                              access: accessControl, stateDirectory: gatewayOptions.stateDirectory(dataDirectory: transport.stateFolder()),
                              configuration: gatewayOptions.configuration(topicPrefix: validation.topicPrefix),
                              metrics: GatewayMetrics(factory: PrometheusMetricsFactory(registry: prometheus)), logger: logger)
        }
        let server = GatewayServer(gateway: gateway, host: host, port: port, prometheus: prometheus, tls: gatewayOptions.tls,
                                   idleTimeout: .seconds(gatewayOptions.idleTimeout), logger: logger)
        try await listening(on: host, port: port) {
            try await ServiceGroup(services: [server], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger).run()
        }
        logger.info("attune gateway stopped")
    }
}
