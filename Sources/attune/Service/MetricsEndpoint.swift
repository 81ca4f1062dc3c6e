import Foundation
import Hummingbird
import Logging
import Prometheus
import ServiceLifecycle

/// A small HTTP endpoint for a long-running command: `/metrics` (Prometheus text format),
/// `/healthz` (the process answers) and `/readyz` (the command says it is ready).
struct MetricsEndpoint: Service {
    let host: String
    let port: Int
    let registry: PrometheusCollectorRegistry
    let ready: @Sendable () -> Bool
    let logger: Logger

    func run() async throws {
        let router = Router(context: BasicRequestContext.self)
        router.get("/metrics") { [registry] _, _ in
            Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
                     body: .init(byteBuffer: ByteBuffer(bytes: registry.emitToBuffer())))
        }
        router.get("/healthz") { _, _ in Response(status: .ok, body: .init(byteBuffer: ByteBuffer(string: "ok\n"))) }
        router.get("/readyz") { [ready] _, _ in
            ready() ? Response(status: .ok, body: .init(byteBuffer: ByteBuffer(string: "ready\n")))
                : Response(status: .serviceUnavailable, body: .init(byteBuffer: ByteBuffer(string: "not ready\n")))
        }
        let app = Application(router: router, configuration: .init(address: .hostname(host, port: port), serverName: "attune"),
                              onServerRunning: { [logger] channel in
                                  logger.info("metrics on http://\(host):\(channel.localAddress?.port ?? port)/metrics")
                              }, logger: logger)
        try await app.run()
    }
}
