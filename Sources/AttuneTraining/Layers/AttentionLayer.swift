import AttuneTensor

/// Causal grouped-query attention over whole sequences, with the softmax probabilities kept
/// for backward. Layout: q `[B·T, H·hd]`, k/v `[B·T, KV·hd]`, probs `[B, H, T, T]`.
///
/// The products run by blocks of `block` positions and skip the blocks above the diagonal,
/// which the causal mask zeroes: at T = 256 in blocks of 32, 36 of 64 blocks, so the six
/// products of a head (two forward, four backward) do 56% of the square's multiply-adds. One
/// layer's forward and backward at batch 8 × 256 (SmolLM2's 9 heads, Zen 4, 2 threads): 28–37
/// ms in one block, 22–25 in blocks of 128, 20–22 of 64, 19–20 of 32.
struct AttentionLayer {
    let batch: Int
    let seqLen: Int
    let heads: Int
    let kvHeads: Int
    let headDim: Int
    var block = 32

    var scale: Float { 1 / Float(headDim).squareRoot() }

    /// The row blocks of a sequence: `lo..<hi`.
    private var blocks: [Range<Int>] {
        stride(from: 0, to: seqLen, by: block).map { $0..<min($0 + block, seqLen) }
    }

    func forward(q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
                 probs: UnsafeMutablePointer<Float>, out: UnsafeMutablePointer<Float>) {
        let T = seqLen, D = heads * headDim, kvD = kvHeads * headDim, group = heads / kvHeads
        let blocks = self.blocks
        Parallel.chunks(batch * heads, minPerChunk: 1) { range in
            for bh in range {
                let b = bh / heads, h = bh % heads, g = h / group
                let p = probs + bh * T * T
                let qH = q + b * T * D + h * headDim, kG = k + b * T * kvD + g * headDim, vG = v + b * T * kvD + g * headDim
                for rows in blocks {
                    // S[rows, 0..<hi] = scale · Q[rows] K[0..<hi]ᵀ; P = softmax over j ≤ i, 0 above.
                    Blas.sgemm(transB: true, m: rows.count, n: rows.upperBound, k: headDim, alpha: scale,
                               a: qH + rows.lowerBound * D, lda: D, b: kG, ldb: kvD, c: p + rows.lowerBound * T, ldc: T)
                    for i in rows {
                        Ops.softmax(p + i * T, i + 1)
                        (p + i * T + i + 1).update(repeating: 0, count: T - i - 1)
                    }
                    // O[rows] = P[rows, 0..<hi] V[0..<hi]
                    Blas.sgemm(m: rows.count, n: headDim, k: rows.upperBound, a: p + rows.lowerBound * T, lda: T,
                               b: vG, ldb: kvD, c: out + b * T * D + rows.lowerBound * D + h * headDim, ldc: D)
                }
            }
        }
    }

    /// Given dOut, writes dq and accumulates dk, dv (zeroed by the caller). `work` needs
    /// `batch · heads · T · T` floats.
    func backward(dOut: UnsafePointer<Float>, q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
                  probs: UnsafePointer<Float>, dq: UnsafeMutablePointer<Float>, dk: UnsafeMutablePointer<Float>,
                  dv: UnsafeMutablePointer<Float>, work: UnsafeMutablePointer<Float>) {
        let T = seqLen, D = heads * headDim, kvD = kvHeads * headDim, group = heads / kvHeads
        let blocks = self.blocks
        // Query heads that share a KV head write the same dk/dv rows, so parallelize over (b, kv head).
        Parallel.chunks(batch * kvHeads, minPerChunk: 1) { range in
            for bg in range {
                let b = bg / kvHeads, g = bg % kvHeads
                let kG = k + b * T * kvD + g * headDim, vG = v + b * T * kvD + g * headDim
                let dkG = dk + b * T * kvD + g * headDim, dvG = dv + b * T * kvD + g * headDim
                for h in (g * group)..<((g + 1) * group) {
                    let bh = b * heads + h
                    let p = probs + bh * T * T
                    let dp = work + bh * T * T
                    let dOutH = dOut + b * T * D + h * headDim, qH = q + b * T * D + h * headDim
                    for rows in blocks {
                        let lo = rows.lowerBound
                        // dV[rows] += P[lo..<T, rows]ᵀ dO[lo..<T] (rows above lo have P = 0 there)
                        Blas.sgemm(transA: true, m: rows.count, n: headDim, k: T - lo, a: p + lo * T + lo, lda: T,
                                   b: dOutH + lo * D, ldb: D, beta: 1, c: dvG + lo * kvD, ldc: kvD)
                        // dP[rows, 0..<hi] = dO[rows] V[0..<hi]ᵀ
                        Blas.sgemm(transB: true, m: rows.count, n: rows.upperBound, k: headDim, a: dOutH + lo * D, lda: D,
                                   b: vG, ldb: kvD, c: dp + lo * T, ldc: T)
                        // dS = P ⊙ (dP − rowsum(P ⊙ dP)), scaled into the pre-softmax logits.
                        for i in rows {
                            let pr = p + i * T, dr = dp + i * T
                            var s: Float = 0
                            for j in 0...i { s += pr[j] * dr[j] }
                            for j in 0...i { dr[j] = pr[j] * (dr[j] - s) * scale }
                            (dr + i + 1).update(repeating: 0, count: T - i - 1)
                        }
                        // dQ[rows] = dS[rows, 0..<hi] K[0..<hi]
                        Blas.sgemm(m: rows.count, n: headDim, k: rows.upperBound, a: dp + lo * T, lda: T, b: kG, ldb: kvD,
                                   c: dq + b * T * D + lo * D + h * headDim, ldc: D)
                    }
                    // dK[rows] += dS[lo..<T, rows]ᵀ Q[lo..<T], once dS is complete
                    for rows in blocks {
                        let lo = rows.lowerBound
                        Blas.sgemm(transA: true, m: rows.count, n: headDim, k: T - lo, a: dp + lo * T + lo, lda: T,
                                   b: qH + lo * D, ldb: D, beta: 1, c: dkG + lo * kvD, ldc: kvD)
                    }
                }
            }
        }
    }
}
