import AttuneModel
import AttuneTensor
import Foundation
import Testing
@testable import AttuneTraining

private let tiny = LlamaConfig(layers: 2, dim: 64, ffnDim: 96, heads: 4, kvHeads: 2, vocabSize: 80,
                               contextLength: 64, ropeBase: 10000, normEps: 1e-5)

private func randomBatch(batch: Int, seqLen: Int, seed: UInt64, lossEvery: Int = 1) -> TrainingBatch {
    var rng = SeededGenerator(seed: seed)
    let tokens = (0..<(batch * seqLen)).map { _ in Int32.random(in: 0..<Int32(tiny.vocabSize), using: &rng) }
    var targets = [Int32](repeating: -1, count: tokens.count)
    for b in 0..<batch {
        for t in 0..<(seqLen - 1) where t % lossEvery == 0 { targets[b * seqLen + t] = tokens[b * seqLen + t + 1] }
    }
    return TrainingBatch(tokens: tokens, targets: targets, batch: batch, seqLen: seqLen)
}

/// Fills B with small random values so every path of the adapter carries gradient.
private func perturb(_ lora: LoRAAdapter, seed: UInt64, scale: Float = 0.05) {
    var rng = SeededGenerator(seed: seed)
    for l in 0..<lora.model.layers {
        for t in lora.config.targets {
            let b = lora.b(l, t)
            for i in 0..<(t.shape(lora.model).out * lora.config.rank) { b[i] = Float.random(in: -scale...scale, using: &rng) }
        }
    }
}

private func loss(_ m: TrainableLlama, _ batch: TrainingBatch) -> Double {
    let r = m.step(batch, backward: false, training: false)
    return r.loss / Double(r.count)
}

/// Central finite difference of the loss along `v` (a unit vector on `range` of the flat
/// parameters), compared with the analytic directional derivative g·v.
private func directional(_ model: TrainableLlama, _ batch: TrainingBatch, grad g: [Float], range: Range<Int>,
                         v: [Float], eps: Float = 1e-2) -> (fd: Double, analytic: Double) {
    let p = model.parameters
    let theta = Array(UnsafeBufferPointer(start: p.pointer + range.lowerBound, count: range.count))
    for (i, j) in range.enumerated() { p[j] = theta[i] + eps * v[i] }
    let plus = loss(model, batch)
    for (i, j) in range.enumerated() { p[j] = theta[i] - eps * v[i] }
    let minus = loss(model, batch)
    for (i, j) in range.enumerated() { p[j] = theta[i] }
    let analytic = zip(g[range], v).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
    return ((plus - minus) / Double(2 * eps), analytic)
}

/// For every layer, target and factor (A, B): the gradient restricted to that tensor, as a
/// unit direction, against central finite differences of the fp32 loss (ε = 1e-2 along a unit
/// vector): |fd − ‖g‖| ≤ 3% of ‖g‖ + 1e-4.
private func checkEveryTensor(_ model: TrainableLlama, _ batch: TrainingBatch) {
    model.gradients.zero()
    model.step(batch, backward: true, training: false)
    let g = model.gradients.array
    let base = model.parameters.pointer
    var tensors: [(String, Int, Int)] = []
    if let lora = model.lora {
        for l in 0..<lora.model.layers {
            for t in lora.config.targets {
                let (out, inF) = t.shape(lora.model)
                tensors.append(("layer \(l) \(t) A", lora.a(l, t) - base, lora.config.rank * inF))
                tensors.append(("layer \(l) \(t) B", lora.b(l, t) - base, out * lora.config.rank))
            }
        }
    }
    if let b = model.bottleneck {
        let m = b.config.size, d = b.model.dim
        for l in 0..<b.model.layers {
            for p in b.config.placements {
                let w = b.weights(l, p)
                tensors += [("layer \(l) \(p) W_down", w.down - base, m * d), ("layer \(l) \(p) b_down", w.downBias - base, m),
                            ("layer \(l) \(p) W_up", w.up - base, d * m), ("layer \(l) \(p) b_up", w.upBias - base, d)]
            }
        }
    }
    for (name, start, count) in tensors {
                let range = start..<(start + count)
                let norm = g[range].reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
                guard norm > 1e-6 else {
                    Issue.record("\(name): zero gradient")
                    continue
                }
                let v = g[range].map { Float(Double($0) / norm) }
                let (fd, analytic) = directional(model, batch, grad: g, range: range, v: v)
                #expect(abs(fd - analytic) <= 0.03 * analytic + 1e-4, "\(name): fd \(fd) vs ‖g‖ \(analytic)")
    }
}

