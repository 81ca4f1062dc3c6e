import AttuneGateway
import AttuneModel
import AttuneRegistry
import AttuneServing
import AttuneTokenizer
import Foundation
import HTTPTypes
import Hummingbird

/// The handlers of the OpenAI-style routes: parse and validate, lease the adapter version,
/// submit to the engine, answer in one JSON body or as server-sent events.
struct OpenAIRoutes: Sendable {
    let server: InferenceServer

    private var engine: InferenceEngine { server.engine }
    private var tokenizer: BPETokenizer { server.engine.tokenizer }

    /// Runs a handler, turning thrown errors into OpenAI error responses.
    func respond(_ body: () async throws -> Response) async -> Response {
        await APIError.responding(mapping: { ($0 as? ServingError).map(APIError.from) },
                                  log: { [logger = server.logger] in logger.error("\($0)") }, body)
    }

    /// Refuses a caller that may not infer with `model` (base, a domain, or one of its tenants).
    private func check(_ principal: Principal, model: String) throws {
        if let reference = AdapterReference(parsing: model), !principal.mayUse(reference.name) {
            throw APIError(.forbidden, "this key may not use \(reference.name)", code: "tenant_forbidden")
        }
    }

    func completions(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let principal = try server.access.authorize(request, role: .infer)
        let body = try await decode(CompletionRequest.self, request, context)
        try check(principal, model: body.model)
        guard body.prompt.values.count == 1 else { throw APIError.badRequest("prompt must be one string", code: "invalid_prompt", param: "prompt") }
        let ids = tokenizer.encode(body.prompt.values[0], parseSpecial: false)
        return try await generate(body, prompt: ids, promptText: body.prompt.values[0],
                                  maxTokens: body.max_tokens ?? server.configuration.defaultCompletionTokens, chat: false)
    }

    func chat(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let principal = try server.access.authorize(request, role: .infer)
        let body = try await decode(ChatCompletionRequest.self, request, context)
        try check(principal, model: body.model)
        guard !body.messages.isEmpty else { throw APIError.badRequest("messages must not be empty", param: "messages") }
        let roles: Set = ["system", "user", "assistant", "developer"]
        for (i, m) in body.messages.enumerated() where !roles.contains(m.role) {
            throw APIError.badRequest("unsupported message role \"\(m.role)\"", param: "messages[\(i)].role")
        }
        let messages = body.messages.map { ChatMessage(role: $0.role == "developer" ? "system" : $0.role, content: $0.content.text) }
        let ids = tokenizer.encode(ChatTemplate.render(messages), parseSpecial: true)
        let maxTokens = body.max_completion_tokens ?? body.max_tokens ?? server.configuration.defaultChatTokens
        let question = messages.last(where: { $0.role == "user" })?.content ?? messages.last!.content
        return try await generate(body, prompt: ids, promptText: question, maxTokens: maxTokens, chat: true)
    }

    func score(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let principal = try server.access.authorize(request, role: .infer)
        let body = try await decode(ScoreRequest.self, request, context)
        try check(principal, model: body.model)
        var ids: [Int32] = []
        if let messages = body.messages {
            guard !messages.isEmpty else { throw APIError.badRequest("messages must not be empty", param: "messages") }
            ids = tokenizer.encode(ChatTemplate.render(messages.map { ChatMessage(role: $0.role == "developer" ? "system" : $0.role,
                                                                                 content: $0.content.text) }), parseSpecial: true)
        }
        let from = max(1, ids.count)
        ids += tokenizer.encode(body.text, parseSpecial: false)
        if body.messages != nil, let end = tokenizer.tokenID("<|im_end|>") { ids.append(end) }
        guard ids.count >= 2, ids.count > from else { throw APIError.badRequest("text must be at least two tokens long", param: "text") }
        let tokens = ids
        let lease = try await server.cache.acquire(body.model)
        let model = engine.model
        let window = min(model.config.contextLength, 512)
        let result: Result<Score, any Error> = await withCheckedContinuation { continuation in
            let thread = Thread {
                continuation.resume(returning: Result { try Scorer(model: model, adapter: lease.model.adapter).score(tokens, context: window, from: from) })
            }
            thread.stackSize = 8 << 20
            thread.start()
        }
        await server.cache.release(lease)
        let score = try result.get()
        return try json(ScoreResponse(model: lease.model.id, tokens: score.tokens, log_likelihood: score.logLikelihood,
                                      mean_nll: score.meanNLL, perplexity: score.perplexity, attune: servedBy(lease.model)),
                        served: lease.model)
    }

