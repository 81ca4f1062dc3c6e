import AttuneTokenizer
import Foundation
import Testing
@testable import AttuneModel

/// A character tokenizer over the tiny model's 80 ids (ASCII 32…111, no merges).
private func charTokenizer() throws -> BPETokenizer {
    let tokens = (32..<112).map { b in String(decoding: [UInt8(b)], as: UTF8.self) == " " ? "Ġ" : String(UnicodeScalar(UInt8(b))) }
    return try BPETokenizer(tokens: tokens, merges: [], tokenTypes: [], bosID: nil, eosID: 0)
}

@Test func greedySamplingPicksTheArgmax() {
    var s = Sampler(.greedy)
    #expect(s.sample([0.1, 3, -1, 2.9][...], history: []) == 1)
    var k1 = Sampler(SamplingParameters(temperature: 1.5, topK: 1, seed: 9))
    var p = Sampler(SamplingParameters(temperature: 1, topP: 0.5, seed: 9))
    for _ in 0..<200 {
        #expect(k1.sample([0.1, 3, -1, 2.9][...], history: []) == 1)
        #expect(p.sample([log(0.3), log(0.5), log(0.2)][...], history: []) == 1)
    }
}

/// Temperature-1 samples follow softmax(logits): frequencies within 0.01 of 1/6, 2/6, 3/6.
@Test func temperatureSamplingFollowsTheDistribution() {
    var s = Sampler(SamplingParameters(temperature: 1, seed: 2026))
    var counts = [0, 0, 0]
    let n = 60_000
    for _ in 0..<n { counts[Int(s.sample([0, log(2), log(3)][...], history: []))] += 1 }
    for (i, expected) in [1.0 / 6, 2.0 / 6, 3.0 / 6].enumerated() {
        #expect(abs(Double(counts[i]) / Double(n) - expected) < 0.01)
    }
}

@Test func seededSamplingIsReproducible() {
    let logits: [Float] = (0..<50).map { Float($0 % 7) * 0.3 }
    func draw(_ seed: UInt64) -> [Int32] {
        var s = Sampler(SamplingParameters(temperature: 0.9, topK: 20, topP: 0.95, seed: seed))
        return (0..<100).map { _ in s.sample(logits[...], history: []) }
    }
    #expect(draw(1) == draw(1))
    #expect(draw(1) != draw(2))
}

@Test func repetitionPenaltyDiscouragesSeenTokens() {
    var s = Sampler(SamplingParameters(repetitionPenalty: 1.5))
    #expect(s.sample([2.0, 1.9][...], history: [0]) == 1)
    #expect(s.sample([2.0, 1.9][...], history: [1]) == 0)
}

@Test func generationHonoursMaxTokensStopStringsAndStreams() throws {
    let model = try TinyModel.load()
    let tok = try charTokenizer()
    let gen = Generator(model: model, tokenizer: tok)
    let prompt = tok.encode("hello")
    var streamed = ""
    let free = try gen.generate(GenerationRequest(prompt: prompt, maxTokens: 12, stopAtEOS: false)) { streamed += $0; return true }
    #expect(free.tokens.count == 12 && free.finishReason == .length)
    #expect(streamed == free.text && free.text == tok.decode(free.tokens))

    let stopText = String(free.text.dropFirst(3).prefix(2))
    var streamedStop = ""
    let stopped = try gen.generate(GenerationRequest(prompt: prompt, maxTokens: 12, stop: [stopText], stopAtEOS: false)) {
        streamedStop += $0
        return true
    }
    #expect(stopped.finishReason == .stop)
    #expect(stopped.text == String(free.text[..<free.text.range(of: stopText)!.lowerBound]))
    #expect(streamedStop == stopped.text)

    let sampled1 = try gen.generate(GenerationRequest(prompt: prompt, maxTokens: 10, sampling: SamplingParameters(temperature: 1, seed: 5), stopAtEOS: false))
    let sampled2 = try gen.generate(GenerationRequest(prompt: prompt, maxTokens: 10, sampling: SamplingParameters(temperature: 1, seed: 5), stopAtEOS: false))
    #expect(sampled1.tokens == sampled2.tokens)
}

@Test func asyncStreamYieldsTheSameText() async throws {
    let model = try TinyModel.load()
    let tok = try charTokenizer()
    let gen = Generator(model: model, tokenizer: tok)
    let request = GenerationRequest(prompt: tok.encode("abc"), maxTokens: 8, stopAtEOS: false)
    var text = ""
    for try await piece in gen.stream(request) { text += piece }
    #expect(text == (try gen.generate(request)).text)
}

/// Perplexity equals exp of the mean negative log-softmax of each next token, and windowed
/// scoring with overlap covers every token once.
@Test func scorerComputesPerplexity() throws {
    let model = try TinyModel.load()
    let ids: [Int32] = [4, 8, 15, 16, 23, 42, 7, 9, 1, 2]
    let logits = try model.forward(tokens: [ids], caches: [model.makeCache()], logits: .all)
    let V = model.config.vocabSize
    var nll = 0.0
    for i in 0..<(ids.count - 1) {
        let row = logits[(i * V)..<((i + 1) * V)].map(Double.init)
        let mx = row.max()!
        let lse = mx + log(row.reduce(0) { $0 + exp($1 - mx) })
        nll -= row[Int(ids[i + 1])] - lse
    }
    let score = try Scorer(model: model).score(ids)
    #expect(score.tokens == ids.count - 1)
    #expect(abs(score.meanNLL - nll / Double(ids.count - 1)) < 1e-4)
    let windowed = try Scorer(model: model).score(ids, context: 4, overlap: 1)
    #expect(windowed.tokens == ids.count - 1)
}
