import AttuneModel
import AttuneTensor
import Foundation

/// A batch of equal-length token rows with next-token targets (−1 = no loss at that position).
public struct TrainingBatch: Sendable {
    public let tokens: [Int32]
    public let targets: [Int32]
    public let batch: Int
    public let seqLen: Int

    public init(tokens: [Int32], targets: [Int32], batch: Int, seqLen: Int) {
        precondition(tokens.count == batch * seqLen && targets.count == tokens.count, "batch shape mismatch")
        self.tokens = tokens
        self.targets = targets
        self.batch = batch
        self.seqLen = seqLen
    }

    /// Positions that carry loss.
    public var lossPositions: Int { targets.reduce(0) { $0 + ($1 >= 0 ? 1 : 0) } }
}

/// The frozen llama base with a trainable adapter — LoRA or bottleneck modules — optionally
/// over a frozen LoRA adapter: forward with activations kept, and backward to the adapter's
/// gradients. Base weights get no gradient; logits and their backward are computed only at
/// positions that carry loss.
public final class TrainableLlama: @unchecked Sendable {
    public let base: LlamaModel
    public let lora: LoRAAdapter?
    public let bottleneck: BottleneckAdapter?
    public let frozen: LoRAAdapter?
    /// Recompute each block's activations during backward instead of keeping them all.
    public let recompute: Bool
    private var rng: SeededGenerator
    /// Buffers of the loss head, allocated on first use.
    private lazy var headBuffers = HeadBuffers(dim: base.config.dim, vocab: base.config.vocabSize)
    /// Seed of this step's dropout masks; a mask is a function of (step seed, layer, target),
    /// so recomputation in backward redraws exactly the same mask.
    private var stepSeed: UInt64 = 0
    /// Tapes, backward workspace and residual stream for the last batch shape, reused across
    /// steps. A forward-only pass (an evaluation) keeps one tape for every layer and no
    /// workspace: a per-layer tape is only read back by the backward pass.
    private var buffers: (batch: Int, seqLen: Int, tapes: [LayerTape], workspace: BackwardWorkspace?, x: [FloatBuffer])?

    /// A trainable LoRA adapter over the base (and `frozen`, if given).
    public convenience init(base: LlamaModel, lora: LoRAAdapter, frozen: LoRAAdapter? = nil, recompute: Bool = false, seed: UInt64 = 0) throws {
        try self.init(base: base, lora: lora, bottleneck: nil, frozen: frozen, recompute: recompute, seed: seed)
    }

    /// Trainable bottleneck modules over the base (and `frozen`, if given).
    public convenience init(base: LlamaModel, bottleneck: BottleneckAdapter, frozen: LoRAAdapter? = nil, recompute: Bool = false, seed: UInt64 = 0) throws {
        try self.init(base: base, lora: nil, bottleneck: bottleneck, frozen: frozen, recompute: recompute, seed: seed)
    }

    private init(base: LlamaModel, lora: LoRAAdapter?, bottleneck: BottleneckAdapter?, frozen: LoRAAdapter?, recompute: Bool, seed: UInt64) throws {
        guard lora?.model ?? bottleneck?.model == base.config else { throw TrainingError.badAdapter("adapter shapes do not match the base model") }
        if let frozen, frozen.model != base.config { throw TrainingError.badAdapter("frozen adapter shapes do not match the base model") }
        self.base = base
        self.lora = lora
        self.bottleneck = bottleneck
        self.frozen = frozen
        self.recompute = recompute
        rng = SeededGenerator(seed: seed)
        base.output.makeDense()
    }

    /// State of the dropout generator (saved in checkpoints).
    public var rngState: [UInt64] {
        get { rng.state }
        set { rng.state = newValue }
    }

    /// The adapters applied at inference: frozen (if any) then trainable.
    public var inferenceAdapter: any LinearAdapter {
        AdapterStack(([frozen, lora] as [LoRAAdapter?]).compactMap { $0 } + (bottleneck.map { [$0] } ?? []))
    }

    /// The trainable parameters and their gradients (one flat buffer each).
    public var parameters: FloatBuffer { lora?.parameters ?? bottleneck!.parameters }
    public var gradients: FloatBuffer { lora?.gradients ?? bottleneck!.gradients }

