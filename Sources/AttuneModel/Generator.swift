import AttuneTokenizer

/// What a generation is asked to do.
public struct GenerationRequest: Sendable {
    public var prompt: [Int32]
    public var maxTokens: Int
    public var sampling: SamplingParameters
    /// Generation ends when the text ends with any of these (the stop string is not returned).
    public var stop: [String]
    /// Stop at the tokenizer's end-of-sequence token.
    public var stopAtEOS: Bool

    public init(prompt: [Int32], maxTokens: Int = 128, sampling: SamplingParameters = .greedy,
                stop: [String] = [], stopAtEOS: Bool = true) {
        self.prompt = prompt
        self.maxTokens = maxTokens
        self.sampling = sampling
        self.stop = stop
        self.stopAtEOS = stopAtEOS
    }
}

/// Why a generation ended.
public enum FinishReason: String, Sendable, Codable {
    case stop, length
}

/// A finished generation.
public struct Generation: Sendable {
    public var tokens: [Int32]
    public var text: String
    public var finishReason: FinishReason
    public var promptTokens: Int
    /// Seconds spent on the prompt and on the new tokens.
    public var prefillSeconds: Double
    public var decodeSeconds: Double
}

/// Generates text with a model and its tokenizer, streaming pieces as they are produced.
public struct Generator: Sendable {
    public let model: LlamaModel
    public let tokenizer: BPETokenizer
    /// Adapter(s) applied on top of the frozen base, if any.
    public let adapter: (any LinearAdapter)?

    public init(model: LlamaModel, tokenizer: BPETokenizer, adapter: (any LinearAdapter)? = nil) {
        self.model = model
        self.tokenizer = tokenizer
        self.adapter = adapter
    }

    /// Runs `request`; `onText` receives each new piece of text and may return false to stop.
    public func generate(_ request: GenerationRequest, onText: (String) -> Bool = { _ in true }) throws -> Generation {
        guard !request.prompt.isEmpty else { throw ModelError.emptyInput }
        let cache = model.makeCache(capacity: request.prompt.count + request.maxTokens)
        var sampler = Sampler(request.sampling)
        var output = GeneratedText(tokenizer: tokenizer, stop: request.stop)
        var history = request.prompt
        var produced: [Int32] = []
        var reason = FinishReason.length
        let clock = ContinuousClock()
        let t0 = clock.now
        var logits = try model.forward(tokens: [request.prompt], caches: [cache], logits: .last, adapter: adapter)
        let t1 = clock.now

        while produced.count < request.maxTokens {
            let next = sampler.sample(logits[...], history: history)
            if request.stopAtEOS && next == tokenizer.eosID {
                reason = .stop
                break
            }
            produced.append(next)
            history.append(next)
            let (piece, stopped) = output.push(next)
            if stopped || (!piece.isEmpty && !onText(piece)) {
                reason = .stop
                break
            }
            if produced.count >= request.maxTokens || cache.count >= cache.limit { break }
            try model.forward(tokens: [[next]], caches: [cache], logits: .last, adapter: adapter, into: &logits)
        }
        let rest = output.finish(flush: reason == .length)
        if !rest.isEmpty { _ = onText(rest) }
        let text = output.text
        let t2 = clock.now
        return Generation(tokens: produced, text: text, finishReason: reason, promptTokens: request.prompt.count,
                          prefillSeconds: (t1 - t0).seconds, decodeSeconds: (t2 - t1).seconds)
    }

    /// The same generation as an async stream of text pieces.
    public func stream(_ request: GenerationRequest) -> AsyncThrowingStream<String, Error> {
        AsyncThrowingStream { continuation in
            let task = Task.detached {
                do {
                    _ = try generate(request) { piece in
                        if Task.isCancelled { return false }
                        continuation.yield(piece)
                        return true
                    }
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }
}

extension Duration {
    /// The duration in seconds.
    public var seconds: Double {
        let c = components
        return Double(c.seconds) + Double(c.attoseconds) * 1e-18
    }

    /// The duration in whole nanoseconds.
    public var nanoseconds: Int64 {
        let c = components
        return c.seconds * 1_000_000_000 + c.attoseconds / 1_000_000_000
    }
}
