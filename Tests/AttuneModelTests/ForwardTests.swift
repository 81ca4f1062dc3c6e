import AttuneTensor
import Foundation
import Testing
@testable import AttuneModel

private let V = TinyModel.config.vocabSize

/// Decoding token by token with the KV cache gives the logits of recomputing the whole prefix.
/// Dense weights: both paths run fp32 arithmetic (tolerance 1e-4 absolute). Quantized weights:
/// decode multiplies 8-bit activations, so the logits move, on this random model (whose errors
/// compound through layers without the structure of a trained one), by at most 5% of their
/// largest magnitude. The real model's greedy tokens and decode perplexity are checked against
/// the reference in `smolLM2MatchesNumpyReference`.
@Test(arguments: [WeightMode.dense, .quantized])
func kvCacheDecodeEqualsFullRecompute(mode: WeightMode) throws {
    let model = try TinyModel.load(mode: mode)
    let tokens: [Int32] = [3, 17, 42, 5, 77, 0, 9, 31, 64, 2, 11, 50]
    let full = try model.forward(tokens: [tokens], caches: [model.makeCache()], logits: .all)
    let cache = model.makeCache(capacity: 2)
    var incremental: [Float] = []
    incremental += try model.forward(tokens: [Array(tokens[0..<4])], caches: [cache], logits: .all)
    for t in tokens[4...] { incremental += try model.forward(tokens: [[t]], caches: [cache], logits: .last) }
    #expect(cache.count == tokens.count)
    #expect(full.count == tokens.count * V && incremental.count == full.count)
    if mode == .dense {
        #expect(maxAbsDiff(full[...], incremental[...]) < 1e-4)
    } else {
        let scale = full.map(abs).max()!
        #expect(maxAbsDiff(full[...], incremental[...]) <= 0.05 * scale, "scale \(scale)")
    }
}

/// Sequences of different lengths for one step; the third continues `cachedPrefix`.
private let stepSequences: [[Int32]] = [[1, 2, 3, 4, 5, 6, 7], [9], [40, 41, 42], [70, 3, 3, 3, 3, 12, 13, 14, 15, 16, 20]]
private let cachedPrefix: [Int32] = [8, 8, 19]

/// Every position's logits of `stepSequences` run in one step, per sequence.
private func logitsInOneStep(_ model: LlamaModel) throws -> [ArraySlice<Float>] {
    let caches = stepSequences.map { _ in model.makeCache() }
    _ = try model.forward(tokens: [cachedPrefix], caches: [caches[2]], logits: .none)
    let all = try model.forward(tokens: stepSequences, caches: caches, logits: .all)
    var offset = 0
    return stepSequences.map { s in
        defer { offset += s.count * V }
        return all[offset..<(offset + s.count * V)]
    }
}

/// Every position's logits of `stepSequences[i]` run alone.
private func logitsAlone(_ model: LlamaModel, _ i: Int) throws -> [Float] {
    let cache = model.makeCache()
    if i == 2 { _ = try model.forward(tokens: [cachedPrefix], caches: [cache], logits: .none) }
    return try model.forward(tokens: [stepSequences[i]], caches: [cache], logits: .all)
}

/// A batch of sequences of different lengths, some continuing a cache, equals running each alone
/// (one-token steps run the integer kernel and longer ones sgemm, in a batch as alone).
@Test func batchedPrefillEqualsOneByOne() throws {
    let model = try TinyModel.load()
    for (i, batched) in try logitsInOneStep(model).enumerated() {
        #expect(maxAbsDiff(batched, try logitsAlone(model, i)[...]) < 1e-4, "sequence \(i)")
    }
    let last = try model.forward(tokens: stepSequences, caches: stepSequences.map { _ in model.makeCache() }, logits: .last)
    #expect(last.count == stepSequences.count * V)
}

