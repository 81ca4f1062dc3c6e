import AttuneServing
import Foundation
import HTTPTypes
import Hummingbird

/// An error answered in OpenAI's shape: `{"error": {"message", "type", "param", "code"}}`.
struct APIError: Error {
    let status: HTTPResponse.Status
    let message: String
    let type: String
    let code: String?
    var retryAfterSeconds: Int?

    init(_ status: HTTPResponse.Status, _ message: String, type: String = "invalid_request_error", code: String? = nil) {
        self.status = status
        self.message = message
        self.type = type
        self.code = code
    }

    static func badRequest(_ message: String, code: String? = nil) -> APIError { APIError(.badRequest, message, code: code) }

    /// The API answer for an error from the serving layer.
    static func from(_ error: ServingError) -> APIError {
        switch error.kind {
        case .unknownModel: return APIError(.notFound, error.message, code: "model_not_found")
        case .unavailable: return APIError(.serviceUnavailable, error.message, type: "server_error", code: "model_unavailable")
        case .invalidRequest:
            let code = error.message.contains("context length") ? "context_length_exceeded" : nil
            return APIError(.badRequest, error.message, code: code)
        case .overloaded:
            var e = APIError(.tooManyRequests, error.message, type: "server_error", code: "overloaded")
            e.retryAfterSeconds = 1
            return e
        }
    }

    var response: Response {
        struct Body: Encodable {
            struct Inner: Encodable {
                let message: String
                let type: String
                let param: String?
                let code: String?

                enum CodingKeys: String, CodingKey { case message, type, param, code }

                func encode(to encoder: any Encoder) throws {
                    var c = encoder.container(keyedBy: CodingKeys.self)
                    try c.encode(message, forKey: .message)
                    try c.encode(type, forKey: .type)
                    try c.encodeNil(forKey: .param)
                    try c.encode(code, forKey: .code)
                }
            }
            let error: Inner
        }
        let data = (try? JSONEncoder().encode(Body(error: .init(message: message, type: type, param: nil, code: code)))) ?? Data()
        var headers: HTTPFields = [.contentType: "application/json"]
        if let retryAfterSeconds { headers[.retryAfter] = "\(retryAfterSeconds)" }
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }
}