/// LoRA on all seven projections, through every layer's backward (RMSNorm, RoPE, GQA
/// attention, SwiGLU, tied head, cross-entropy with loss on every other position).
@Test func loraGradientsMatchFiniteDifferences() throws {
    let base = try RandomModel.load(tiny, matrixFormat: .f32)
    let lora = try LoRAAdapter(config: LoRAConfig(rank: 4, alpha: 8), model: tiny, seed: 3)
    perturb(lora, seed: 11)
    let model = try TrainableLlama(base: base, lora: lora)
    let batch = randomBatch(batch: 2, seqLen: 12, seed: 5, lossEvery: 2)
    #expect(model.step(batch, backward: false, training: false).count == 12)
    checkEveryTensor(model, batch)
}

/// The same through a frozen adapter stacked under the trainable one, on 4-bit base weights
/// (QLoRA), with rsLoRA scaling and activation recomputation.
@Test func stackedQLoRAGradientsMatchFiniteDifferences() throws {
    let base = try RandomModel.load(tiny, matrixFormat: .q4_1)
    let domain = try LoRAAdapter(config: LoRAConfig(rank: 2, alpha: 4, targets: [.q, .v, .down]), model: tiny, seed: 1)
    perturb(domain, seed: 2, scale: 0.2)
    let lora = try LoRAAdapter(config: LoRAConfig(rank: 4, alpha: 4, useRSLoRA: true, targets: [.k, .o, .gate, .up]), model: tiny, seed: 3)
    perturb(lora, seed: 4)
    let model = try TrainableLlama(base: base, lora: lora, frozen: domain, recompute: true)
    checkEveryTensor(model, randomBatch(batch: 3, seqLen: 8, seed: 6))
    #expect(domain.gradients.array.allSatisfy { $0 == 0 }, "the frozen adapter gets no gradient")
}

/// Bottleneck modules after attention and MLP (SiLU and ReLU), every tensor including biases.
@Test(arguments: [BottleneckConfig.Activation.silu, .relu])
func bottleneckGradientsMatchFiniteDifferences(activation: BottleneckConfig.Activation) throws {
    let base = try RandomModel.load(tiny, matrixFormat: .f32)
    let adapter = try BottleneckAdapter(config: BottleneckConfig(size: 8, activation: activation), model: tiny, seed: 2)
    var rng = SeededGenerator(seed: 3)
    for i in 0..<adapter.parameterCount where adapter.parameters[i] == 0 { adapter.parameters[i] = Float.random(in: -0.1...0.1, using: &rng) }
    let model = try TrainableLlama(base: base, bottleneck: adapter)
    checkEveryTensor(model, randomBatch(batch: 2, seqLen: 10, seed: 4))
}

/// A new bottleneck adapter is the identity: the model's logits do not change.
@Test func newBottleneckAdapterIsIdentity() throws {
    let base = try RandomModel.load(tiny)
    let adapter = try BottleneckAdapter(config: BottleneckConfig(size: 16), model: tiny, seed: 1)
    let tokens: [Int32] = [4, 8, 15, 16, 23, 42]
    let a = try base.forward(tokens: [tokens], caches: [base.makeCache()], logits: .all)
    let b = try base.forward(tokens: [tokens], caches: [base.makeCache()], logits: .all, adapter: adapter)
    #expect(a == b)
}

/// Training-mode forward equals the inference forward with the same adapter (LoRA, bottleneck).
@Test(arguments: [false, true])
func trainingForwardMatchesInferenceForward(bottleneck: Bool) throws {
    let base = try RandomModel.load(tiny, matrixFormat: .q8_0)
    let model: TrainableLlama
    if bottleneck {
        let b = try BottleneckAdapter(config: BottleneckConfig(size: 8), model: tiny, seed: 2)
        var rng = SeededGenerator(seed: 3)
        for i in 0..<b.parameterCount { b.parameters[i] = Float.random(in: -0.2...0.2, using: &rng) }
        model = try TrainableLlama(base: base, bottleneck: b)
    } else {
        let lora = try LoRAAdapter(config: LoRAConfig(rank: 4, alpha: 8), model: tiny, seed: 3)
        perturb(lora, seed: 8, scale: 0.1)
        model = try TrainableLlama(base: base, lora: lora)
    }
    let batch = randomBatch(batch: 1, seqLen: 10, seed: 9)
    let (total, count) = model.step(batch, backward: false, training: false)
    let logits = try base.forward(tokens: [batch.tokens], caches: [base.makeCache()], logits: .all, adapter: model.inferenceAdapter)
    let plain = try base.forward(tokens: [batch.tokens], caches: [base.makeCache()], logits: .all)
    #expect(logits != plain)
    var expected = 0.0
    for t in 0..<(batch.seqLen - 1) {
        let row = logits[(t * tiny.vocabSize)..<((t + 1) * tiny.vocabSize)].map(Double.init)
        let mx = row.max()!
        expected -= row[Int(batch.targets[t])] - mx - log(row.reduce(0) { $0 + exp($1 - mx) })
    }
    #expect(count == batch.seqLen - 1)
    #expect(abs(total - expected) < 1e-3 * expected)
}
