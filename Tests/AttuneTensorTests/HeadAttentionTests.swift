import Testing
@testable import AttuneTensor

/// A decode step's per-head attention kernels on every path this CPU can run, over fp32 and
/// half-precision caches, against the same sums in double precision (of the values as stored)
/// within 1e-5 of Σ|terms| (fp32 rounding): head sizes of one and two vectors, of more than the
/// eight accumulators the weighted sum holds at once (128), and one that is not a multiple of
/// the vector width (12, the portable path); position counts below, at and past a block of
/// eight; keys and values strided as in a KV cache with several heads.
@Test(arguments: [8, 16, 64, 128, 12], [1, 7, 8, 37])
func headAttentionKernelsMatchTheirSums(headDim hd: Int, positions n: Int) {
    var rng = SplitMix(seed: UInt64(hd * 100 + n))
    func value() -> Float { Float(rng.next() % 20001) / 10000 - 1 }
    let stride = 3 * hd + 4, scale: Float = 0.125
    let q = (0..<hd).map { _ in value() }
    let keys = (0..<(n * stride)).map { _ in value() }
    let values = (0..<(n * stride)).map { _ in value() }
    let halfKeys = keys.map(floatToHalf), halfValues = values.map(floatToHalf)
    let p = (0..<n).map { _ in abs(value()) }
    for isa in KernelISA.runnable {
        for half in [false, true] {
            var s = [Float](repeating: .nan, count: n), out = [Float](repeating: .nan, count: hd)
            let k = half ? halfKeys.map(halfToFloat) : keys, v = half ? halfValues.map(halfToFloat) : values
            keys.withUnsafeBufferPointer { kf in values.withUnsafeBufferPointer { vf in
                halfKeys.withUnsafeBufferPointer { kh in halfValues.withUnsafeBufferPointer { vh in
                    let kr: CachedRows = half ? .half(kh.baseAddress!) : .fp32(kf.baseAddress!)
                    let vr: CachedRows = half ? .half(vh.baseAddress!) : .fp32(vf.baseAddress!)
                    HeadAttention.scores(q: q, headDim: hd, keys: kr, stride: stride, count: n, scale: scale, into: &s, isa: isa)
                    HeadAttention.mix(p, headDim: hd, values: vr, stride: stride, count: n, into: &out, isa: isa)
                } }
            } }
            for j in 0..<n {
                let terms = (0..<hd).map { Double(q[$0]) * Double(k[j * stride + $0]) * Double(scale) }
                let exact = terms.reduce(0, +), magnitude = terms.reduce(0) { $0 + abs($1) }
                #expect(abs(Double(s[j]) - exact) <= 1e-5 * magnitude, "\(isa) half \(half) score \(j): \(s[j]) vs \(exact)")
            }
            for d in 0..<hd {
                let terms = (0..<n).map { Double(p[$0]) * Double(v[$0 * stride + d]) }
                let exact = terms.reduce(0, +), magnitude = terms.reduce(0) { $0 + abs($1) }
                #expect(abs(Double(out[d]) - exact) <= 1e-5 * magnitude, "\(isa) half \(half) output \(d): \(out[d]) vs \(exact)")
            }
        }
    }
}

/// The bulk half conversions give Swift's `Float16` bits on every path: narrowing rounds to
/// nearest even (ties, subnormals, the overflow threshold 65520, infinities) and widening is
/// exact for all 65,536 bit patterns; NaN stays NaN. Counts that are not a multiple of eight
/// exercise the vector loops' tails.
@Test func halfConversionsMatchFloat16OnEveryPath() {
    var rng = SplitMix(seed: 16)
    let edges: [Float] = [0, -0.0, 1, -1, 65504, 65519.996, 65520, -65520, 1e10, .infinity, -.infinity,
                          0x1p-24, 0x1p-25, 0x1.8p-25, 0x1.8p-24, 0x1.4p-24, 0x1.ffcp-15, 0x1.ffep-15, 0x1p-14,
                          1 + 0x1p-11, 1 + 0x1.8p-11, 1 + 0x1p-10 + 0x1p-11, -0x1p-26, .leastNonzeroMagnitude]
    let random = (0..<1003).map { _ in Float(bitPattern: UInt32(truncatingIfNeeded: rng.next())) }
    let xs = edges + random + [.nan]
    let allBits = (0...UInt16.max).map { $0 }
    for isa in KernelISA.runnable {
        var h = [UInt16](repeating: 0, count: xs.count)
        HalfConversion.narrow(xs, into: &h, count: xs.count, isa: isa)
        for (x, bits) in zip(xs, h) {
            if x.isNaN {
                #expect(Float16(bitPattern: bits).isNaN, "\(isa): NaN → \(bits)")
            } else {
                #expect(bits == Float16(x).bitPattern, "\(isa): \(x) → \(bits), Float16 gives \(Float16(x).bitPattern)")
            }
        }
        var wide = [Float](repeating: 0, count: allBits.count)
        HalfConversion.widen(allBits, into: &wide, count: allBits.count, isa: isa)
        for (bits, x) in zip(allBits, wide) {
            let expected = Float(Float16(bitPattern: bits))
            #expect(expected.isNaN ? x.isNaN : x.bitPattern == expected.bitPattern, "\(isa): \(bits) → \(x)")
        }
    }
}