    /// Runs the batch; with `backward`, accumulates dL/dθ into `lora.gradients` for
    /// L = (Σ −log p) / `normalizer` (default: the batch's loss positions). Returns Σ −log p and
    /// the number of loss positions.
    @discardableResult
    public func step(_ batch: TrainingBatch, backward: Bool, normalizer: Float? = nil, training: Bool = true) -> (loss: Double, count: Int) {
        let c = base.config
        let n = batch.batch * batch.seqLen
        let D = c.dim
        let (tapes, workspace, states) = reusableBuffers(batch, backward: backward)
        stepSeed = rng.next()
        for (i, t) in batch.tokens.enumerated() { base.embedding.row(Int(t), into: states[0].pointer + i * D) }
        for l in 0..<c.layers {
            let tape = tapes[tapes.count == 1 ? 0 : l]
            tape.xIn.pointer.update(from: states[l].pointer, count: n * D)
            layerForward(l, tape: tape, batch: batch, out: states[l + 1], dropout: training)
        }
        let rows = batch.targets.indices.filter { batch.targets[$0] >= 0 }
        guard !rows.isEmpty else { return (0, 0) }
        let norm = normalizer ?? Float(rows.count)
        let dx = backward ? FloatBuffer(n * D) : nil
        let loss = head(x: states[c.layers], rows: rows, targets: rows.map { batch.targets[$0] }, normalizer: norm, dx: dx)
        guard let dx, let workspace else { return (loss, rows.count) }
        for l in stride(from: c.layers - 1, through: 0, by: -1) {
            let tape = tapes[recompute ? 0 : l]
            if recompute {
                tape.xIn.pointer.update(from: states[l].pointer, count: n * D)
                layerForward(l, tape: tape, batch: batch, out: states[l + 1], dropout: training)
            }
            layerBackward(l, tape: tape, batch: batch, dx: dx, work: workspace)
        }
        return (loss, rows.count)
    }

    /// The tapes (one per layer, or one shared when recomputing or only going forward), the
    /// backward workspace (when going backward) and the residual stream between layers for
    /// this batch shape.
    private func reusableBuffers(_ batch: TrainingBatch, backward: Bool) -> ([LayerTape], BackwardWorkspace?, [FloatBuffer]) {
        let c = base.config, n = batch.batch * batch.seqLen
        let tapeCount = recompute || !backward ? 1 : c.layers
        if let b = buffers, b.batch == batch.batch, b.seqLen == batch.seqLen, b.tapes.count >= tapeCount, !backward || b.workspace != nil {
            return (b.tapes, b.workspace, b.x)
        }
        buffers = nil
        let tapes = (0..<tapeCount).map { _ in
            LayerTape(n: n, c: c, batch: batch.batch, seqLen: batch.seqLen, lora: lora?.config, bottleneck: bottleneck?.config)
        }
        let workspace = backward ? BackwardWorkspace(n: n, c: c, batch: batch.batch, seqLen: batch.seqLen, bottleneck: bottleneck?.config.size ?? 0) : nil
        let states = (0...c.layers).map { _ in FloatBuffer(n * c.dim, zeroed: false) }
        buffers = (batch.batch, batch.seqLen, tapes, workspace, states)
        return (tapes, workspace, states)
    }