    func models(_ request: Request) async throws -> Response {
        let principal = try server.access.authorize(request, role: .infer)
        let created = server.createdSeconds, context = engine.model.config.contextLength
        var cards = [ModelCard(id: "base", created: created, parent: nil, root: "base", max_model_len: context, attune: nil)]
        let resident = Set(await server.cache.resident().map(\.id))
        for name in await server.registry.names where principal.mayUse(name) {
            let current = await server.cache.currentVersion(name)
            let latest = await server.registry.latest(name)
            guard let release = current ?? latest else { continue }
            let full = (try? await server.registry.resolve(AdapterReference(name, version: release.version))) ?? release
            cards.append(ModelCard(
                id: name.description, created: created, parent: full.domain ?? "base", root: "base", max_model_len: context,
                attune: .init(kind: name.kind.rawValue, version: full.version, sha256: full.sha256, previous: full.parent,
                              domain: full.domain, metrics: full.metrics, loaded: resident.contains(full.id))))
        }
        return try json(ModelList(data: cards), served: nil)
    }

    // MARK: Generation

    /// Runs one generation; a tenant adapter's completion is handed to the gateway (feedback by
    /// id, `--log-interactions`) with `promptText` as its prompt.
    private func generate(_ body: some GenerationParameters, prompt: [Int32], promptText: String, maxTokens: Int,
                          chat: Bool) async throws -> Response {
        let context = engine.model.config.contextLength
        if let n = body.n, n != 1 { throw APIError.badRequest("n must be 1 (one choice per request)", param: "n") }
        guard (1...context).contains(maxTokens) else {
            throw APIError.badRequest("max_tokens must be between 1 and \(context)", code: "invalid_max_tokens", param: "max_tokens")
        }
        let temperature = body.temperature ?? 1
        guard (0...2).contains(temperature) else { throw APIError.badRequest("temperature must be between 0 and 2", param: "temperature") }
        let topP = body.top_p ?? 1
        guard topP > 0 && topP <= 1 else { throw APIError.badRequest("top_p must be in (0, 1]", param: "top_p") }
        let stop = body.stop?.values ?? []
        guard stop.count <= 4, stop.allSatisfy({ !$0.isEmpty }) else { throw APIError.badRequest("stop takes up to 4 non-empty strings", param: "stop") }
        guard prompt.count + 1 <= context else {
            throw APIError.badRequest("the prompt is \(prompt.count) tokens; the context length is \(context)", code: "context_length_exceeded")
        }
        let sampling = SamplingParameters(temperature: temperature, topP: topP, seed: body.seed ?? UInt64.random(in: 0...UInt64.max))
        let lease = try await server.cache.acquire(body.model)
        let stream = try engine.submit(InferenceRequest(prompt: prompt, maxTokens: maxTokens, sampling: sampling, stop: stop, lease: lease))
        let id = (chat ? "chatcmpl-" : "cmpl-") + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased().prefix(24)
        let served = lease.model
        let gateway = server.gateway
        let record: @Sendable (String) async -> Void = { [user = body.user] text in
            guard let gateway, let name = served.name, name.kind == .tenant else { return }
            gateway.completed(ServedCompletion(id: String(id), tenant: name.liveID, user: user ?? "anonymous", prompt: promptText,
                                                     response: text, model: served.id))
        }
        if body.stream == true {
            return sse(stream, id: String(id), chat: chat, served: served, includeUsage: body.stream_options?.include_usage == true,
                       completed: record)
        }
        var text = ""
        for await event in stream.events {
            switch event {
            case .text(let piece): text += piece
            case .failed(let message): throw APIError(.internalServerError, message, type: "server_error")
            case .finished(let summary):
                await record(text)
                let usage = Usage(prompt_tokens: summary.promptTokens, completion_tokens: summary.completionTokens,
                                  total_tokens: summary.promptTokens + summary.completionTokens)
                let reason = summary.finishReason.rawValue
                if chat {
                    return try json(GenerationResponse(
                        id: String(id), object: "chat.completion", created: now(), model: served.id,
                        choices: [ChatChoice(message: ChatMessageOut(role: "assistant", content: text), finish_reason: reason)],
                        usage: usage, attune: servedBy(served)), served: served)
                }
                return try json(GenerationResponse(id: String(id), object: "text_completion", created: now(), model: served.id,
                                                   choices: [CompletionChoice(text: text, finish_reason: reason)],
                                                   usage: usage, attune: servedBy(served)), served: served)
            }
        }
        throw APIError(.internalServerError, "the generation ended without a result", type: "server_error")
    }

