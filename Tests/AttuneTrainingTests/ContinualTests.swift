import AttuneModel
import AttuneTensor
import Foundation
import Testing
@testable import AttuneTraining

private func example(_ i: Int) -> TrainingExample { TrainingExample(tokens: [Int32(i)], learn: [true]) }

/// Reservoir sampling keeps every offered example with probability capacity/n: over 2,000
/// seeded runs of 100 offers into 10 slots, each example's inclusion rate is 0.1 ± 0.03.
@Test func replayBufferSamplesUniformly() {
    var kept = [Int](repeating: 0, count: 100)
    for seed in 0..<2000 {
        var buffer = ReplayBuffer(capacity: 10, seed: UInt64(seed))
        for i in 0..<100 { buffer.offer(example(i)) }
        #expect(buffer.items.count == 10 && buffer.seen == 100)
        for e in buffer.items { kept[Int(e.tokens[0])] += 1 }
    }
    for (i, k) in kept.enumerated() { #expect(abs(Double(k) / 2000 - 0.1) < 0.03, "example \(i) kept \(k) times") }
    var a = ReplayBuffer(capacity: 3, seed: 9), b = ReplayBuffer(capacity: 3, seed: 9)
    for i in 0..<20 {
        a.offer(example(i))
        b.offer(example(i))
    }
    #expect(a == b && a.sample(5) == b.sample(5), "seeded buffers are reproducible")
}

/// The regularizers' gradients are the derivatives of their penalties (finite differences),
/// and EWC weighs coordinates by the consolidated Fisher estimate.
@Test(arguments: [Regularizer.Kind.l2sp, .ewc])
func regularizerGradientMatchesPenalty(kind: Regularizer.Kind) {
    let anchor = FloatBuffer([0.5, -1, 2, 0])
    let r = Regularizer(kind: kind, strength: 0.3, anchor: anchor, gamma: 0.5)
    r.observe(dataGradients: FloatBuffer([1, 2, 0, 3]))
    r.observe(dataGradients: FloatBuffer([3, 0, 0, 1]))
    r.consolidate(at: anchor)
    if kind == .ewc { #expect(r.fisher.array == [5, 2, 0, 5]) }
    let theta = FloatBuffer([1, 1, 1, 1])
    let g = FloatBuffer(4)
    r.addGradient(theta, into: g)
    for i in 0..<4 {
        let p = FloatBuffer(theta.array), m = FloatBuffer(theta.array)
        p[i] += 1e-2
        m[i] -= 1e-2
        let fd = (r.penalty(p) - r.penalty(m)) / 2e-2
        #expect(abs(fd - Double(g[i])) < 1e-4)
    }
}

/// With a strong L2-SP penalty, training on new data moves the parameters far less.
@Test func l2spKeepsParametersNearTheParent() throws {
    let tiny = LlamaConfig(layers: 2, dim: 64, ffnDim: 96, heads: 4, kvHeads: 2, vocabSize: 80, contextLength: 64)
    let base = try RandomModel.load(tiny, seed: 3)
    func drift(_ strength: Float?) throws -> Double {
        let lora = try LoRAAdapter(config: LoRAConfig(rank: 4, alpha: 8), model: tiny, seed: 1)
        let start = lora.parameters.array
        let model = try TrainableLlama(base: base, lora: lora)
        let pattern: [Int32] = (0..<120).map { Int32(($0 * 5) % 17 + 20) }
        let data = PackedDataset(examples: [TrainingExample(tokens: pattern, learn: Array(repeating: true, count: pattern.count))],
                                 seqLen: 16, padToken: 0)
        let t = try Trainer(model: model, data: data, config: TrainerConfig(steps: 15, batchSize: 4, optimizer: AdamWConfig(learningRate: 1e-2)))
        if let strength { t.regularizer = Regularizer(kind: .l2sp, strength: strength, anchor: lora.parameters) }
        t.run()
        return zip(start, lora.parameters.array).reduce(0.0) { $0 + Double($1.0 - $1.1) * Double($1.0 - $1.1) }.squareRoot()
    }
    let free = try drift(nil), anchored = try drift(50)
    #expect(anchored < 0.5 * free, "drift \(free) without vs \(anchored) with L2-SP")
}

/// Growing an adapter block keeps what the adapter computes (ΔW = s·B·A equal within 1e-6 for
/// plain and rsLoRA scaling), and training with the trainable mask moves only the new block:
/// the earlier components stay bit-for-bit while the loss falls.
@Test(arguments: [false, true])
func grownAdapterKeepsItsFunctionAndTrainsOnlyTheNewBlock(rsLoRA: Bool) throws {
    let tiny = LlamaConfig(layers: 2, dim: 64, ffnDim: 96, heads: 4, kvHeads: 2, vocabSize: 80, contextLength: 64)
    let base = try RandomModel.load(tiny, seed: 3)
    let pattern: [Int32] = (0..<120).map { Int32(($0 * 7) % 19 + 30) }
    let data = PackedDataset(examples: [TrainingExample(tokens: pattern, learn: Array(repeating: true, count: pattern.count))],
                             seqLen: 16, padToken: 0)
    let config = TrainerConfig(steps: 6, batchSize: 2, optimizer: AdamWConfig(learningRate: 1e-2), schedule: .constant, warmupSteps: 0, seed: 1)
    let lora = try LoRAAdapter(config: LoRAConfig(rank: 2, alpha: 4, useRSLoRA: rsLoRA), model: tiny, seed: 1)
    try Trainer(model: try TrainableLlama(base: base, lora: lora), data: data, config: config).run()

    let grown = try lora.grown(by: 3, seed: 2)
    #expect(grown.config.rank == 5 && abs(grown.config.scale - lora.config.scale) < 1e-6)
    for l in 0..<tiny.layers {
        for t in lora.config.targets {
            let before = lora.delta(layer: l, target: t), after = grown.delta(layer: l, target: t)
            #expect(zip(before, after).allSatisfy { abs($0 - $1) <= 1e-6 * max(1, abs($0)) }, "layer \(l) \(t)")
        }
    }
    let model = try TrainableLlama(base: base, lora: grown)
    let lossBefore = Trainer.evaluate(model, data).loss
    #expect(abs(lossBefore - Trainer.evaluate(try TrainableLlama(base: base, lora: lora), data).loss) < 1e-5)

    let frozenA = (0..<tiny.layers).map { Array(UnsafeBufferPointer(start: grown.a($0, .q), count: 2 * tiny.dim)) }
    let trainer = try Trainer(model: model, data: data, config: config)
    trainer.trainableMask = grown.trainableMask(frozenRank: 2)
    let newBefore = Array(UnsafeBufferPointer(start: grown.a(0, .q) + 2 * tiny.dim, count: 3 * tiny.dim))
    trainer.run()
    for l in 0..<tiny.layers {
        #expect(Array(UnsafeBufferPointer(start: grown.a(l, .q), count: 2 * tiny.dim)) == frozenA[l], "old A rows unchanged")
        let b = grown.b(l, .down), b0 = lora.b(l, .down)
        #expect((0..<tiny.dim).allSatisfy { o in (0..<2).allSatisfy { b[o * 5 + $0] == b0[o * 2 + $0] } }, "old B columns unchanged")
    }
    #expect(Array(UnsafeBufferPointer(start: grown.a(0, .q) + 2 * tiny.dim, count: 3 * tiny.dim)) != newBefore, "the new block trains")
    #expect(Trainer.evaluate(model, data).loss < lossBefore)
}
