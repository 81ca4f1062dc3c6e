import AttuneModel
import AttuneTensor

/// Activations of one transformer block kept from forward for backward (`n` = batch·seqLen
/// rows). Tapes are allocated once per batch shape and reused across steps.
final class LayerTape {
    let xIn, xn1, rstd1, q, k, v, probs, att, xMid, xn2, rstd2, gate, up, h: FloatBuffer
    /// x·Aᵀ of every trainable LoRA target.
    let loraProjections: [LinearTarget: FloatBuffer]
    /// The LoRA input after dropout and the dropout scale mask (0 or 1/keep), per target.
    let droppedInputs: [LinearTarget: FloatBuffer]
    let dropoutMasks: [LinearTarget: FloatBuffer]
    /// Bottleneck modules' inputs (the sublayer output), pre-activations and activations.
    let sublayers: [BottleneckConfig.Placement: (input: FloatBuffer, u: FloatBuffer, a: FloatBuffer)]
    /// Whether the last forward applied dropout on the LoRA inputs.
    var dropoutApplied = false

    init(n: Int, c: LlamaConfig, batch: Int, seqLen: Int, lora: LoRAConfig?, bottleneck: BottleneckConfig?) {
        let kv = c.kvHeads * c.headDim
        func buffer(_ count: Int) -> FloatBuffer { FloatBuffer(count, zeroed: false) }
        xIn = buffer(n * c.dim)
        xn1 = buffer(n * c.dim)
        rstd1 = buffer(n)
        q = buffer(n * c.dim)
        k = buffer(n * kv)
        v = buffer(n * kv)
        probs = buffer(batch * c.heads * seqLen * seqLen)
        att = buffer(n * c.dim)
        xMid = buffer(n * c.dim)
        xn2 = buffer(n * c.dim)
        rstd2 = buffer(n)
        gate = buffer(n * c.ffnDim)
        up = buffer(n * c.ffnDim)
        h = buffer(n * c.ffnDim)
        var projections: [LinearTarget: FloatBuffer] = [:], dropped: [LinearTarget: FloatBuffer] = [:], masks: [LinearTarget: FloatBuffer] = [:]
        for t in lora?.targets ?? [] {
            guard let lora else { break }
            projections[t] = buffer(n * lora.rank)
            if lora.dropout > 0 {
                dropped[t] = buffer(n * t.shape(c).in)
                masks[t] = buffer(n * t.shape(c).in)
            }
        }
        loraProjections = projections
        droppedInputs = dropped
        dropoutMasks = masks
        var subs: [BottleneckConfig.Placement: (FloatBuffer, FloatBuffer, FloatBuffer)] = [:]
        for p in bottleneck?.placements ?? [] {
            subs[p] = (buffer(n * c.dim), buffer(n * bottleneck!.size), buffer(n * bottleneck!.size))
        }
        sublayers = subs.mapValues { (input: $0.0, u: $0.1, a: $0.2) }
    }
}

/// Gradient buffers of one block's backward, reused for every layer and step.
final class BackwardWorkspace {
    let dh, dGate, dUp, dxn2, dAtt, dq, dk, dv, work, dxn1: FloatBuffer
    /// Bottleneck backward buffers (nil without bottleneck modules).
    let dSublayer, dBottleneck: FloatBuffer?

    init(n: Int, c: LlamaConfig, batch: Int, seqLen: Int, bottleneck: Int) {
        let kv = c.kvHeads * c.headDim
        func buffer(_ count: Int) -> FloatBuffer { FloatBuffer(count, zeroed: false) }
        dh = buffer(n * c.ffnDim)
        dGate = buffer(n * c.ffnDim)
        dUp = buffer(n * c.ffnDim)
        dxn2 = buffer(n * c.dim)
        dAtt = buffer(n * c.dim)
        dq = buffer(n * c.dim)
        dk = buffer(n * kv)
        dv = buffer(n * kv)
        work = buffer(batch * c.heads * seqLen * seqLen)
        dxn1 = buffer(n * c.dim)
        dSublayer = bottleneck > 0 ? buffer(n * c.dim) : nil
        dBottleneck = bottleneck > 0 ? buffer(n * bottleneck) : nil
    }
}