    /// Server-sent events: one chunk per text piece, a final chunk with the finish reason, the
    /// usage chunk when asked, then `data: [DONE]`. A client that goes away stops its sequence.
    private func sse(_ stream: InferenceEngine.Stream, id: String, chat: Bool, served: ServedModel, includeUsage: Bool,
                     completed: @escaping @Sendable (String) async -> Void) -> Response {
        let chunks = StreamChunks(id: id, created: now(), chat: chat, model: served.id, servedBy: servedBy(served))
        var headers = servedHeaders(served)
        headers[.contentType] = "text/event-stream"
        headers[.cacheControl] = "no-cache"
        return Response(status: .ok, headers: headers, body: ResponseBody { writer in
            defer { stream.cancel() }
            if chat { try await writer.write(try chunks.make("", role: "assistant", finish: nil)) }
            var text = ""
            for await event in stream.events {
                switch event {
                case .text(let piece):
                    text += piece
                    try await writer.write(try chunks.make(piece, finish: nil))
                case .failed(let message):
                    try await writer.write(ByteBuffer(string: "data: {\"error\":{\"message\":\(String(reflecting: message)),\"type\":\"server_error\"}}\n\n"))
                case .finished(let summary):
                    await completed(text)
                    try await writer.write(try chunks.make(chat ? nil : "", finish: summary.finishReason.rawValue))
                    if includeUsage {
                        let usage = Usage(prompt_tokens: summary.promptTokens, completion_tokens: summary.completionTokens,
                                          total_tokens: summary.promptTokens + summary.completionTokens)
                        try await writer.write(try chunks.make(nil, finish: nil, usage: usage, empty: true))
                    }
                }
            }
            try await writer.write(ByteBuffer(string: "data: [DONE]\n\n"))
            try await writer.finish(nil)
        })
    }

    // MARK: Helpers

    private func decode<T: Decodable>(_ type: T.Type, _ request: Request, _ context: BasicRequestContext) async throws -> T {
        var request = request
        let buffer: ByteBuffer
        do {
            buffer = try await request.collectBody(upTo: server.configuration.maxBodyBytes)
        } catch {
            throw APIError(.contentTooLarge, "the request body is over the \(server.configuration.maxBodyBytes)-byte limit", code: "body_too_large")
        }
        do {
            return try JSONDecoder().decode(T.self, from: Data(buffer.readableBytesView))
        } catch let DecodingError.keyNotFound(key, context) {
            throw APIError.badRequest("missing field \"\(key.stringValue)\"", param: path(context.codingPath + [key]))
        } catch let DecodingError.typeMismatch(_, context) {
            throw APIError.badRequest("wrong type at \(path(context.codingPath)): \(context.debugDescription)", param: path(context.codingPath))
        } catch let DecodingError.valueNotFound(_, context) {
            throw APIError.badRequest("null value at \(path(context.codingPath))", param: path(context.codingPath))
        } catch let DecodingError.dataCorrupted(context) {
            throw APIError.badRequest(context.codingPath.isEmpty ? "the body is not valid JSON" : "invalid value at \(path(context.codingPath)): \(context.debugDescription)")
        } catch {
            throw APIError.badRequest("the body is not valid JSON: \(error)")
        }
    }

    /// A field's path as OpenAI's `param` spells it: `messages[0].content`.
    private func path(_ keys: [any CodingKey]) -> String {
        keys.reduce("") { text, key in
            if let index = key.intValue { return text + "[\(index)]" }
            return text.isEmpty ? key.stringValue : text + "." + key.stringValue
        }
    }

    private func servedBy(_ model: ServedModel) -> ServedBy {
        ServedBy(model: model.id, adapter: model.name?.description, version: model.release?.version,
                 sha256: model.release?.sha256, domain: model.release?.domain)
    }

    private func servedHeaders(_ model: ServedModel) -> HTTPFields {
        var headers: HTTPFields = [:]
        headers[HTTPField.Name("x-attune-adapter")!] = model.id
        if let release = model.release { headers[HTTPField.Name("x-attune-adapter-sha256")!] = release.sha256 }
        return headers
    }

    private func json(_ value: some Encodable, served: ServedModel?) throws -> Response {
        var headers = served.map(servedHeaders) ?? [:]
        headers[.contentType] = "application/json"
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: try JSONEncoder().encode(value))))
    }

    private func now() -> Int { Int(Date().timeIntervalSince1970) }
}

/// The `data:` events of one streamed response, in the completion or chat chunk shape.
private struct StreamChunks: Sendable {
    let id: String
    let created: Int
    let chat: Bool
    let model: String
    let servedBy: ServedBy

    func make(_ text: String?, role: String? = nil, finish: String?, usage: Usage? = nil, empty: Bool = false) throws -> ByteBuffer {
        let data: Data
        if chat {
            let choices = empty ? [] : [ChatChoice(delta: ChatMessageOut(role: role, content: text), finish_reason: finish)]
            data = try JSONEncoder().encode(GenerationResponse(id: id, object: "chat.completion.chunk", created: created,
                                                                   model: model, choices: choices, usage: usage, attune: servedBy))
        } else {
            let choices = empty ? [] : [CompletionChoice(text: text ?? "", finish_reason: finish)]
            data = try JSONEncoder().encode(GenerationResponse(id: id, object: "text_completion", created: created, model: model, choices: choices,
                                                               usage: usage, attune: servedBy))
        }
        var buffer = ByteBuffer(string: "data: ")
        buffer.writeBytes(data)
        buffer.writeString("\n\n")
        return buffer
    }
}
