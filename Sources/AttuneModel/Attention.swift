import AttuneTensor
import Foundation

/// Causal grouped-query attention of `n` new positions over `past + n` cached keys/values.
enum Attention {
    /// `q`: `[n, heads × headDim]` (RoPE applied); `keys`/`values`: `[past + n, kvHeads × headDim]`;
    /// `out`: `[n, heads × headDim]`.
    static func forward(q: UnsafePointer<Float>, n: Int, past: Int, keys: UnsafePointer<Float>, values: UnsafePointer<Float>,
                        config c: LlamaConfig, out: UnsafeMutablePointer<Float>) {
        let D = c.dim, hd = c.headDim, kvDim = c.kvHeads * hd, group = c.heads / c.kvHeads
        let L = past + n
        let scale = 1 / Float(hd).squareRoot()
        if n == 1 {
            let scores = UnsafeMutablePointer<Float>.allocate(capacity: c.heads * L)
            defer { scores.deallocate() }
            Parallel.chunks(c.heads, minPerChunk: 1) { range in
                for h in range {
                    let kvh = h / group
                    let qh = q + h * hd
                    let s = scores + h * L
                    for j in 0..<L { s[j] = MatVec.dot(qh, keys + j * kvDim + kvh * hd, hd) * scale }
                    Ops.softmax(s, L)
                    let o = out + h * hd
                    o.initialize(repeating: 0, count: hd)
                    for j in 0..<L {
                        let p = s[j]
                        let vj = values + j * kvDim + kvh * hd
                        for d in 0..<hd { o[d] += p * vj[d] }
                    }
                }
            }
            return
        }
        let all = UnsafeMutablePointer<Float>.allocate(capacity: c.heads * n * L)
        defer { all.deallocate() }
        Parallel.chunks(c.heads, minPerChunk: 1) { heads in
            for h in heads {
                let kvh = h / group
                let scores = all + h * n * L
                Blas.sgemm(transB: true, m: n, n: L, k: hd, alpha: scale, a: q + h * hd, lda: D,
                           b: keys + kvh * hd, ldb: kvDim, c: scores, ldc: L)
                for i in 0..<n {
                    let row = scores + i * L
                    let visible = past + i + 1
                    Ops.softmax(row, visible)
                    if visible < L { (row + visible).update(repeating: 0, count: L - visible) }
                }
                Blas.sgemm(m: n, n: hd, k: L, a: scores, lda: L, b: values + kvh * hd, ldb: kvDim, c: out + h * hd, ldc: D)
            }
        }
    }
}