    /// Final RMSNorm, tied head and cross-entropy at the selected rows, in chunks; writes the
    /// gradient of the hidden state into `dx` (when given).
    private func head(x: FloatBuffer, rows: [Int], targets: [Int32], normalizer: Float, dx: FloatBuffer?) -> Double {
        let c = base.config, D = c.dim, V = c.vocabSize
        let chunk = HeadBuffers.rows
        var total = 0.0
        var start = 0
        let hb = headBuffers
        let hidden = hb.hidden, normed = hb.normed, rstd = hb.rstd, logits = hb.logits, dNormed = hb.dNormed, dh = hb.dHidden
        while start < rows.count {
            let m = min(chunk, rows.count - start)
            for i in 0..<m { (hidden.pointer + i * D).update(from: x.pointer + rows[start + i] * D, count: D) }
            RMSNormLayer.forward(hidden.pointer, weight: base.outputNorm, y: normed.pointer, rstd: rstd.pointer, rows: m, n: D, eps: c.normEps)
            base.output.matmul(normed.pointer, m: m, logits.pointer, scratch: base.scratch)
            total += CrossEntropy.lossAndGradient(logits.pointer, targets: Array(targets[start..<(start + m)]), vocab: V, normalizer: normalizer)
            if let dx {
                base.output.backward(logits.pointer, m: m, dNormed.pointer, accumulate: false, scratch: base.scratch)
                dh.pointer.update(repeating: 0, count: m * D)
                RMSNormLayer.backward(dNormed.pointer, x: hidden.pointer, weight: base.outputNorm, rstd: rstd.pointer, dx: dh.pointer, rows: m, n: D)
                for i in 0..<m { (dx.pointer + rows[start + i] * D).update(from: dh.pointer + i * D, count: D) }
            }
            start += m
        }
        return total
    }

    // MARK: One block

    /// y = W·x (+ frozen LoRA) (+ trainable LoRA), keeping the LoRA projections on the tape.
    private func linear(_ l: Int, _ t: LinearTarget, _ w: WeightMatrix, x: UnsafePointer<Float>, n: Int,
                        y: UnsafeMutablePointer<Float>, tape: LayerTape, dropout: Bool) {
        w.matmul(x, m: n, y, scratch: base.scratch)
        frozen?.addDelta(layer: l, target: t, x: x, m: n, y: y)
        guard let lora, lora.has(t), let xa = tape.loraProjections[t] else { return }
        var input = x
        let inF = t.shape(base.config).in
        tape.dropoutApplied = dropout && lora.config.dropout > 0
        if tape.dropoutApplied, let mask = tape.dropoutMasks[t], let dropped = tape.droppedInputs[t] {
            var g = SeededGenerator(seed: stepSeed &+ UInt64(l * 8 + LinearTarget.allCases.firstIndex(of: t)!) &* 0x9E37_79B9_7F4A_7C15)
            let keep = 1 - lora.config.dropout
            for i in 0..<(n * inF) {
                mask[i] = Float.random(in: 0..<1, using: &g) < keep ? 1 / keep : 0
                dropped[i] = x[i] * mask[i]
            }
            input = UnsafePointer(dropped.pointer)
        }
        lora.project(input, m: n, layer: l, target: t, into: xa.pointer)
        lora.expand(xa.pointer, m: n, layer: l, target: t, into: y, out: t.shape(base.config).out)
    }

    private func layerForward(_ l: Int, tape: LayerTape, batch: TrainingBatch, out: FloatBuffer, dropout: Bool) {
        let c = base.config, layer = base.layers[l]
        let n = batch.batch * batch.seqLen, D = c.dim, F = c.ffnDim
        let attention = AttentionLayer(batch: batch.batch, seqLen: batch.seqLen, heads: c.heads, kvHeads: c.kvHeads, headDim: c.headDim)
        RMSNormLayer.forward(tape.xIn.pointer, weight: layer.attnNorm, y: tape.xn1.pointer, rstd: tape.rstd1.pointer, rows: n, n: D, eps: c.normEps)
        linear(l, .q, layer.wq, x: tape.xn1.pointer, n: n, y: tape.q.pointer, tape: tape, dropout: dropout)
        linear(l, .k, layer.wk, x: tape.xn1.pointer, n: n, y: tape.k.pointer, tape: tape, dropout: dropout)
        linear(l, .v, layer.wv, x: tape.xn1.pointer, n: n, y: tape.v.pointer, tape: tape, dropout: dropout)
        RotaryLayer.forward(tape.q.pointer, rows: n, seqLen: batch.seqLen, heads: c.heads, headDim: c.headDim, table: base.rope)
        RotaryLayer.forward(tape.k.pointer, rows: n, seqLen: batch.seqLen, heads: c.kvHeads, headDim: c.headDim, table: base.rope)
        attention.forward(q: tape.q.pointer, k: tape.k.pointer, v: tape.v.pointer, probs: tape.probs.pointer, out: tape.att.pointer)
        linear(l, .o, layer.wo, x: tape.att.pointer, n: n, y: tape.xMid.pointer, tape: tape, dropout: dropout)
        if let bottleneck, bottleneck.has(.attention), let s = tape.sublayers[.attention] {
            s.input.pointer.update(from: tape.xMid.pointer, count: n * D)
            bottleneck.forward(l, .attention, h: tape.xMid.pointer, n: n, u: s.u.pointer, a: s.a.pointer)
        }
        Ops.add(tape.xMid.pointer, tape.xIn.pointer, count: n * D)
        RMSNormLayer.forward(tape.xMid.pointer, weight: layer.ffnNorm, y: tape.xn2.pointer, rstd: tape.rstd2.pointer, rows: n, n: D, eps: c.normEps)
        linear(l, .gate, layer.gate, x: tape.xn2.pointer, n: n, y: tape.gate.pointer, tape: tape, dropout: dropout)
        linear(l, .up, layer.up, x: tape.xn2.pointer, n: n, y: tape.up.pointer, tape: tape, dropout: dropout)
        SwiGLULayer.forward(gate: tape.gate.pointer, up: tape.up.pointer, h: tape.h.pointer, count: n * F)
        linear(l, .down, layer.down, x: tape.h.pointer, n: n, y: out.pointer, tape: tape, dropout: dropout)
        if let bottleneck, bottleneck.has(.mlp), let s = tape.sublayers[.mlp] {
            s.input.pointer.update(from: out.pointer, count: n * D)
            bottleneck.forward(l, .mlp, h: out.pointer, n: n, u: s.u.pointer, a: s.a.pointer)
        }
        Ops.add(out.pointer, tape.xMid.pointer, count: n * D)
    }

