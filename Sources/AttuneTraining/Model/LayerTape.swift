import AttuneModel
import AttuneTensor

/// Activations of one transformer block kept from forward for backward (`n` = batch·seqLen rows).
final class LayerTape {
    let xIn, xn1, rstd1, q, k, v, probs, att, xMid, xn2, rstd2, gate, up, h: FloatBuffer
    /// x·Aᵀ of every trainable LoRA target.
    var loraProjections: [LinearTarget: FloatBuffer] = [:]
    /// The LoRA input after dropout and the dropout scale mask (0 or 1/keep), per target.
    var droppedInputs: [LinearTarget: FloatBuffer] = [:]
    var dropoutMasks: [LinearTarget: FloatBuffer] = [:]

    init(n: Int, c: LlamaConfig, batch: Int, seqLen: Int) {
        let kv = c.kvHeads * c.headDim
        xIn = FloatBuffer(n * c.dim)
        xn1 = FloatBuffer(n * c.dim)
        rstd1 = FloatBuffer(n)
        q = FloatBuffer(n * c.dim)
        k = FloatBuffer(n * kv)
        v = FloatBuffer(n * kv)
        probs = FloatBuffer(batch * c.heads * seqLen * seqLen)
        att = FloatBuffer(n * c.dim)
        xMid = FloatBuffer(n * c.dim)
        xn2 = FloatBuffer(n * c.dim)
        rstd2 = FloatBuffer(n)
        gate = FloatBuffer(n * c.ffnDim)
        up = FloatBuffer(n * c.ffnDim)
        h = FloatBuffer(n * c.ffnDim)
    }

    /// Bytes held.
    var bytes: Int {
        let main = [xIn, xn1, rstd1, q, k, v, probs, att, xMid, xn2, rstd2, gate, up, h].reduce(0) { $0 + $1.count }
        let extra = (Array(loraProjections.values) + Array(droppedInputs.values) + Array(dropoutMasks.values))
            .reduce(0) { $0 + $1.count }
        return 4 * (main + extra)
    }
}
