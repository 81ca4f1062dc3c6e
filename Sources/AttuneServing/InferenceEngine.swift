import AttuneModel
import AttuneTokenizer
import Foundation

/// A generation asked of the engine, with the adapter version it was admitted on.
public struct InferenceRequest: Sendable {
    public var prompt: [Int32]
    public var maxTokens: Int
    public var sampling: SamplingParameters
    public var stop: [String]
    public var lease: AdapterLease

    public init(prompt: [Int32], maxTokens: Int, sampling: SamplingParameters = .greedy, stop: [String] = [], lease: AdapterLease) {
        self.prompt = prompt
        self.maxTokens = maxTokens
        self.sampling = sampling
        self.stop = stop
        self.lease = lease
    }
}

/// How a generation ended.
public struct InferenceSummary: Sendable {
    public var finishReason: FinishReason
    public var promptTokens: Int
    public var completionTokens: Int
    public var tokens: [Int32]
    /// When the request was submitted, and when its first and last tokens were sampled.
    public var submittedAt: ContinuousClock.Instant
    public var firstTokenAt: ContinuousClock.Instant?
    public var lastTokenAt: ContinuousClock.Instant?
}

/// What a generation streams: text pieces, then its summary (or a failure).
public enum InferenceEvent: Sendable {
    case text(String)
    case finished(InferenceSummary)
    case failed(String)
}

/// Limits of the engine.
public struct EngineConfiguration: Sendable {
    /// KV-cache memory all running sequences may use together; each sequence reserves its
    /// prompt plus `max_tokens` positions at admission.
    public var kvMemoryBytes: Int = 1 << 30
    /// Most sequences in one decode step.
    public var maxBatch: Int = 64
    /// Most requests waiting for admission; past it new requests are refused (429).
    public var maxWaiting: Int = 256

    public init(kvMemoryBytes: Int = 1 << 30, maxBatch: Int = 64, maxWaiting: Int = 256) {
        self.kvMemoryBytes = kvMemoryBytes
        self.maxBatch = maxBatch
        self.maxWaiting = maxWaiting
    }
}

/// The prompts admitted into one step: any number, or one alone when the model gives each row
/// the bits it gets alone only that way (`LlamaModel.batchInvariantPromptsAlone`). One-token
/// prompts are decode rows and always fit.
public struct PromptBudget: Sendable {
    public let onePrompt: Bool
    public private(set) var prompts = 0

    public init(onePrompt: Bool) { self.onePrompt = onePrompt }

    /// Takes a prompt of `length` tokens into the step if it fits; false leaves the budget as it was.
    public mutating func admit(_ length: Int) -> Bool {
        guard length > 1 else { return true }
        if onePrompt && prompts > 0 { return false }
        prompts += 1
        return true
    }
}

/// Continuous batching over decode steps on one dedicated thread (never the async executor):
/// between steps, finished or cancelled sequences leave and waiting ones join when their KV
/// memory fits. Each step is one forward pass over every running sequence — prompts of newly
/// admitted ones (prefill) and the last token of the others (decode) — in which the base
/// model's products run once for all rows and each adapter group adds its low-rank terms to
/// its own rows (`RowGroupedAdapter`). Sequences are ordered by adapter version so each
/// version's rows are contiguous. A step takes new prompts within a `PromptBudget`, so with
/// quantized weights a request's tokens do not depend on what else is in its batch.
public final class InferenceEngine: @unchecked Sendable {
    /// A submitted generation: its events, and a way to stop it (a client that went away).
    public struct Stream: Sendable {
        public let events: AsyncStream<InferenceEvent>
        let sequence: Sequence

        public func cancel() { sequence.cancel() }
    }

    final class Sequence: @unchecked Sendable {
        let request: InferenceRequest
        let kvBytes: Int
        let continuation: AsyncStream<InferenceEvent>.Continuation
        let submitted = ContinuousClock.now
        var cache: KVCache?
        var sampler: Sampler
        var text: GeneratedText
        var history: [Int32]
        var produced: [Int32] = []
        var firstTokenAt: ContinuousClock.Instant?
        var lastTokenAt: ContinuousClock.Instant?
        private let lock = NSLock()
        private var cancelledFlag = false

        init(request: InferenceRequest, kvBytes: Int, tokenizer: BPETokenizer, continuation: AsyncStream<InferenceEvent>.Continuation) {
            self.request = request
            self.kvBytes = kvBytes
            self.continuation = continuation
            sampler = Sampler(request.sampling)
            text = GeneratedText(tokenizer: tokenizer, stop: request.stop)
            history = request.prompt
        }

        var cancelled: Bool { lock.withLock { cancelledFlag } }
        func cancel() { lock.withLock { cancelledFlag = true } }
    }

