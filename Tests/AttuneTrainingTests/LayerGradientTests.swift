import AttuneModel
import AttuneTensor
import Foundation
import Testing
@testable import AttuneTraining

/// Each layer's backward against central finite differences of L = Σ g ⊙ f(x) for a random
/// upstream gradient g: every input coordinate, ε = 1e-2, |fd − analytic| ≤ 1e-2·(1 + |analytic|).
private func check(_ name: String, inputs: Int, seed: UInt64,
                   forward: ([Float]) -> [Float], backward: ([Float], [Float]) -> [Float]) {
    var rng = SeededGenerator(seed: seed)
    let x = (0..<inputs).map { _ in Float.random(in: -1...1, using: &rng) }
    let y = forward(x)
    let g = (0..<y.count).map { _ in Float.random(in: -1...1, using: &rng) }
    let analytic = backward(x, g)
    func loss(_ v: [Float]) -> Double { zip(forward(v), g).reduce(0.0) { $0 + Double($1.0) * Double($1.1) } }
    for i in 0..<inputs {
        var p = x, m = x
        p[i] += 1e-2
        m[i] -= 1e-2
        let fd = (loss(p) - loss(m)) / 2e-2
        #expect(abs(fd - Double(analytic[i])) <= 1e-2 * (1 + abs(Double(analytic[i]))), "\(name) input \(i): fd \(fd) vs \(analytic[i])")
    }
}

@Test func rmsNormBackward() {
    let rows = 3, n = 16
    let w = (0..<n).map { 0.5 + Float($0) / 16 }
    check("rmsnorm", inputs: rows * n, seed: 1, forward: { x in
        var y = [Float](repeating: 0, count: x.count), r = [Float](repeating: 0, count: rows)
        RMSNormLayer.forward(x, weight: w, y: &y, rstd: &r, rows: rows, n: n, eps: 1e-5)
        return y
    }, backward: { x, g in
        var y = [Float](repeating: 0, count: x.count), r = [Float](repeating: 0, count: rows), dx = [Float](repeating: 0, count: x.count)
        RMSNormLayer.forward(x, weight: w, y: &y, rstd: &r, rows: rows, n: n, eps: 1e-5)
        RMSNormLayer.backward(g, x: x, weight: w, rstd: r, dx: &dx, rows: rows, n: n)
        return dx
    })
}

@Test func rotaryBackward() {
    let table = RopeTable(headDim: 8, maxPositions: 16, base: 10000)
    check("rope", inputs: 4 * 16, seed: 2, forward: { x in
        var y = x
        RotaryLayer.forward(&y, rows: 4, seqLen: 4, heads: 2, headDim: 8, table: table)
        return y
    }, backward: { _, g in
        var d = g
        RotaryLayer.backward(&d, rows: 4, seqLen: 4, heads: 2, headDim: 8, table: table)
        return d
    })
}

@Test func swigluBackward() {
    let n = 24
    check("swiglu", inputs: 2 * n, seed: 3, forward: { x in
        var h = [Float](repeating: 0, count: n)
        SwiGLULayer.forward(gate: Array(x[0..<n]), up: Array(x[n...]), h: &h, count: n)
        return h
    }, backward: { x, g in
        var dg = [Float](repeating: 0, count: n), du = [Float](repeating: 0, count: n)
        SwiGLULayer.backward(g, gate: Array(x[0..<n]), up: Array(x[n...]), dGate: &dg, dUp: &du, count: n)
        return dg + du
    })
}

