import Foundation
import Hummingbird
import Logging
import Prometheus
import ServiceLifecycle
import Synchronization

/// `attune gateway` alone: the gateway's routes and the common ones on one port, as a
/// swift-service-lifecycle service (graceful shutdown closes the listener, then the producer).
public final class GatewayServer: Service, Sendable {
    public let gateway: Gateway
    let host: String
    let port: Int
    let prometheus: PrometheusCollectorRegistry
    let tls: TLSFiles?
    let idleTimeout: Duration?
    let logger: Logger
    private let bound = Mutex<Int?>(nil)

    public init(gateway: Gateway, host: String, port: Int, prometheus: PrometheusCollectorRegistry, tls: TLSFiles? = nil,
                idleTimeout: Duration? = .seconds(60), logger: Logger) {
        self.tls = tls
        self.idleTimeout = idleTimeout
        self.gateway = gateway
        self.host = host
        self.port = port
        self.prometheus = prometheus
        self.logger = logger
    }

    /// The port it listens on, once it does.
    public var listeningPort: Int? { bound.withLock { $0 } }

    public func run() async throws {
        let router = Router(context: BasicRequestContext.self)
        router.add(middleware: JSONErrorMiddleware())
        gateway.addRoutes(to: router)
        CommonRoutes.add(to: router, prometheus: prometheus, ready: { [gateway] in gateway.health.answering },
                         notReady: "the event log does not answer")
        router.add(middleware: MethodNotAllowedMiddleware(routes: router.routes))
        let watch = Task { [gateway] in await gateway.watchLog() }
        defer { watch.cancel() }
        let app = Application(router: router, server: try TLSFiles.serverBuilder(tls, idleTimeout: idleTimeout), configuration: .init(address: .hostname(host, port: port), serverName: "attune"),
                              services: [gateway.webhooks],
                              onServerRunning: { [self, logger] channel in
                                  self.bound.withLock { $0 = channel.localAddress?.port }
                                  logger.info("attune gateway listening", metadata: ["address": "\(channel.localAddress.map { "\($0)" } ?? "?")"])
                              }, logger: logger)
        do {
            try await app.run()
        } catch {
            await gateway.close()
            throw error
        }
        await gateway.close()
    }
}
