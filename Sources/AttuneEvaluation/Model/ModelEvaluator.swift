import AttuneModel
import AttuneTensor
import AttuneTokenizer
import AttuneTraining
import Foundation

/// How well a model predicts the scored tokens of a set: mean negative log-likelihood (the
/// loss), perplexity, and next-token accuracy (the argmax is the token).
public struct LikelihoodMetrics: Sendable, Equatable, Codable {
    public var tokens: Int
    /// Σ −log p(token | prefix) over the scored tokens (nats).
    public var negativeLogLikelihood: Double
    /// Scored tokens that were the model's most likely next token.
    public var correct: Int

    public var loss: Double { tokens > 0 ? negativeLogLikelihood / Double(tokens) : 0 }
    public var perplexity: Double { exp(loss) }
    public var accuracy: Double { tokens > 0 ? Double(correct) / Double(tokens) : 0 }

    public init(tokens: Int = 0, negativeLogLikelihood: Double = 0, correct: Int = 0) {
        self.tokens = tokens
        self.negativeLogLikelihood = negativeLogLikelihood
        self.correct = correct
    }

    enum CodingKeys: String, CodingKey { case tokens, negativeLogLikelihood = "nll", correct, loss, perplexity, accuracy }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(tokens: try c.decode(Int.self, forKey: .tokens), negativeLogLikelihood: try c.decode(Double.self, forKey: .negativeLogLikelihood),
                  correct: try c.decode(Int.self, forKey: .correct))
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(tokens, forKey: .tokens)
        try c.encode(negativeLogLikelihood, forKey: .negativeLogLikelihood)
        try c.encode(correct, forKey: .correct)
        try c.encode(loss, forKey: .loss)
        try c.encode(perplexity, forKey: .perplexity)
        try c.encode(accuracy, forKey: .accuracy)
    }
}

/// How a model's greedy answers to a set's prompts compare with the reference answers.
public struct GenerationMetrics: Sendable, Equatable, Codable {
    public var answers: Int
    /// Share of answers equal to the reference after normalization (0 … 1).
    public var exactMatch: Double
    /// Mean token F1 (0 … 1).
    public var tokenF1: Double
    /// Corpus BLEU and chrF (0 … 100, sacreBLEU's defaults).
    public var bleu: Double
    public var chrF: Double
}

/// Evaluates one model (the base with an optional adapter stack) on evaluation sets.
public struct ModelEvaluator: Sendable {
    public let model: LlamaModel
    public let tokenizer: BPETokenizer
    public let adapter: (any LinearAdapter)?
    /// Longest window of one forward pass; a longer example is scored in consecutive windows.
    public let window: Int

    public init(model: LlamaModel, tokenizer: BPETokenizer, adapter: (any LinearAdapter)? = nil, window: Int = 1024) {
        self.model = model
        self.tokenizer = tokenizer
        self.adapter = adapter
        self.window = max(2, min(window, model.config.contextLength))
    }

    /// Loss, perplexity and next-token accuracy over the scored tokens of `items`.
    public func likelihood(_ items: [EvaluationItem]) throws -> LikelihoodMetrics {
        var metrics = LikelihoodMetrics()
        let V = model.config.vocabSize
        let lp = UnsafeMutablePointer<Float>.allocate(capacity: V)
        defer { lp.deallocate() }
        for item in items {
            let tokens = item.example.tokens, learn = item.example.learn
            var start = 0
            while start < tokens.count - 1 {
                let end = min(tokens.count, start + window)
                let chunk = Array(tokens[start..<end])
                let logits = try model.forward(tokens: [chunk], caches: [model.makeCache(capacity: chunk.count)], logits: .all,
                                               adapter: adapter)
                logits.withUnsafeBufferPointer { buf in
                    for i in 0..<(chunk.count - 1) where learn[start + i + 1] {
                        let row = buf.baseAddress! + i * V
                        Ops.logSoftmax(row, V, out: lp)
                        let target = Int(chunk[i + 1])
                        metrics.negativeLogLikelihood -= Double(lp[target])
                        metrics.tokens += 1
                        var best = 0
                        for v in 1..<V where row[v] > row[best] { best = v }
                        if best == target { metrics.correct += 1 }
                    }
                }
                if end == tokens.count { break }
                start = end - 1
            }
        }
        return metrics
    }

    /// Greedy answers (up to `maxTokens`) to each interaction's prompt in the chat template the
    /// workers train with, scored against the references. Returns the answers with the metrics.
    public func generation(_ interactions: [(prompt: String, reference: String)], maxTokens: Int = 64,
                           systemPrompt: String? = ChatTemplate.defaultSystemPrompt) throws -> (GenerationMetrics, answers: [String]) {
        let generator = Generator(model: model, tokenizer: tokenizer, adapter: adapter)
        var bleu = CorpusBLEU(), chrF = CorpusChrF()
        var exact = 0, f1 = 0.0
        var answers: [String] = []
        for (prompt, reference) in interactions {
            let ids = tokenizer.encode(ChatTemplate.render([ChatMessage(role: "user", content: prompt)], systemPrompt: systemPrompt),
                                       parseSpecial: true)
            let answer = try generator.generate(GenerationRequest(prompt: ids, maxTokens: maxTokens, stop: ["<|im_end|>"])).text
            answers.append(answer)
            bleu.add(hypothesis: answer, reference: reference)
            chrF.add(hypothesis: answer, reference: reference)
            if AnswerMatch.exactMatch(answer, reference) { exact += 1 }
            f1 += AnswerMatch.tokenF1(answer, reference)
        }
        let n = Double(max(interactions.count, 1))
        return (GenerationMetrics(answers: interactions.count, exactMatch: Double(exact) / n, tokenF1: f1 / n,
                                  bleu: bleu.score, chrF: chrF.score), answers)
    }
}