/// With 8-bit prompt activations every layer row takes the decode kernels: a batch of prompts
/// (one continuing a cache) gives each prompt's logits alone within 1e-4 (the head's sgemm over
/// the prompt positions, as in `batchedPrefillEqualsOneByOne`), and within 10% of the largest
/// logit of the fp32 prompts: every position of this random model, whose errors compound through
/// layers without a trained model's structure, carries the activation rounding of all earlier
/// ones (the real model's perplexity is checked in `eightBitPromptsScoreRealTextNearFP32`).
/// Dense mode refuses them.
@Test func eightBitPromptsAreBatchInvariantAndNearFP32() throws {
    let exact = try TinyModel.load()
    let model = try RandomModel.load(TinyModel.config, mode: .quantized, prompts: .int8)
    for (i, batched) in try logitsInOneStep(model).enumerated() {
        let alone = try logitsAlone(model, i), reference = try logitsAlone(exact, i)
        #expect(maxAbsDiff(batched, alone[...]) < 1e-4, "sequence \(i)")
        let scale = reference.map(abs).max()!
        #expect(maxAbsDiff(alone[...], reference[...]) <= 0.1 * scale, "sequence \(i), scale \(scale)")
    }
    #expect(throws: ModelError.self) { try RandomModel.load(TinyModel.config, mode: .dense, prompts: .int8) }
}

/// Dense mode multiplies a step's prompts by the stored weights (panels) up to
/// `directPromptRows` rows and by sgemm on the fp32 copy beyond: three 50-token prompts in one
/// step (150 rows, sgemm) give each prompt's logits alone (50 rows, panels) within 1e-4.
@Test func densePromptsByPanelsEqualPromptsBySgemm() throws {
    let model = try TinyModel.load(mode: .dense)
    var rng = SeededGenerator(seed: 5)
    let prompts = (0..<3).map { _ in (0..<50).map { _ in Int32.random(in: 0..<Int32(V), using: &rng) } }
    #expect(prompts.count * 50 > LlamaModel.directPromptRows && 50 <= LlamaModel.directPromptRows)
    let together = try model.forward(tokens: prompts, caches: prompts.map { _ in model.makeCache() }, logits: .all)
    for (i, p) in prompts.enumerated() {
        let alone = try model.forward(tokens: [p], caches: [model.makeCache()], logits: .all)
        #expect(maxAbsDiff(together[(i * 50 * V)..<((i + 1) * 50 * V)], alone[...]) < 1e-4, "prompt \(i)")
    }
}

/// The fp32-cache mode computes the same function as the quantized mode.
@Test func denseAndQuantizedModesAgree() throws {
    let q = try TinyModel.load(mode: .quantized)
    let d = try TinyModel.load(mode: .dense)
    let tokens: [Int32] = [5, 6, 7, 8, 9, 10, 11]
    let a = try q.forward(tokens: [tokens], caches: [q.makeCache()], logits: .all)
    let b = try d.forward(tokens: [tokens], caches: [d.makeCache()], logits: .all)
    #expect(maxAbsDiff(a[...], b[...]) < 1e-4)
    #expect(d.residentWeightBytes > q.residentWeightBytes)
}

/// The forward pass equals a straightforward double-precision re-implementation of the same
/// llama equations on the dequantized weights (tolerance 1e-3 on logits).
@Test func forwardMatchesNaiveReference() throws {
    let model = try TinyModel.load(matrixFormat: .q8_0)
    let tokens: [Int32] = [1, 33, 7, 60, 2]
    let fast = try model.forward(tokens: [tokens], caches: [model.makeCache()], logits: .all)
    let slow = NaiveLlama(model: model).logits(tokens)
    #expect(maxAbsDiff(fast[...], slow.map(Float.init)[...]) < 1e-3)
}

@Test func invalidInputIsRejected() throws {
    let model = try TinyModel.load()
    #expect(throws: ModelError.self) { try model.forward(tokens: [[Int32(V)]], caches: [model.makeCache()]) }
    #expect(throws: ModelError.self) { try model.forward(tokens: [[]], caches: [model.makeCache()]) }
    let long = [Int32](repeating: 1, count: TinyModel.config.contextLength + 1)
    #expect(throws: ModelError.self) { try model.forward(tokens: [long], caches: [model.makeCache()]) }
}

