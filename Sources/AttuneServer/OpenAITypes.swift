import Foundation

/// A string or a list of strings (OpenAI's `prompt` and `stop`).
struct OneOrMany: Decodable {
    let values: [String]

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let one = try? container.decode(String.self) {
            values = [one]
        } else if let many = try? container.decode([String].self) {
            values = many
        } else {
            throw DecodingError.typeMismatch([String].self, .init(codingPath: decoder.codingPath,
                                                                 debugDescription: "expected a string or a list of strings"))
        }
    }
}

struct StreamOptions: Decodable {
    var include_usage: Bool?
}

/// The sampling and length fields completions and chat share.
protocol GenerationParameters {
    var model: String { get }
    var max_tokens: Int? { get }
    var temperature: Float? { get }
    var top_p: Float? { get }
    var seed: UInt64? { get }
    var stop: OneOrMany? { get }
    var n: Int? { get }
    var stream: Bool? { get }
    var stream_options: StreamOptions? { get }
    /// The application's end user (OpenAI's `user`), recorded with a logged interaction.
    var user: String? { get }
}

/// `POST /v1/completions`.
struct CompletionRequest: Decodable, GenerationParameters {
    var model: String
    var prompt: OneOrMany
    var max_tokens: Int?
    var temperature: Float?
    var top_p: Float?
    var seed: UInt64?
    var stop: OneOrMany?
    var n: Int?
    var stream: Bool?
    var stream_options: StreamOptions?
    var user: String?
}

/// A chat message's content: a string, or a list of `{"type": "text", "text": …}` parts.
struct MessageContent: Decodable {
    let text: String

    private struct Part: Decodable {
        var type: String
        var text: String?
    }

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let plain = try? container.decode(String.self) {
            text = plain
            return
        }
        let parts = try container.decode([Part].self)
        guard parts.allSatisfy({ $0.type == "text" && $0.text != nil }) else {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "only text content parts are supported")
        }
        text = parts.compactMap(\.text).joined()
    }
}

struct ChatMessageIn: Decodable {
    var role: String
    var content: MessageContent
}

/// `POST /v1/chat/completions`.
struct ChatCompletionRequest: Decodable, GenerationParameters {
    var model: String
    var messages: [ChatMessageIn]
    var max_tokens: Int?
    var max_completion_tokens: Int?
    var temperature: Float?
    var top_p: Float?
    var seed: UInt64?
    var stop: OneOrMany?
    var n: Int?
    var stream: Bool?
    var stream_options: StreamOptions?
    var user: String?
}

/// `POST /v1/score`.
struct ScoreRequest: Decodable {
    var model: String
    var text: String
    /// With messages, `text` is scored as the assistant's answer to them (ended by `<|im_end|>`).
    var messages: [ChatMessageIn]?
}

struct Usage: Encodable {
    var prompt_tokens: Int
    var completion_tokens: Int
    var total_tokens: Int
}

/// Which adapter version served a response (also in the `x-attune-adapter` headers).
struct ServedBy: Encodable {
    var model: String
    var adapter: String?
    var version: Int?
    var sha256: String?
    var domain: String?
}

struct CompletionChoice: Encodable {
    var index = 0
    var text: String
    var logprobs: String? = nil
    var finish_reason: String?

    enum CodingKeys: String, CodingKey { case index, text, logprobs, finish_reason }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(index, forKey: .index)
        try c.encode(text, forKey: .text)
        try c.encodeNil(forKey: .logprobs)
        try c.encode(finish_reason, forKey: .finish_reason)
    }
}

/// A completion or chat answer, whole or as one streamed chunk (`choices` of the route's kind;
/// `usage` written as null when absent, as OpenAI does).
struct GenerationResponse<Choice: Encodable>: Encodable {
    var id: String
    var object: String
    var created: Int
    var model: String
    var choices: [Choice]
    var usage: Usage?
    var attune: ServedBy

    enum CodingKeys: String, CodingKey { case id, object, created, model, choices, usage, attune }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(id, forKey: .id)
        try c.encode(object, forKey: .object)
        try c.encode(created, forKey: .created)
        try c.encode(model, forKey: .model)
        try c.encode(choices, forKey: .choices)
        try c.encode(usage, forKey: .usage)
        try c.encode(attune, forKey: .attune)
    }
}

struct ChatMessageOut: Encodable {
    var role: String?
    var content: String?
}

struct ChatChoice: Encodable {
    var index = 0
    var message: ChatMessageOut?
    var delta: ChatMessageOut?
    var logprobs: String? = nil
    var finish_reason: String?

    enum CodingKeys: String, CodingKey { case index, message, delta, logprobs, finish_reason }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(index, forKey: .index)
        try c.encodeIfPresent(message, forKey: .message)
        try c.encodeIfPresent(delta, forKey: .delta)
        try c.encodeNil(forKey: .logprobs)
        try c.encode(finish_reason, forKey: .finish_reason)
    }
}

/// One entry of `GET /v1/models`.
struct ModelCard: Encodable {
    var id: String
    var object = "model"
    var created: Int
    var owned_by = "attune"
    /// vLLM's field: what this model is applied on (the base model, or the domain version).
    var parent: String?
    var root: String
    /// vLLM's field: the context length in tokens (prompt and completion together).
    var max_model_len: Int
    var attune: Details?

    struct Details: Encodable {
        var kind: String
        var version: Int
        var sha256: String
        var previous: String?
        var domain: String?
        var metrics: [String: Double]
        var loaded: Bool
    }
}

struct ModelList: Encodable {
    var object = "list"
    var data: [ModelCard]
}

struct ScoreResponse: Encodable {
    var object = "score"
    var model: String
    var tokens: Int
    var log_likelihood: Double
    var mean_nll: Double
    var perplexity: Double
    var attune: ServedBy
}
