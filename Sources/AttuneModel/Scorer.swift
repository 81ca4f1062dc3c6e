import Foundation
import AttuneTensor

/// The log-likelihood of a token sequence under a model.
public struct Score: Sendable, Equatable {
    /// Σ log p(token | prefix) over the scored tokens (nats).
    public var logLikelihood: Double
    /// Tokens scored (all but the first of each window's start).
    public var tokens: Int
    public var meanNLL: Double { tokens > 0 ? -logLikelihood / Double(tokens) : 0 }
    public var perplexity: Double { exp(meanNLL) }
}

/// Scores text in windows of at most `context` tokens; each window after the first keeps
/// `stride` tokens of overlap as context so every token is predicted from a long prefix.
public struct Scorer: Sendable {
    public let model: LlamaModel
    public let adapter: (any LinearAdapter)?

    public init(model: LlamaModel, adapter: (any LinearAdapter)? = nil) {
        self.model = model
        self.adapter = adapter
    }

    /// Scores `ids[from...]`, each token given everything before it (the tokens before `from`
    /// are context only: a prompt whose answer is scored).
    public func score(_ ids: [Int32], context: Int = 512, overlap: Int = 0, from: Int = 1) throws -> Score {
        guard ids.count >= 2, from < ids.count else { throw ModelError.emptyInput }
        let window = max(2, min(context, model.config.contextLength))
        let keep = max(0, min(overlap, window - 1))
        var total = 0.0
        var count = 0
        var start = 0
        var scoredUpTo = 0
        let V = model.config.vocabSize
        let lp = UnsafeMutablePointer<Float>.allocate(capacity: V)
        defer { lp.deallocate() }
        while scoredUpTo < ids.count - 1 {
            let end = min(ids.count, start + window)
            let chunk = Array(ids[start..<end])
            let logits = try model.forward(tokens: [chunk], caches: [model.makeCache(capacity: chunk.count)], logits: .all,
                                             adapter: adapter)
            try logits.withUnsafeBufferPointer { buf in
                for i in 0..<(chunk.count - 1) where start + i >= scoredUpTo && start + i + 1 >= from {
                    Ops.logSoftmax(buf.baseAddress! + i * V, V, out: lp)
                    let target = chunk[i + 1]
                    guard target >= 0, Int(target) < V else { throw ModelError.invalidToken(target) }
                    total += Double(lp[Int(target)])
                    count += 1
                }
            }
            scoredUpTo = end - 1
            if end == ids.count { break }
            start = end - 1 - keep
        }
        return Score(logLikelihood: total, tokens: count)
    }
}