/// A scalar double-precision llama forward used only as a test oracle.
struct NaiveLlama {
    let model: LlamaModel

    func matrix(_ m: WeightMatrix) -> [[Double]] {
        var out: [[Double]] = []
        var row = [Float](repeating: 0, count: m.cols)
        for r in 0..<m.rows {
            row.withUnsafeMutableBufferPointer { m.row(r, into: $0.baseAddress!) }
            out.append(row.map(Double.init))
        }
        return out
    }

    func logits(_ tokens: [Int32]) -> [Double] {
        let c = model.config
        let emb = matrix(model.embedding)
        func norm(_ x: [Double], _ w: [Float]) -> [Double] {
            let rms = (x.reduce(0) { $0 + $1 * $1 } / Double(x.count) + Double(c.normEps)).squareRoot()
            return x.indices.map { x[$0] / rms * Double(w[$0]) }
        }
        func mul(_ w: [[Double]], _ x: [Double]) -> [Double] { w.map { r in zip(r, x).reduce(0) { $0 + $1.0 * $1.1 } } }
        func rope(_ v: inout [Double], heads: Int, pos: Int) {
            for h in 0..<heads {
                for i in 0..<(c.headDim / 2) {
                    let th = Double(pos) * pow(Double(c.ropeBase), -2 * Double(i) / Double(c.headDim))
                    let a = v[h * c.headDim + 2 * i], b = v[h * c.headDim + 2 * i + 1]
                    v[h * c.headDim + 2 * i] = a * cos(th) - b * sin(th)
                    v[h * c.headDim + 2 * i + 1] = a * sin(th) + b * cos(th)
                }
            }
        }
        var xs = tokens.map { emb[Int($0)] }
        for layer in model.layers {
            let (wq, wk, wv, wo) = (matrix(layer.wq), matrix(layer.wk), matrix(layer.wv), matrix(layer.wo))
            let (wg, wu, wd) = (matrix(layer.gate), matrix(layer.up), matrix(layer.down))
            var qs: [[Double]] = [], ks: [[Double]] = [], vs: [[Double]] = []
            for (p, x) in xs.enumerated() {
                let h = norm(x, layer.attnNorm)
                var q = mul(wq, h), k = mul(wk, h)
                rope(&q, heads: c.heads, pos: p)
                rope(&k, heads: c.kvHeads, pos: p)
                qs.append(q); ks.append(k); vs.append(mul(wv, h))
            }
            for p in 0..<xs.count {
                var att = [Double](repeating: 0, count: c.dim)
                for h in 0..<c.heads {
                    let g = h / (c.heads / c.kvHeads)
                    var s = (0...p).map { j in
                        (0..<c.headDim).reduce(0.0) { $0 + qs[p][h * c.headDim + $1] * ks[j][g * c.headDim + $1] } / Double(c.headDim).squareRoot()
                    }
                    let mx = s.max()!
                    s = s.map { exp($0 - mx) }
                    let z = s.reduce(0, +)
                    for j in 0...p { for d in 0..<c.headDim { att[h * c.headDim + d] += s[j] / z * vs[j][g * c.headDim + d] } }
                }
                let o = mul(wo, att)
                for i in 0..<c.dim { xs[p][i] += o[i] }
                let h2 = norm(xs[p], layer.ffnNorm)
                let gate = mul(wg, h2), up = mul(wu, h2)
                let act = gate.indices.map { gate[$0] / (1 + exp(-gate[$0])) * up[$0] }
                let down = mul(wd, act)
                for i in 0..<c.dim { xs[p][i] += down[i] }
            }
        }
        let out = matrix(model.output)
        return xs.flatMap { mul(out, norm($0, model.outputNorm)) }
    }
}
