import Foundation
import HTTPTypes
import Hummingbird

/// An error answered in OpenAI's shape, `{"error": {"message", "type", "param", "code"}}`,
/// with a stable `code` for every 4xx and 5xx of the gateway and the inference API.
public struct APIError: Error, CustomStringConvertible, Sendable {
    public let status: HTTPResponse.Status
    public let message: String
    public let type: String
    public let code: String?
    /// The request field at fault (`max_tokens`, `messages[0].role`), when there is one.
    public let param: String?
    public var retryAfterSeconds: Int?
    /// The methods the path answers, for a 405.
    public var allow: [String]?

    public init(_ status: HTTPResponse.Status, _ message: String, type: String? = nil, code: String? = nil, param: String? = nil) {
        self.status = status
        self.message = message
        self.type = type ?? Self.defaultType(status)
        self.code = code
        self.param = param
    }

    public static func badRequest(_ message: String, code: String? = "invalid_request", param: String? = nil) -> APIError {
        APIError(.badRequest, message, code: code, param: param)
    }

    public var description: String { "\(status.code) \(code ?? type): \(message)" }

    private static func defaultType(_ status: HTTPResponse.Status) -> String {
        switch status.code {
        case 401: return "authentication_error"
        case 403: return "permission_error"
        case 404: return "not_found_error"
        case 429: return "rate_limit_error"
        case 500...: return "server_error"
        default: return "invalid_request_error"
        }
    }

    public var response: Response {
        struct Body: Encodable {
            struct Inner: Encodable {
                let message: String
                let type: String
                let code: String?
                let param: String?

                enum CodingKeys: String, CodingKey { case message, type, param, code }

                func encode(to encoder: any Encoder) throws {
                    var c = encoder.container(keyedBy: CodingKeys.self)
                    try c.encode(message, forKey: .message)
                    try c.encode(type, forKey: .type)
                    try c.encode(param, forKey: .param)
                    try c.encode(code, forKey: .code)
                }
            }
            let error: Inner
        }
        let data = (try? JSONEncoder().encode(Body(error: .init(message: message, type: type, code: code, param: param)))) ?? Data()
        var headers: HTTPFields = [.contentType: "application/json"]
        if let retryAfterSeconds { headers[.retryAfter] = "\(retryAfterSeconds)" }
        if let allow { headers[.allow] = allow.joined(separator: ", ") }
        if status == .unauthorized { headers[.wwwAuthenticate] = "Bearer" }
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    /// Runs a handler, turning thrown errors into error responses (`mapping` translates
    /// errors of other layers; anything else is a logged 500).
    public static func responding(mapping: (any Error) -> APIError? = { _ in nil }, log: (String) -> Void,
                                  _ body: () async throws -> Response) async -> Response {
        do {
            return try await body()
        } catch let error as APIError {
            return error.response
        } catch {
            if let mapped = mapping(error) { return mapped.response }
            log("request failed: \(error)")
            return APIError(.internalServerError, "\(error)", code: "internal_error").response
        }
    }
}
