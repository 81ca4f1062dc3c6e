import AttuneTensor
import Foundation

/// Causal grouped-query attention of new positions over their cached keys/values.
enum Attention {
    /// One new position of a sequence in a decode step: its query (`[heads × headDim]`, RoPE
    /// applied) over its `past + 1` cached keys/values (`[past + 1, kvHeads × headDim]`), into
    /// `out` (`[heads × headDim]`).
    struct Decode {
        let q: UnsafePointer<Float>
        let past: Int
        let keys: UnsafePointer<Float>
        let values: UnsafePointer<Float>
        let out: UnsafeMutablePointer<Float>
    }

    /// A decode step's attention for every sequence in one fan-out over (sequence, KV head)
    /// pairs: the query heads sharing a KV head run one after another on one core, so its keys
    /// and values come from memory once and from cache for the rest of the group (measured
    /// against (sequence, query head) pairs, alternated, `attune bench model --weights quantized
    /// --repeats 2`: decode faster in 5 of 5 runs, by 4–13%). Each head's arithmetic is the same
    /// whatever else is in the step.
    static func decode(_ items: [Decode], config c: LlamaConfig) {
        guard let longest = items.map({ $0.past + 1 }).max() else { return }
        let hd = c.headDim, kvDim = c.kvHeads * hd, group = c.heads / c.kvHeads
        let scale = 1 / Float(hd).squareRoot()
        Parallel.pieces(items.count * c.kvHeads, minPerPiece: 1) { units in
            let s = UnsafeMutablePointer<Float>.allocate(capacity: longest)
            defer { s.deallocate() }
            for unit in units {
                let item = items[unit / c.kvHeads], kvh = unit % c.kvHeads, L = item.past + 1
                let keys = item.keys + kvh * hd, values = item.values + kvh * hd
                for h in (kvh * group)..<((kvh + 1) * group) {
                    HeadAttention.scores(q: item.q + h * hd, headDim: hd, keys: keys, stride: kvDim, count: L, scale: scale, into: s)
                    Ops.softmax(s, L)
                    HeadAttention.mix(s, headDim: hd, values: values, stride: kvDim, count: L, into: item.out + h * hd)
                }
            }
        }
    }

    /// `n` new positions of one sequence (a prefill): `q`: `[n, heads × headDim]` (RoPE
    /// applied); `keys`/`values`: `[past + n, kvHeads × headDim]`; `out`: `[n, heads × headDim]`.
    static func forward(q: UnsafePointer<Float>, n: Int, past: Int, keys: UnsafePointer<Float>, values: UnsafePointer<Float>,
                        config c: LlamaConfig, out: UnsafeMutablePointer<Float>) {
        let D = c.dim, hd = c.headDim, kvDim = c.kvHeads * hd, group = c.heads / c.kvHeads
        let L = past + n
        let scale = 1 / Float(hd).squareRoot()
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
