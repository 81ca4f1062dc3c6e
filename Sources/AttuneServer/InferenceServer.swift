import AttuneGateway
import AttuneModel
import AttuneRegistry
import AttuneServing
import AttuneTokenizer
import Foundation
import Hummingbird
import Logging
import Prometheus
import ServiceLifecycle
import Synchronization

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
    /// Certificate and key for HTTPS; nil serves plain HTTP.
    public var tls: TLSFiles?
    /// A connection silent this long while sending a request, or between requests, is closed.
    public var idleTimeout: Duration? = .seconds(60)

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
    let access: AccessControl
    let gateway: Gateway?
    let logger: Logger
    let alsoReady: @Sendable () -> Bool
    private let started = Date()
    private let bound = Mutex<Int?>(nil)

    /// With a `gateway`, its routes (interactions, corpora, events) are served too; `access`
    /// guards every route but health, readiness, metrics and the OpenAPI document. `/readyz`
    /// answers ready when the watcher is and `alsoReady` says so (a training worker in the same process).
    public init(configuration: ServerConfiguration, engine: InferenceEngine, cache: AdapterCache, registry: AdapterRegistry,
                watcher: AdapterWatcher, prometheus: PrometheusCollectorRegistry, access: AccessControl = .open,
                gateway: Gateway? = nil, alsoReady: @escaping @Sendable () -> Bool = { true }, logger: Logger) {
        self.alsoReady = alsoReady
        self.configuration = configuration
        self.access = access
        self.gateway = gateway
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
            if let port = bound.withLock({ $0 }) { return port }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return nil
    }

    public func run() async throws {
        let app = Application(
            router: makeRouter(),
            server: try TLSFiles.serverBuilder(configuration.tls, idleTimeout: configuration.idleTimeout),
            configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "attune"),
            services: [EngineDrain(engine: engine), WatcherService(watcher: watcher)] + (gateway.map { [$0.webhooks] } ?? []),
            onServerRunning: { [self, logger] channel in
                self.bound.withLock { $0 = channel.localAddress?.port }
                logger.info("attune serve listening", metadata: ["address": "\(channel.localAddress.map { "\($0)" } ?? "?")"])
            },
            logger: logger)
        do {
            try await app.run()
        } catch {
            await gateway?.close()
            throw error
        }
        await gateway?.close()
    }

    func makeRouter() -> Router<BasicRequestContext> {
        let router = Router(context: BasicRequestContext.self)
        router.add(middleware: JSONErrorMiddleware())
        let api = OpenAIRoutes(server: self)
        router.post("/v1/completions") { request, context in await api.respond { try await api.completions(request, context) } }
        router.post("/v1/chat/completions") { request, context in await api.respond { try await api.chat(request, context) } }
        router.post("/v1/score") { request, context in await api.respond { try await api.score(request, context) } }
        router.get("/v1/models") { request, _ in await api.respond { try await api.models(request) } }
        gateway?.addRoutes(to: router)
        CommonRoutes.add(to: router, prometheus: prometheus, ready: { [watcher, alsoReady] in watcher.isReady && alsoReady() },
                         notReady: "catching up with the adapter topics, or the event log does not answer")
        router.add(middleware: MethodNotAllowedMiddleware(routes: router.routes))
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
