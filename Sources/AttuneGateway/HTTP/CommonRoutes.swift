import Foundation
import Hummingbird
import Prometheus

/// The OpenAPI 3.1 document of the whole HTTP API (gateway and inference), built into the binary.
public enum OpenAPIDocument {
    public static var data: Data? {
        Bundle.module.url(forResource: "openapi", withExtension: "json").flatMap { try? Data(contentsOf: $0) }
    }
}

/// Routes every Attune HTTP process answers: `/healthz`, `/readyz`, `/metrics`, `/openapi.json`.
public enum CommonRoutes {
    public static func add(to router: Router<BasicRequestContext>, prometheus: PrometheusCollectorRegistry,
                           ready: @escaping @Sendable () -> Bool, notReady: String) {
        router.get("/healthz") { _, _ in Response(status: .ok, body: .init(byteBuffer: ByteBuffer(string: "ok\n"))) }
        router.get("/readyz") { _, _ in
            ready() ? Response(status: .ok, body: .init(byteBuffer: ByteBuffer(string: "ready\n")))
                : Response(status: .serviceUnavailable, body: .init(byteBuffer: ByteBuffer(string: notReady + "\n")))
        }
        router.get("/metrics") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
                     body: .init(byteBuffer: ByteBuffer(bytes: prometheus.emitToBuffer())))
        }
        router.get("/openapi.json") { _, _ in
            guard let data = OpenAPIDocument.data else {
                return APIError(.internalServerError, "the OpenAPI document is missing from this build", code: "internal_error").response
            }
            return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
        }
    }
}

/// Tells a known path asked with the wrong method (405 with `Allow`, as RFC 9110 asks) from a
/// path no route has (404). Added to a router after its routes, so only its not-found answer
/// passes through it: `router.add(middleware: MethodNotAllowedMiddleware(routes: router.routes))`.
public struct MethodNotAllowedMiddleware<Context: RequestContext>: RouterMiddleware {
    /// Each route's path as segments (nil for a `{capture}` or `*`) and its method.
    private let routes: [(segments: [Substring?], method: String)]

    public init(routes: [Router<Context>.RouteDescription]) {
        self.routes = routes.map { route in
            (route.path.description.split(separator: "/").map { $0.hasPrefix("{") || $0.hasPrefix("*") ? nil : $0 },
             route.method.rawValue)
        }
    }

    /// The methods the routes answer on `path`, in the order they were added.
    func methods(for path: String) -> [String] {
        let parts = path.split(separator: "/")
        var found: [String] = []
        for route in routes where route.segments.count == parts.count && !found.contains(route.method) {
            if zip(route.segments, parts).allSatisfy({ $0 == nil || $0 == $1 }) { found.append(route.method) }
        }
        return found
    }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as HTTPError where error.status == .notFound {
            let allowed = methods(for: request.uri.path)
            guard !allowed.isEmpty else { throw error }
            var answer = APIError(.methodNotAllowed, "\(request.uri.path) answers \(allowed.joined(separator: ", ")), not \(request.method)",
                                  code: "method_not_allowed")
            answer.allow = allowed
            return answer.response
        }
    }
}

/// Answers errors the framework raises (an unknown route, a bad method, an unreadable body)
/// with the same JSON error object as every other 4xx and 5xx.
public struct JSONErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    public init() {}

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as HTTPError {
            let code: String
            switch error.status.code {
            case 404: code = "unknown_route"
            case 405: code = "method_not_allowed"
            case 413: code = "body_too_large"
            default: code = "http_\(error.status.code)"
            }
            let message = error.status.code == 404 ? "no route \(request.method) \(request.uri.path)" : error.body ?? error.status.reasonPhrase
            return APIError(error.status, message, code: code).response
        }
    }
}
