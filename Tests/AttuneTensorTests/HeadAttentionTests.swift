import Testing
@testable import AttuneTensor

/// A decode step's per-head attention kernels on every path this CPU can run, against the same
/// sums in double precision within 1e-5 of Σ|terms| (fp32 rounding): head sizes of one and two
/// vectors, of more than the eight accumulators the weighted sum holds at once (128), and one
/// that is not a multiple of the vector width (12, the portable path); position counts below,
/// at and past a block of eight; keys and values strided as in a KV cache with several heads.
@Test(arguments: [8, 16, 64, 128, 12], [1, 7, 8, 37])
func headAttentionKernelsMatchTheirSums(headDim hd: Int, positions n: Int) {
    var rng = SplitMix(seed: UInt64(hd * 100 + n))
    func value() -> Float { Float(rng.next() % 20001) / 10000 - 1 }
    let stride = 3 * hd + 4, scale: Float = 0.125
    let q = (0..<hd).map { _ in value() }
    let keys = (0..<(n * stride)).map { _ in value() }
    let values = (0..<(n * stride)).map { _ in value() }
    let p = (0..<n).map { _ in abs(value()) }
    for isa in KernelISA.runnable {
        var s = [Float](repeating: .nan, count: n), out = [Float](repeating: .nan, count: hd)
        HeadAttention.scores(q: q, headDim: hd, keys: keys, stride: stride, count: n, scale: scale, into: &s, isa: isa)
        HeadAttention.mix(p, headDim: hd, values: values, stride: stride, count: n, into: &out, isa: isa)
        for j in 0..<n {
            let terms = (0..<hd).map { Double(q[$0]) * Double(keys[j * stride + $0]) * Double(scale) }
            let exact = terms.reduce(0, +), magnitude = terms.reduce(0) { $0 + abs($1) }
            #expect(abs(Double(s[j]) - exact) <= 1e-5 * magnitude, "\(isa) score \(j): \(s[j]) vs \(exact)")
        }
        for d in 0..<hd {
            let terms = (0..<n).map { Double(p[$0]) * Double(values[$0 * stride + d]) }
            let exact = terms.reduce(0, +), magnitude = terms.reduce(0) { $0 + abs($1) }
            #expect(abs(Double(out[d]) - exact) <= 1e-5 * magnitude, "\(isa) output \(d): \(out[d]) vs \(exact)")
        }
    }
}
