import AttuneModel
import AttuneRegistry
import AttuneServing
import AttuneTokenizer
import Foundation
import Hummingbird
import Logging
import Prometheus
import ServiceLifecycle

/// Where and how the HTTP API listens.
public struct ServerConfiguration: Sendable {
    public var host = "127.0.0.1"
    /// 0 picks a free port (see `InferenceServer.listeningPort`).
    public var port = 8000
    /// Largest request body accepted (413 beyond).
    public var maxBodyBytes = 1 << 20
    /// `max_tokens` when a completion request gives none (OpenAI's default).
    public var defaultCompletionTokens = 16
    /// `max_tokens` when a chat request gives none.
    public var defaultChatTokens = 256

    public init() {}
}

/// The inference worker's HTTP API (OpenAI-style completions and chat, models, score, health,
/// readiness, Prometheus metrics, its OpenAPI document) over the continuous-batching engine
/// and the hot-swapping adapter cache. A swift-service-lifecycle service: on graceful
/// shutdown it stops accepting connections, lets running generations finish, then stops
/// following the adapter topics.
public final class InferenceServer: Service, @unchecked Sendable {
    public let configuration: ServerConfiguration
    let engine: InferenceEngine
    let cache: AdapterCache
    let registry: AdapterRegistry
    let watcher: AdapterWatcher
    let prometheus: PrometheusCollectorRegistry
    let logger: Logger
    private let started = Date()
    private let portBox = PortBox()

    public init(configuration: ServerConfiguration, engine: InferenceEngine, cache: AdapterCache, registry: AdapterRegistry,
                watcher: AdapterWatcher, prometheus: PrometheusCollectorRegistry, logger: Logger) {
        self.configuration = configuration
        self.engine = engine
        self.cache = cache
        self.registry = registry
        self.watcher = watcher
        self.prometheus = prometheus
        self.logger = logger
    }

    /// The port the server listens on, once it does.
    public func listeningPort(timeout: Duration = .seconds(60)) async -> Int? {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let port = portBox.port { return port }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return nil
    }

    public func run() async throws {
        let app = Application(
            router: makeRouter(),
            configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "attune"),
            services: [EngineDrain(engine: engine), WatcherService(watcher: watcher)],
            onServerRunning: { [portBox, logger] channel in
                portBox.port = channel.localAddress?.port
                logger.info("attune serve listening", metadata: ["address": "\(channel.localAddress.map { "\($0)" } ?? "?")"])
            },
            logger: logger)
        try await app.run()
    }

    func makeRouter() -> Router<BasicRequestContext> {
        let router = Router(context: BasicRequestContext.self)
        let api = OpenAIRoutes(server: self)
        router.post("/v1/completions") { request, context in await api.respond { try await api.completions(request, context) } }
        router.post("/v1/chat/completions") { request, context in await api.respond { try await api.chat(request, context) } }
        router.post("/v1/score") { request, context in await api.respond { try await api.score(request, context) } }
        router.get("/v1/models") { _, _ in await api.respond { try await api.models() } }
        router.get("/healthz") { _, _ in Response(status: .ok, body: .init(byteBuffer: ByteBuffer(string: "ok\n"))) }
        router.get("/readyz") { [watcher] _, _ in
            watcher.isReady
                ? Response(status: .ok, body: .init(byteBuffer: ByteBuffer(string: "ready\n")))
                : Response(status: .serviceUnavailable, body: .init(byteBuffer: ByteBuffer(string: "catching up with the adapter topics\n")))
        }
        router.get("/metrics") { [prometheus] _, _ in
            Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
                     body: .init(byteBuffer: ByteBuffer(bytes: prometheus.emitToBuffer())))
        }
        router.get("/openapi.json") { _, _ in
            guard let url = Bundle.module.url(forResource: "openapi", withExtension: "json"), let data = try? Data(contentsOf: url) else {
                return APIError(.internalServerError, "the OpenAPI document is missing from this build", type: "server_error").response
            }
            return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
        }
        return router
    }

    var createdSeconds: Int { Int(started.timeIntervalSince1970) }
}

/// Lets running generations finish when the server shuts down.
private struct EngineDrain: Service {
    let engine: InferenceEngine

    func run() async throws {
        try? await gracefulShutdown()
        await engine.drain()
    }
}

/// Follows the adapter topics until the server shuts down.
private struct WatcherService: Service {
    let watcher: AdapterWatcher

    func run() async throws {
        try await cancelWhenGracefulShutdown { try await watcher.run() }
    }
}

private final class PortBox: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Int?
    var port: Int? {
        get { lock.withLock { value } }
        set { lock.withLock { value = newValue } }
    }
}