/// Attention backward for q, k and v together (inputs concatenated), with GQA (4 query heads
/// over 2 KV heads) and the causal mask, over 2 sequences; in one block of positions and in
/// blocks of 2 (the products skip the blocks above the diagonal; 5 positions leave a tail),
/// whose forward equals the one-block forward within fp32 rounding (1e-6).
@Test(arguments: [32, 2])
func attentionBackward(block: Int) {
    var layer = AttentionLayer(batch: 2, seqLen: 5, heads: 4, kvHeads: 2, headDim: 4)
    layer.block = block
    let n = 10, qn = n * 16, kvn = n * 8
    func split(_ x: [Float]) -> ([Float], [Float], [Float]) {
        (Array(x[0..<qn]), Array(x[qn..<(qn + kvn)]), Array(x[(qn + kvn)...]))
    }
    check("attention", inputs: qn + 2 * kvn, seed: 4, forward: { x in
        let (q, k, v) = split(x)
        var p = [Float](repeating: 0, count: 2 * 4 * 25), out = [Float](repeating: 0, count: qn)
        layer.forward(q: q, k: k, v: v, probs: &p, out: &out)
        return out
    }, backward: { x, g in
        let (q, k, v) = split(x)
        var p = [Float](repeating: 0, count: 2 * 4 * 25), out = [Float](repeating: 0, count: qn)
        layer.forward(q: q, k: k, v: v, probs: &p, out: &out)
        var dq = [Float](repeating: 0, count: qn), dk = [Float](repeating: 0, count: kvn), dv = [Float](repeating: 0, count: kvn)
        var work = [Float](repeating: 0, count: 2 * 4 * 25)
        layer.backward(dOut: g, q: q, k: k, v: v, probs: p, dq: &dq, dk: &dk, dv: &dv, work: &work)
        return dq + dk + dv
    })
    var rng = SeededGenerator(seed: 9)
    let (q, k, v) = split((0..<(qn + 2 * kvn)).map { _ in Float.random(in: -2...2, using: &rng) })
    var whole = AttentionLayer(batch: 2, seqLen: 5, heads: 4, kvHeads: 2, headDim: 4)
    whole.block = 5
    var p = [Float](repeating: 0, count: 2 * 4 * 25), blocked = [Float](repeating: 0, count: qn), once = blocked
    layer.forward(q: q, k: k, v: v, probs: &p, out: &blocked)
    whole.forward(q: q, k: k, v: v, probs: &p, out: &once)
    #expect(zip(blocked, once).allSatisfy { abs($0 - $1) <= 1e-6 }, "blocks of \(block)")
}

/// At training's block size over 70 positions (two full blocks and a tail), attention's
/// forward and its gradients for q, k and v equal the one-block computation within fp32
/// rounding (1e-5 of each tensor's largest magnitude).
@Test func blockedAttentionEqualsOneBlock() {
    let T = 70, heads = 4, kvHeads = 2, headDim = 16, batch = 2
    let qn = batch * T * heads * headDim, kvn = batch * T * kvHeads * headDim, pn = batch * heads * T * T
    var rng = SeededGenerator(seed: 10)
    func random(_ n: Int) -> [Float] { (0..<n).map { _ in Float.random(in: -1...1, using: &rng) } }
    let q = random(qn), k = random(kvn), v = random(kvn), dOut = random(qn)
    func run(block: Int) -> [[Float]] {
        var layer = AttentionLayer(batch: batch, seqLen: T, heads: heads, kvHeads: kvHeads, headDim: headDim)
        layer.block = block
        var p = [Float](repeating: 0, count: pn), out = [Float](repeating: 0, count: qn), work = p
        var dq = [Float](repeating: 0, count: qn), dk = [Float](repeating: 0, count: kvn), dv = dk
        layer.forward(q: q, k: k, v: v, probs: &p, out: &out)
        layer.backward(dOut: dOut, q: q, k: k, v: v, probs: p, dq: &dq, dk: &dk, dv: &dv, work: &work)
        return [out, dq, dk, dv]
    }
    let blocked = run(block: 32), once = run(block: T)
    for (name, (a, b)) in zip(["out", "dq", "dk", "dv"], zip(blocked, once)) {
        let scale = b.map(abs).max() ?? 1
        let worst = zip(a, b).map { abs($0 - $1) }.max() ?? 0
        #expect(worst <= 1e-5 * scale, "\(name): max |Δ| \(worst) of \(scale)")
    }
}

/// Cross-entropy's gradient is softmax − onehot, scaled by 1/normalizer.
@Test func crossEntropyBackward() {
    let vocab = 12, targets: [Int32] = [3, 0, 11]
    func loss(_ z: [Float]) -> Double {
        var copy = z
        return CrossEntropy.lossAndGradient(&copy, targets: targets, vocab: vocab, normalizer: 3) / 3
    }
    var rng = SeededGenerator(seed: 5)
    let z = (0..<(3 * vocab)).map { _ in Float.random(in: -3...3, using: &rng) }
    var grad = z
    _ = CrossEntropy.lossAndGradient(&grad, targets: targets, vocab: vocab, normalizer: 3)
    for i in z.indices {
        var p = z, m = z
        p[i] += 1e-2
        m[i] -= 1e-2
        let fd = (loss(p) - loss(m)) / 2e-2
        #expect(abs(fd - Double(grad[i])) <= 1e-3, "logit \(i): fd \(fd) vs \(grad[i])")
    }
}
