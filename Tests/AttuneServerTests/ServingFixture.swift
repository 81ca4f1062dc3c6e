import AttuneEventLog
import AttuneGateway
import AttuneModel
import AttuneRegistry
import AttuneServer
import AttuneServing
import AttuneTestSupport
import AttuneTokenizer
import AttuneTraining
import AttuneWorker
import Foundation
import Logging
import Prometheus

let tiny = LlamaConfig(layers: 2, dim: 64, ffnDim: 96, heads: 4, kvHeads: 2, vocabSize: 80, contextLength: 128)
let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

/// A served deployment: a tiny random model written as GGUF, the topics applied (under a
/// unique prefix on Kafka), a training worker that publishes `domain/law` and `tenant/acme`
/// (pinned on law) from real input records, and `attune serve`'s server on a loopback port.
final class ServingFixture: @unchecked Sendable {
    let directory: URL
    let modelPath: String
    let log: any EventLog
    let catalog: TopicCatalog
    let prefix: String
    let model: LlamaModel
    let tokenizer: BPETokenizer
    let prometheus = PrometheusCollectorRegistry()
    private(set) var server: InferenceServer!
    private(set) var registry: AdapterRegistry!
    private(set) var cache: AdapterCache!
    private(set) var port = 0
    private var serverTask: Task<Void, any Error>?
    private var sent = 0

    init(_ transport: TestTransport, name: String, weights: WeightMode = .quantized) async throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("attune-\(name)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        modelPath = directory.appendingPathComponent("tiny.gguf").path
        try RandomModel.write(tiny, to: modelPath, vocabulary: testVocabulary)
        model = try LlamaModel.forServing(path: modelPath, mode: weights)
        tokenizer = try BPETokenizer(gguf: model.file)
        switch transport {
        case .embedded:
            log = EmbeddedEventLog(directory: directory.appendingPathComponent("log").path)
            prefix = ""
        case .kafka:
            let servers = ProcessInfo.processInfo.environment["ATTUNE_KAFKA_BOOTSTRAP"] ?? ""
            log = KafkaEventLog(KafkaConfiguration(bootstrapServers: servers.split(separator: ",").map(String.init)))
            prefix = "s\(UUID().uuidString.prefix(8).lowercased())."
        }
        catalog = try TopicCatalog(directory: repository.appendingPathComponent("topics").path, namePrefix: prefix)
        let admin = try log.makeAdmin()
        _ = try await catalog.apply(to: admin, dryRun: false, maxReplicationFactor: try await (admin as? KafkaAdmin)?.brokerCount())
        await admin.close()
    }

    var workerConfiguration: TrainWorkerConfiguration {
        var config = TrainWorkerConfiguration(baseModel: "tiny.gguf", baseModelSHA256: String(repeating: "0", count: 64))
        config.groupID = "trainers-\(prefix)"
        config.prefixTopics(prefix)
        config.seqLen = 48
        config.batchSize = 2
        config.stepsPerBatch = 2
        config.learningRate = 5e-2
        config.lora = LoRAConfig(rank: 2, alpha: 4)
        config.gateTolerance = 100
        config.tenantDomains = ["acme": "law", "bolt": "law"]
        return config
    }

    /// Produces corpus documents and interactions, then runs a training worker until it has
    /// read them all and published what they make.
    func train(domainDocuments: Int = 0, interactions: [String: Int] = [:]) async throws {
        let producer = ValidatingProducer(try log.makeProducer(), catalog: catalog, policy: .reject)
        for _ in 0..<domainDocuments {
            sent += 1
            let value = #"{"domain":"law","doc_id":"law-\#(sent)","text":"The law rule number \#(sent) says to do it well.","source":"test"}"#
            _ = try await producer.send(ProducerRecord(topic: prefix + "attune.corpora", key: "law", value: value))
        }
        for (tenant, count) in interactions.sorted(by: { $0.key < $1.key }) {
            for _ in 0..<count {
                sent += 1
                let value = #"{"tenant":"\#(tenant)","user":"u\#(sent)","time":"2026-11-29T08:00:00Z","prompt":"Question \#(sent)?","response":"Answer \#(sent) for \#(tenant)."}"#
                _ = try await producer.send(ProducerRecord(topic: prefix + "attune.interactions", key: tenant, value: value))
            }
        }
        await producer.close()
        let worker = TrainWorker(configuration: workerConfiguration, log: log, base: try RandomModel.load(tiny), tokenizer: tokenizer,
                                 catalog: catalog)
        try await worker.run(idle: .milliseconds(500))
    }