    /// Backward of `linear`: dx (+)= dy·W + frozen and trainable LoRA terms; LoRA grads accumulate.
    private func linearBackward(_ l: Int, _ t: LinearTarget, _ w: WeightMatrix, x: UnsafePointer<Float>, dy: UnsafePointer<Float>,
                                n: Int, dx: UnsafeMutablePointer<Float>, accumulate: Bool, tape: LayerTape) {
        w.backward(dy, m: n, dx, accumulate: accumulate, scratch: base.scratch)
        if let frozen, frozen.has(t) {
            frozen.backward(layer: l, target: t, x: nil, xa: nil, dy: dy, m: n, dx: dx)
        }
        if let lora, lora.has(t), let xa = tape.loraProjections[t] {
            if tape.dropoutApplied, let dropped = tape.droppedInputs[t], let mask = tape.dropoutMasks[t] {
                let dIn = FloatBuffer(n * t.shape(base.config).in)
                lora.backward(layer: l, target: t, x: dropped.pointer, xa: xa.pointer, dy: dy, m: n, dx: dIn.pointer)
                for i in 0..<dIn.count { dx[i] += dIn[i] * mask[i] }
            } else {
                lora.backward(layer: l, target: t, x: x, xa: xa.pointer, dy: dy, m: n, dx: dx)
            }
        }
    }

    /// The gradient reaching a sublayer's projection output: g itself, or through the bottleneck
    /// module at that placement (whose parameter gradients accumulate on the way).
    private func sublayerBackward(_ l: Int, _ p: BottleneckConfig.Placement, g: FloatBuffer, tape: LayerTape, n: Int,
                                  work w: BackwardWorkspace) -> UnsafePointer<Float> {
        guard let bottleneck, bottleneck.has(p), let s = tape.sublayers[p], let dSub = w.dSublayer, let du = w.dBottleneck else {
            return UnsafePointer(g.pointer)
        }
        bottleneck.backward(l, p, g: g.pointer, hIn: s.input.pointer, n: n, u: s.u.pointer, a: s.a.pointer, du: du.pointer, dh: dSub.pointer)
        return UnsafePointer(dSub.pointer)
    }

