import AttuneTensor
import Foundation

/// Causal grouped-query attention of new positions over their cached keys/values.
enum Attention {
    /// One new position of a sequence in a decode step: its query (`[heads × headDim]`, RoPE
    /// applied) over its `past + 1` cached keys/values (`[past + 1, kvHeads × headDim]`, fp32 or
    /// half precision), into `out` (`[heads × headDim]`).
    struct Decode {
        let q: UnsafePointer<Float>
        let past: Int
        let keys: CachedRows
        let values: CachedRows
        let out: UnsafeMutablePointer<Float>
    }

    /// Positions per piece of a sequence's decode attention (see `decode`).
    static let positionsPerPiece = 128

    /// Pieces of `P` positions covering an item's `past + 1` positions.
    private static func pieceCount(_ item: Decode, _ P: Int) -> Int { (item.past + P) / P }

    /// A decode step's attention for every sequence in one fan-out over (sequence, KV head,
    /// piece of `positionsPerPiece` positions) units: the query heads sharing a KV head run one
    /// after another on one core, so its keys and values come from memory once and from cache
    /// for the rest of the group (measured against (sequence, query head) pairs, alternated,
    /// `attune bench model --weights quantized --repeats 2`: decode faster in 5 of 5 runs, by
    /// 4–13%). Splitting long contexts into pieces gives one sequence's three KV heads more
    /// units than there are cores; each piece keeps its scores' max, the sum of their
    /// exponentials and the unnormalized weighted sum of values, and the pieces of a head are
    /// merged after the fan-out (a single piece is normalized in place). The pieces depend only
    /// on the sequence's length, so each head's arithmetic is the same whatever else is in the step.
    static func decode(_ items: [Decode], config c: LlamaConfig, positionsPerPiece P: Int = positionsPerPiece) {
        guard !items.isEmpty else { return }
        let hd = c.headDim, kvDim = c.kvHeads * hd, group = c.heads / c.kvHeads
        let scale = 1 / Float(hd).squareRoot()
        // Units of item i: firstUnit[i] ..< firstUnit[i + 1], KV head major, piece minor.
        var firstUnit = [0]
        for item in items { firstUnit.append(firstUnit.last! + c.kvHeads * pieceCount(item, P)) }
        let units = firstUnit.last!
        // Per unit and query head of its group: [max, sum, hd unnormalized outputs].
        let stride = 2 + hd
        let partial = UnsafeMutablePointer<Float>.allocate(capacity: units * group * stride)
        defer { partial.deallocate() }
        firstUnit.withUnsafeBufferPointer { first in
            Parallel.pieces(units, minPerPiece: 1) { range in
                let s = UnsafeMutablePointer<Float>.allocate(capacity: P)
                defer { s.deallocate() }
                var i = 0
                for unit in range {
                    while first[i + 1] <= unit { i += 1 }
                    let item = items[i], L = item.past + 1, pieces = pieceCount(item, P)
                    let kvh = (unit - first[i]) / pieces, piece = (unit - first[i]) % pieces
                    let lo = piece * P, n = min(P, L - lo)
                    let keys = item.keys.advanced(by: lo * kvDim + kvh * hd)
                    let values = item.values.advanced(by: lo * kvDim + kvh * hd)
                    for g in 0..<group {
                        let h = kvh * group + g
                        HeadAttention.scores(q: item.q + h * hd, headDim: hd, keys: keys, stride: kvDim, count: n, scale: scale, into: s)
                        let (mx, sum) = Ops.expShifted(s, n)
                        let slot = partial + (unit * group + g) * stride
                        let out = pieces == 1 ? item.out + h * hd : slot + 2
                        HeadAttention.mix(s, headDim: hd, values: values, stride: kvDim, count: n, into: out)
                        if pieces == 1 {
                            let inv = 1 / sum
                            for d in 0..<hd { out[d] *= inv }
                        } else {
                            slot[0] = mx
                            slot[1] = sum
                        }
                    }
                }
            }
        }
        for (i, item) in items.enumerated() {
            let pieces = pieceCount(item, P)
            guard pieces > 1 else { continue }
            for h in 0..<c.heads {
                let kvh = h / group, g = h % group
                func piece(_ p: Int) -> UnsafeMutablePointer<Float> { partial + ((firstUnit[i] + kvh * pieces + p) * group + g) * stride }
                var mx = -Float.infinity
                for p in 0..<pieces { mx = max(mx, piece(p)[0]) }
                let out = item.out + h * hd
                out.update(repeating: 0, count: hd)
                var sum: Float = 0
                for p in 0..<pieces {
                    let w = expf(piece(p)[0] - mx), values = piece(p) + 2
                    sum += w * piece(p)[1]
                    for d in 0..<hd { out[d] += w * values[d] }
                }
                let inv = 1 / sum
                for d in 0..<hd { out[d] *= inv }
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
