import AttuneGateway
import AttuneServing

extension APIError {
    /// The API answer for an error from the serving layer.
    static func from(_ error: ServingError) -> APIError {
        switch error.kind {
        case .unknownModel: return APIError(.notFound, error.message, code: "model_not_found")
        case .unavailable: return APIError(.serviceUnavailable, error.message, code: "model_unavailable")
        case .invalidRequest:
            return APIError(.badRequest, error.message,
                            code: error.message.contains("context length") ? "context_length_exceeded" : "invalid_request")
        case .overloaded:
            var e = APIError(.tooManyRequests, error.message, type: "server_error", code: "overloaded")
            e.retryAfterSeconds = 1
            return e
        }
    }
}