    /// Given dx = dL/d(block output), replaces it by dL/d(block input).
    private func layerBackward(_ l: Int, tape: LayerTape, batch: TrainingBatch, dx: FloatBuffer, work w: BackwardWorkspace) {
        let c = base.config, layer = base.layers[l]
        let n = batch.batch * batch.seqLen, D = c.dim, F = c.ffnDim, kv = c.kvHeads * c.headDim
        let attention = AttentionLayer(batch: batch.batch, seqLen: batch.seqLen, heads: c.heads, kvHeads: c.kvHeads, headDim: c.headDim)
        // MLP: out = xMid + down(swiglu(gate(xn2), up(xn2)))
        let dh = w.dh
        let dDown = sublayerBackward(l, .mlp, g: dx, tape: tape, n: n, work: w)
        linearBackward(l, .down, layer.down, x: tape.h.pointer, dy: dDown, n: n, dx: dh.pointer, accumulate: false, tape: tape)
        let dGate = w.dGate, dUp = w.dUp
        SwiGLULayer.backward(dh.pointer, gate: tape.gate.pointer, up: tape.up.pointer, dGate: dGate.pointer, dUp: dUp.pointer, count: n * F)
        let dxn2 = w.dxn2
        linearBackward(l, .gate, layer.gate, x: tape.xn2.pointer, dy: dGate.pointer, n: n, dx: dxn2.pointer, accumulate: false, tape: tape)
        linearBackward(l, .up, layer.up, x: tape.xn2.pointer, dy: dUp.pointer, n: n, dx: dxn2.pointer, accumulate: true, tape: tape)
        RMSNormLayer.backward(dxn2.pointer, x: tape.xMid.pointer, weight: layer.ffnNorm, rstd: tape.rstd2.pointer, dx: dx.pointer, rows: n, n: D)
        // Attention: xMid = xIn + o(attention(rope(q(xn1)), rope(k(xn1)), v(xn1)))
        let dAtt = w.dAtt
        let dO = sublayerBackward(l, .attention, g: dx, tape: tape, n: n, work: w)
        linearBackward(l, .o, layer.wo, x: tape.att.pointer, dy: dO, n: n, dx: dAtt.pointer, accumulate: false, tape: tape)
        let dq = w.dq, dk = w.dk, dv = w.dv, work = w.work
        dk.pointer.update(repeating: 0, count: n * kv)
        dv.pointer.update(repeating: 0, count: n * kv)
        attention.backward(dOut: dAtt.pointer, q: tape.q.pointer, k: tape.k.pointer, v: tape.v.pointer, probs: tape.probs.pointer,
                           dq: dq.pointer, dk: dk.pointer, dv: dv.pointer, work: work.pointer)
        RotaryLayer.backward(dq.pointer, rows: n, seqLen: batch.seqLen, heads: c.heads, headDim: c.headDim, table: base.rope)
        RotaryLayer.backward(dk.pointer, rows: n, seqLen: batch.seqLen, heads: c.kvHeads, headDim: c.headDim, table: base.rope)
        let dxn1 = w.dxn1
        linearBackward(l, .q, layer.wq, x: tape.xn1.pointer, dy: dq.pointer, n: n, dx: dxn1.pointer, accumulate: false, tape: tape)
        linearBackward(l, .k, layer.wk, x: tape.xn1.pointer, dy: dk.pointer, n: n, dx: dxn1.pointer, accumulate: true, tape: tape)
        linearBackward(l, .v, layer.wv, x: tape.xn1.pointer, dy: dv.pointer, n: n, dx: dxn1.pointer, accumulate: true, tape: tape)
        RMSNormLayer.backward(dxn1.pointer, x: tape.xIn.pointer, weight: layer.attnNorm, rstd: tape.rstd1.pointer, dx: dx.pointer, rows: n, n: D)
    }
}

/// Buffers for the loss head, which runs over chunks of `rows` loss positions.
final class HeadBuffers {
    static let rows = 256
    let hidden, normed, rstd, logits, dNormed, dHidden: FloatBuffer

    init(dim: Int, vocab: Int) {
        hidden = FloatBuffer(Self.rows * dim, zeroed: false)
        normed = FloatBuffer(Self.rows * dim, zeroed: false)
        rstd = FloatBuffer(Self.rows, zeroed: false)
        logits = FloatBuffer(Self.rows * vocab, zeroed: false)
        dNormed = FloatBuffer(Self.rows * dim, zeroed: false)
        dHidden = FloatBuffer(Self.rows * dim, zeroed: false)
    }
}