    public let model: LlamaModel
    public let tokenizer: BPETokenizer
    public let configuration: EngineConfiguration
    private let metrics: ServingMetrics
    private let onFinish: @Sendable (AdapterLease) -> Void
    private let condition = NSCondition()
    private var waiting: [Sequence] = []
    private var kvUsed = 0
    private var runningCount = 0
    private var stopping = false
    private var thread: Thread?
    /// The last step's logits (the loop thread's alone), kept so each step reuses the storage.
    private var logits: [Float] = []
    private let stopped = NSCondition()
    private var finishedLoop = false

    /// `onFinish` receives each request's lease when it ends (to give it back to the cache).
    public init(model: LlamaModel, tokenizer: BPETokenizer, configuration: EngineConfiguration, metrics: ServingMetrics,
                onFinish: @escaping @Sendable (AdapterLease) -> Void) {
        self.model = model
        self.tokenizer = tokenizer
        self.configuration = configuration
        self.metrics = metrics
        self.onFinish = onFinish
    }

    /// KV-cache bytes one sequence of `positions` positions reserves.
    public func kvBytes(positions: Int) -> Int {
        KVCache.bytes(config: model.config, positions: positions, precision: model.kvPrecision)
    }

    /// Queues a generation. Throws `.invalidRequest` for one that can never run (empty, past
    /// the context, larger than the whole KV budget) and `.overloaded` when the queue is full.
    /// The lease is given back when the generation ends, or here if it is refused.
    public func submit(_ request: InferenceRequest) throws -> Stream {
        do {
            let positions = request.prompt.count + request.maxTokens
            guard !request.prompt.isEmpty else { throw ServingError(.invalidRequest, "the prompt is empty") }
            guard request.maxTokens >= 1 else { throw ServingError(.invalidRequest, "max_tokens must be at least 1") }
            guard positions <= model.config.contextLength else {
                throw ServingError(.invalidRequest, "prompt (\(request.prompt.count) tokens) plus max_tokens (\(request.maxTokens)) exceeds the context length \(model.config.contextLength)")
            }
            for t in request.prompt where t < 0 || Int(t) >= model.config.vocabSize {
                throw ServingError(.invalidRequest, "token id \(t) is outside the vocabulary")
            }
            let bytes = kvBytes(positions: positions)
            guard bytes <= configuration.kvMemoryBytes else {
                throw ServingError(.invalidRequest, "the request needs \(bytes) bytes of KV cache, more than the server's whole budget (\(configuration.kvMemoryBytes))")
            }
            let (events, continuation) = AsyncStream<InferenceEvent>.makeStream()
            let sequence = Sequence(request: request, kvBytes: bytes, tokenizer: tokenizer, continuation: continuation)
            continuation.onTermination = { _ in sequence.cancel() }
            try condition.withLock {
                guard !stopping else { throw ServingError(.overloaded, "the server is shutting down") }
                guard waiting.count < configuration.maxWaiting else {
                    throw ServingError(.overloaded, "\(waiting.count) requests are already waiting; retry later")
                }
                waiting.append(sequence)
                metrics.requestsWaiting.record(waiting.count)
                condition.signal()
            }
            startIfNeeded()
            return Stream(events: events, sequence: sequence)
        } catch {
            if let error = error as? ServingError, error.kind == .overloaded { metrics.rejectedRequests.increment() }
            onFinish(request.lease)
            throw error
        }
    }

    /// Requests waiting for admission and running now.
    public var load: (waiting: Int, running: Int) { condition.withLock { (waiting.count, runningCount) } }

    /// Stops admitting, lets running and waiting generations finish, then ends the thread.
    public func drain() async {
        condition.withLock {
            stopping = true
            condition.signal()
        }
        guard thread != nil else { return }
        while !(stopped.withLock { finishedLoop }) { try? await Task.sleep(for: .milliseconds(20)) }
    }

    private func startIfNeeded() {
        condition.withLock {
            guard thread == nil else { return }
            let t = Thread { [self] in loop() }
            t.name = "attune-inference"
            t.stackSize = 8 << 20
            thread = t
            t.start()
        }
    }

