import AttuneTensor

/// Causal grouped-query attention over whole sequences, with the softmax probabilities kept
/// for backward. Layout: q `[B·T, H·hd]`, k/v `[B·T, KV·hd]`, probs `[B, H, T, T]`.
struct AttentionLayer {
    let batch: Int
    let seqLen: Int
    let heads: Int
    let kvHeads: Int
    let headDim: Int

    var scale: Float { 1 / Float(headDim).squareRoot() }

    func forward(q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
                 probs: UnsafeMutablePointer<Float>, out: UnsafeMutablePointer<Float>) {
        let T = seqLen, D = heads * headDim, kvD = kvHeads * headDim, group = heads / kvHeads
        Parallel.chunks(batch * heads, minPerChunk: 1) { range in
            for bh in range {
                let b = bh / heads, h = bh % heads, g = h / group
                let p = probs + bh * T * T
                Blas.sgemm(transB: true, m: T, n: T, k: headDim, alpha: scale, a: q + b * T * D + h * headDim, lda: D,
                           b: k + b * T * kvD + g * headDim, ldb: kvD, c: p, ldc: T)
                for i in 0..<T {
                    Ops.softmax(p + i * T, i + 1)
                    (p + i * T + i + 1).update(repeating: 0, count: T - i - 1)
                }
                Blas.sgemm(m: T, n: headDim, k: T, a: p, lda: T, b: v + b * T * kvD + g * headDim, ldb: kvD,
                           c: out + b * T * D + h * headDim, ldc: D)
            }
        }
    }

    /// Given dOut, writes dq and accumulates dk, dv (zeroed by the caller). `work` needs
    /// `batch · heads · T · T` floats.
    func backward(dOut: UnsafePointer<Float>, q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
                  probs: UnsafePointer<Float>, dq: UnsafeMutablePointer<Float>, dk: UnsafeMutablePointer<Float>,
                  dv: UnsafeMutablePointer<Float>, work: UnsafeMutablePointer<Float>) {
        let T = seqLen, D = heads * headDim, kvD = kvHeads * headDim, group = heads / kvHeads
        // Query heads that share a KV head write the same dk/dv rows, so parallelize over (b, kv head).
        Parallel.chunks(batch * kvHeads, minPerChunk: 1) { range in
            for bg in range {
                let b = bg / kvHeads, g = bg % kvHeads
                for h in (g * group)..<((g + 1) * group) {
                    let bh = b * heads + h
                    let p = probs + bh * T * T
                    let dp = work + bh * T * T
                    let dOutH = dOut + b * T * D + h * headDim
                    let vG = v + b * T * kvD + g * headDim
                    // dV += Pᵀ dO ; dP = dO Vᵀ
                    Blas.sgemm(transA: true, m: T, n: headDim, k: T, a: p, lda: T, b: dOutH, ldb: D,
                               beta: 1, c: dv + b * T * kvD + g * headDim, ldc: kvD)
                    Blas.sgemm(transB: true, m: T, n: T, k: headDim, a: dOutH, lda: D, b: vG, ldb: kvD, c: dp, ldc: T)
                    // dS = P ⊙ (dP − rowsum(P ⊙ dP)), scaled into the pre-softmax logits.
                    for i in 0..<T {
                        let pr = p + i * T, dr = dp + i * T
                        var s: Float = 0
                        for j in 0...i { s += pr[j] * dr[j] }
                        for j in 0...i { dr[j] = pr[j] * (dr[j] - s) * scale }
                        (dr + i + 1).update(repeating: 0, count: T - i - 1)
                    }
                    // dQ = dS K ; dK += dSᵀ Q
                    Blas.sgemm(m: T, n: headDim, k: T, a: dp, lda: T, b: k + b * T * kvD + g * headDim, ldb: kvD,
                               c: dq + b * T * D + h * headDim, ldc: D)
                    Blas.sgemm(transA: true, m: T, n: headDim, k: T, a: dp, lda: T, b: q + b * T * D + h * headDim, ldb: D,
                               beta: 1, c: dk + b * T * kvD + g * headDim, ldc: kvD)
                }
            }
        }
    }
}
