import Foundation
import Testing
@testable import AttuneModel
import AttuneTensor

/// Decode attention split into pieces of a few positions (merged by their maxima and sums)
/// gives what one piece per head gives, and both match softmax attention computed in double
/// precision (over the keys and values as stored) within 1e-5 of the largest value magnitude:
/// sequences of 1, 6, 40 and 100 positions in one step, in pieces of 7 positions (last pieces
/// of 1, 6, 5 and 2) and of the default size, over fp32 and half-precision caches.
@Test(arguments: [KVCache.Precision.fp32, .half])
func decodeAttentionInPiecesMatchesOnePiece(precision: KVCache.Precision) {
    let c = LlamaConfig(layers: 1, dim: 96, ffnDim: 96, heads: 6, kvHeads: 2, vocabSize: 8, contextLength: 128,
                        ropeBase: 10000, normEps: 1e-5)
    let hd = c.headDim, kvDim = c.kvHeads * hd, group = c.heads / c.kvHeads
    var state: UInt64 = 7
    func value() -> Float {
        state = state &* 6364136223846793005 &+ 1442695040888963407
        return Float(Int(state >> 40) % 2001 - 1000) / 250
    }
    let lengths = [1, 6, 40, 100]
    let qs = lengths.map { _ in (0..<c.heads * hd).map { _ in value() } }
    let stored: (Float) -> Float = precision == .half ? { halfToFloat(floatToHalf($0)) } : { $0 }
    let keys = lengths.map { L in (0..<L * kvDim).map { _ in stored(value()) } }
    let values = lengths.map { L in (0..<L * kvDim).map { _ in stored(value()) } }

    func attend(positionsPerPiece: Int) -> [[Float]] {
        var outs = lengths.map { _ in [Float](repeating: .nan, count: c.heads * hd) }
        let q = qs.map { UnsafeMutablePointer<Float>.allocate(capacity: $0.count) }
        let o = outs.map { UnsafeMutablePointer<Float>.allocate(capacity: $0.count) }
        let k = keys.map { UnsafeMutableRawPointer.allocate(byteCount: $0.count * precision.bytes, alignment: 64) }
        let v = values.map { UnsafeMutableRawPointer.allocate(byteCount: $0.count * precision.bytes, alignment: 64) }
        defer { (q + o).forEach { $0.deallocate() }; (k + v).forEach { $0.deallocate() } }
        func rows(_ p: UnsafeMutableRawPointer) -> CachedRows {
            precision == .half ? .half(p.assumingMemoryBound(to: UInt16.self)) : .fp32(p.assumingMemoryBound(to: Float.self))
        }
        func store(_ xs: [Float], _ into: UnsafeMutableRawPointer) {
            for (j, x) in xs.enumerated() {
                if precision == .half { into.storeBytes(of: floatToHalf(x), toByteOffset: 2 * j, as: UInt16.self) }
                else { into.storeBytes(of: x, toByteOffset: 4 * j, as: Float.self) }
            }
        }
        for i in lengths.indices {
            q[i].initialize(from: qs[i], count: qs[i].count)
            store(keys[i], k[i])
            store(values[i], v[i])
        }
        let items = lengths.indices.map { i in
            Attention.Decode(q: q[i], past: lengths[i] - 1, keys: rows(k[i]), values: rows(v[i]), out: o[i])
        }
        Attention.decode(items, config: c, positionsPerPiece: positionsPerPiece)
        for i in lengths.indices { outs[i] = Array(UnsafeBufferPointer(start: o[i], count: c.heads * hd)) }
        return outs
    }

    let whole = attend(positionsPerPiece: Attention.positionsPerPiece), pieces = attend(positionsPerPiece: 7)
    let magnitude = values.flatMap { $0 }.map(abs).max()!
    for (i, L) in lengths.enumerated() {
        for h in 0..<c.heads {
            let kvh = h / group
            let scores = (0..<L).map { j in
                (0..<hd).reduce(0.0) { $0 + Double(qs[i][h * hd + $1]) * Double(keys[i][j * kvDim + kvh * hd + $1]) } / Double(hd).squareRoot()
            }
            let top = scores.max()!, weights = scores.map { exp($0 - top) }, total = weights.reduce(0, +)
            for d in 0..<hd {
                let exact = (0..<L).reduce(0.0) { $0 + weights[$1] * Double(values[i][$1 * kvDim + kvh * hd + d]) } / total
                for (name, out) in [("one piece", whole), ("pieces of 7", pieces)] {
                    #expect(abs(Double(out[i][h * hd + d]) - exact) <= 1e-5 * Double(magnitude),
                            "\(name): sequence of \(L), head \(h), element \(d): \(out[i][h * hd + d]) vs \(exact)")
                }
            }
        }
    }
}