    private func loop() {
        var running: [Sequence] = []
        while true {
            condition.lock()
            while running.isEmpty && waiting.isEmpty && !stopping { condition.wait() }
            if running.isEmpty && waiting.isEmpty && stopping {
                condition.unlock()
                break
            }
            var admitted: [Sequence] = []
            waiting.removeAll { s in
                guard s.cancelled else { return false }
                admitted.append(s)
                return true
            }
            let cancelledWaiting = admitted
            admitted = []
            var prompts = PromptBudget(onePrompt: model.batchInvariantPromptsAlone)
            while let next = waiting.first, running.count + admitted.count < configuration.maxBatch,
                  kvUsed + next.kvBytes <= configuration.kvMemoryBytes, prompts.admit(next.request.prompt.count) {
                waiting.removeFirst()
                kvUsed += next.kvBytes
                admitted.append(next)
            }
            runningCount = running.count + admitted.count
            metrics.requestsWaiting.record(waiting.count)
            metrics.kvCacheBytes.record(kvUsed)
            condition.unlock()
            for s in cancelledWaiting { end(s, reason: .stop, kvHeld: false) }
            for s in admitted { s.cache = model.makeCache(capacity: s.request.prompt.count + s.request.maxTokens) }
            running += admitted
            running = step(running)
            metrics.requestsRunning.record(running.count)
        }
        stopped.withLock { finishedLoop = true }
    }

    /// One forward pass over `running`; returns the sequences that go on.
    private func step(_ running: [Sequence]) -> [Sequence] {
        var live: [Sequence] = []
        for s in running {
            if s.cancelled { end(s, reason: .stop, kvHeld: true) } else { live.append(s) }
        }
        guard !live.isEmpty else { return [] }
        live.sort { a, b in
            let (x, y) = (a.request.lease.model, b.request.lease.model)
            return (x.domain?.id ?? x.id, x.id) < (y.domain?.id ?? y.id, y.id)
        }
        var tokens: [[Int32]] = [], rows: [Range<Int>] = []
        for s in live {
            let input = s.produced.last.map { [$0] } ?? s.request.prompt
            rows.append((rows.last?.upperBound ?? 0)..<((rows.last?.upperBound ?? 0) + input.count))
            tokens.append(input)
        }
        let stacks = live.map { $0.request.lease.model.layers }
        metrics.batchSize.record(live.count)
        do {
            try model.forward(tokens: tokens, caches: live.map { $0.cache! }, logits: .last,
                              adapter: stacks.allSatisfy(\.isEmpty) ? nil
                                  : RowGroupedAdapter(config: model.config, stacks: stacks, rows: rows),
                              into: &logits)
        } catch {
            for s in live { fail(s, "\(error)") }
            return []
        }
        let vocab = model.config.vocabSize
        var next: [Sequence] = []
        for (i, s) in live.enumerated() {
            let now = ContinuousClock.now
            let token = s.sampler.sample(logits[(i * vocab)..<((i + 1) * vocab)], history: s.history)
            if s.produced.isEmpty {
                s.firstTokenAt = now
                metrics.promptTokens.increment(by: s.request.prompt.count)
                metrics.timeToFirstToken.recordNanoseconds((now - s.submitted).nanoseconds)
            } else if let last = s.lastTokenAt {
                metrics.interTokenLatency.recordNanoseconds((now - last).nanoseconds)
            }
            s.lastTokenAt = now
            if token == tokenizer.eosID {
                end(s, reason: .stop, kvHeld: true)
                continue
            }
            s.produced.append(token)
            s.history.append(token)
            metrics.generationTokens.increment()
            let (piece, stopped) = s.text.push(token)
            if !piece.isEmpty { s.continuation.yield(.text(piece)) }
            if stopped {
                end(s, reason: .stop, kvHeld: true)
            } else if s.produced.count >= s.request.maxTokens || s.cache!.count >= s.cache!.limit {
                end(s, reason: .length, kvHeld: true)
            } else {
                next.append(s)
            }
        }
        return next
    }

    private func end(_ s: Sequence, reason: FinishReason, kvHeld: Bool) {
        let rest = s.text.finish(flush: reason == .length)
        if !rest.isEmpty { s.continuation.yield(.text(rest)) }
        s.continuation.yield(.finished(InferenceSummary(finishReason: reason, promptTokens: s.request.prompt.count,
                                                        completionTokens: s.produced.count, tokens: s.produced,
                                                        submittedAt: s.submitted, firstTokenAt: s.firstTokenAt,
                                                        lastTokenAt: s.lastTokenAt)))
        s.continuation.finish()
        release(s, kvHeld: kvHeld)
        metrics.requestLatency.recordNanoseconds((ContinuousClock.now - s.submitted).nanoseconds)
    }

    private func fail(_ s: Sequence, _ message: String) {
        s.continuation.yield(.failed(message))
        s.continuation.finish()
        release(s, kvHeld: true)
    }

    private func release(_ s: Sequence, kvHeld: Bool) {
        s.cache = nil
        if kvHeld { condition.withLock { kvUsed -= s.kvBytes } }
        onFinish(s.request.lease)
    }
}