    /// Starts the server on a free loopback port.
    /// With `keys`, every route needs a key of the right tenant and role (else the API is open).
    func serve(adapterMemory: Int = 64 << 20, kvMemory: Int = 64 << 20, maxWaiting: Int = 256, pinned: Set<AdapterName> = [],
               keys: KeyStore? = nil, logInteractions: Bool = false) async throws {
        var logger = Logger(label: "attune.serve.test")
        logger.logLevel = .warning
        let metrics = ServingMetrics(factory: PrometheusMetricsFactory(registry: prometheus))
        let registry = try await AdapterRegistry(log: log, adaptersTopic: prefix + "attune.adapters",
                                                 eventsTopic: prefix + "attune.adapter-events")
        let cache = AdapterCache(registry: registry, config: model.config, memoryBudget: adapterMemory, pinned: pinned, metrics: metrics,
                                 logger: logger)
        let engine = InferenceEngine(model: model, tokenizer: tokenizer,
                                     configuration: EngineConfiguration(kvMemoryBytes: kvMemory, maxBatch: 64, maxWaiting: maxWaiting),
                                     metrics: metrics, onFinish: { lease in Task { await cache.release(lease) } })
        var configuration = ServerConfiguration()
        configuration.port = 0
        configuration.maxBodyBytes = 64 << 10
        let access = AccessControl(keys: keys)
        var gatewayConfiguration = GatewayConfiguration()
        gatewayConfiguration.topicPrefix = prefix
        gatewayConfiguration.heartbeat = .seconds(1)
        gatewayConfiguration.logInteractions = logInteractions
        let gateway = try await Gateway(log: log, catalog: catalog, access: access,
                                        stateDirectory: directory.appendingPathComponent("gateway").path, configuration: gatewayConfiguration,
                                        metrics: GatewayMetrics(factory: PrometheusMetricsFactory(registry: prometheus)), logger: logger)
        let server = InferenceServer(configuration: configuration, engine: engine, cache: cache, registry: registry,
                                     watcher: AdapterWatcher(registry: registry, cache: cache, logger: logger),
                                     prometheus: prometheus, access: access, gateway: gateway, logger: logger)
        self.server = server
        self.registry = registry
        self.cache = cache
        serverTask = Task { try await server.run() }
        guard let port = await server.listeningPort() else { throw FixtureError("the server did not start listening") }
        self.port = port
        for _ in 0..<600 {
            if (try? await get("/readyz").status) == 200 { return }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw FixtureError("the server did not become ready")
    }

    func stop() async {
        serverTask?.cancel()
        _ = try? await serverTask?.value
        await registry?.close()
        try? FileManager.default.removeItem(at: directory)
    }

    var baseURL: String { "http://127.0.0.1:\(port)" }

    /// The values (as JSON objects) of every record on `topic` (prefixed), read from the start
    /// until `condition` holds for them or 120 s pass.
    func values(of topic: String, until condition: ([[String: Any]]) -> Bool) async throws -> [[String: Any]] {
        let admin = try log.makeAdmin()
        let partitions = try await admin.describeTopic(prefix + topic)?.partitions ?? 0
        await admin.close()
        let consumer = try log.makeConsumer(ConsumerConfiguration())
        let tps = (0..<partitions).map { TopicPartition(prefix + topic, $0) }
        try await consumer.assign(tps)
        try await consumer.seekToBeginning(tps)
        var values: [[String: Any]] = []
        let deadline = ContinuousClock.now + .seconds(120)
        while ContinuousClock.now < deadline && !condition(values) {
            for record in try await consumer.poll(maxRecords: 500, timeout: .milliseconds(200)) {
                if let object = try? JSONSerialization.jsonObject(with: Data(record.value ?? [])) as? [String: Any] { values.append(object) }
            }
        }
        await consumer.close()
        return values
    }

    // MARK: HTTP

    func get(_ path: String) async throws -> HTTPAnswer {
        try await http("GET", path, body: nil)
    }

    func post(_ path: String, json: [String: Any]) async throws -> HTTPAnswer {
        try await http("POST", path, body: try JSONSerialization.data(withJSONObject: json))
    }

    func post(_ path: String, raw: Data) async throws -> HTTPAnswer {
        try await http("POST", path, body: raw)
    }

    func http(_ method: String, _ path: String, body: Data?, key: String? = nil) async throws -> HTTPAnswer {
        try await LoopbackHTTP.request(port: port, method, path, body: body, headers: key.map { ["Authorization": "Bearer \($0)"] } ?? [:])
    }
}

struct FixtureError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
