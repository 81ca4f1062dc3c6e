import AttuneEventLog
import AttuneGateway
import AttuneRegistry
import AttuneTestSupport
import Foundation
import Logging
import Metrics
import Prometheus

let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

/// A gateway on a loopback port over a fresh log (topics applied, under a unique prefix on
/// Kafka), with a key file holding keys for tenants acme and bolt, an admin, a key without
/// the ingest role and a revoked one. `restart` stops it and starts a new one on the same
/// state folder, as a redeployed gateway would.
final class GatewayFixture: @unchecked Sendable {
    let directory: URL
    let log: any EventLog
    let catalog: TopicCatalog
    let prefix: String
    let keys: KeyStore
    /// Secrets by role in the test: acme, bolt, admin, acmeInferOnly, revoked.
    private(set) var secrets: [String: String] = [:]
    private(set) var port = 0
    private var server: GatewayServer?
    private var task: Task<Void, any Error>?
    var heartbeat = Duration.seconds(15)
    var ackTimeout = Duration.seconds(15)
    var idleTimeout = Duration.seconds(60)
    var webhookBackoff = (first: Duration.milliseconds(50), cap: Duration.milliseconds(400))

    convenience init(_ transport: TestTransport, name: String) async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("attune-gw-\(name)-\(UUID().uuidString)")
        try await self.init(log: try transport.makeLog(directory: directory.appendingPathComponent("log").path),
                            prefix: transport == .kafka ? "g\(UUID().uuidString.prefix(8).lowercased())." : "", directory: directory)
    }

    init(log: any EventLog, prefix: String, directory: URL) async throws {
        self.directory = directory
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        self.log = log
        self.prefix = prefix
        catalog = try TopicCatalog.builtin(namePrefix: prefix)
        let admin = try log.makeAdmin()
        _ = try await catalog.apply(to: admin, dryRun: false, maxReplicationFactor: try await (admin as? KafkaAdmin)?.brokerCount())
        await admin.close()
        keys = try KeyStore(path: directory.appendingPathComponent("keys.json").path, create: true)
        secrets["acme"] = try keys.create(name: "acme-app", tenants: ["acme"], roles: [.ingest, .infer, .subscribe]).secret
        secrets["bolt"] = try keys.create(name: "bolt-app", tenants: ["bolt"], roles: [.ingest, .infer, .subscribe]).secret
        secrets["admin"] = try keys.create(name: "ops", tenants: ["*"], roles: [.admin]).secret
        secrets["acmeInferOnly"] = try keys.create(name: "acme-reader", tenants: ["acme"], roles: [.infer]).secret
        let revoked = try keys.create(name: "old", tenants: ["acme"], roles: [.ingest, .infer, .subscribe, .admin])
        secrets["revoked"] = revoked.secret
        try keys.revoke(id: revoked.key.id)
    }

    func start(rateLimit: Int = 0, tls: TLSFiles? = nil) async throws {
        var logger = Logger(label: "attune.gateway.test")
        logger.logLevel = .warning
        var configuration = GatewayConfiguration()
        configuration.topicPrefix = prefix
        configuration.heartbeat = heartbeat
        configuration.ackTimeout = ackTimeout
        let prometheus = PrometheusCollectorRegistry()
        let gateway = try await Gateway(log: log, catalog: catalog, access: AccessControl(keys: keys, defaultRateLimit: rateLimit),
                                        stateDirectory: directory.appendingPathComponent("state").path, configuration: configuration,
                                        metrics: GatewayMetrics(factory: PrometheusMetricsFactory(registry: prometheus)), logger: logger,
                                        webhookBackoff: webhookBackoff)
        let server = GatewayServer(gateway: gateway, host: "127.0.0.1", port: 0, prometheus: prometheus, tls: tls,
                                   idleTimeout: idleTimeout, logger: logger)
        self.server = server
        task = Task { try await server.run() }
        guard await waitUntil(.seconds(60), { server.listeningPort != nil }) else { throw LoopbackHTTPError("the gateway did not listen") }
        port = server.listeningPort!
    }

    func stop() async {
        task?.cancel()
        _ = try? await task?.value
        task = nil
    }

    func restart() async throws {
        await stop()
        try await start()
    }

    func finish() async {
        await stop()
        try? FileManager.default.removeItem(at: directory)
    }

    func request(_ method: String, _ path: String, key: String?, body: Data? = nil, headers: [String: String] = [:]) async throws -> HTTPAnswer {
        var headers = headers
        if let key { headers["Authorization"] = "Bearer \(secrets[key] ?? key)" }
        return try await LoopbackHTTP.request(port: port, method, path, body: body, headers: headers)
    }

    /// Every record on `topic`, read from the beginning until `count` are there (or 120 s).
    func records(_ topic: String, atLeast count: Int) async throws -> [ConsumerRecord] {
        let consumer = try log.makeConsumer(ConsumerConfiguration())
        defer { Task { await consumer.close() } }
        let admin = try log.makeAdmin()
        let partitions = try await admin.describeTopic(prefix + topic)?.partitions ?? 0
        await admin.close()
        let tps = (0..<partitions).map { TopicPartition(prefix + topic, $0) }
        try await consumer.assign(tps)
        try await consumer.seekToBeginning(tps)
        var all: [ConsumerRecord] = []
        _ = try await waitUntil(.seconds(120), interval: .milliseconds(1)) {
            all += try await consumer.poll(maxRecords: 500, timeout: .milliseconds(200))
            return all.count >= count
        }
        // Anything beyond `count` that is already there (a duplicate would be).
        all += try await consumer.poll(maxRecords: 500, timeout: .milliseconds(500))
        return all
    }

    /// Announces a version on the events topic, as a training worker does.
    func announce(_ adapter: String, version: Int, domain: String? = nil) async throws {
        let release = AdapterRelease(adapter: adapter, version: version, sha256: String(repeating: "a", count: 64),
                                     parent: version > 1 ? "\(adapter)@\(version - 1)" : nil, domain: domain, baseModel: "m",
                                     baseModelSHA256: "0", covers: [:], metrics: [:])
        let producer = try log.makeProducer()
        _ = try await producer.send(ProducerRecord(topic: prefix + "attune.adapter-events", key: Array(adapter.utf8),
                                                   value: try release.cloudEvent(source: "test")))
        await producer.close()
    }
}

func interaction(_ tenant: String, _ n: Int, id: String? = nil) -> String {
    let idField = id.map { #""id":"\#($0)","# } ?? ""
    return #"{\#(idField)"tenant":"\#(tenant)","user":"u\#(n)","time":"2026-12-02T10:00:00Z","prompt":"Question \#(n)?","response":"Answer \#(n)."}"#
}
