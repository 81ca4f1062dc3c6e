/// Vectorized e^x for eight floats: x = n·ln2 + r with |r| ≤ ln2/2, e^r by its degree-7
/// Taylor polynomial (truncation error < 3e-8 relative), 2^n by exponent bits. Inputs are
/// clamped to [−87.3, 88.3], the range where fp32 e^x is finite and normal.
@inline(__always)
public func exp8(_ input: SIMD8<Float>) -> SIMD8<Float> {
    var x = input
    for k in 0..<8 { x[k] = Swift.min(88.3, Swift.max(-87.3, x[k])) }
    // Adding 1.5·2²³ rounds x·log2(e) to an integer n held in the low mantissa bits of t.
    let t = x * 1.442_695_04 + 12_582_912
    let n = t - 12_582_912
    let r = x - n * 0.693_145_75 - n * 1.428_606_8e-6
    var p = SIMD8<Float>(repeating: 1.0 / 5040)
    p = p * r + 1.0 / 720
    p = p * r + 1.0 / 120
    p = p * r + 1.0 / 24
    p = p * r + 1.0 / 6
    p = p * r + 0.5
    p = p * r + 1
    p = p * r + 1
    let bits = (unsafeBitCast(t, to: SIMD8<Int32>.self) &- 0x4B40_0000 &+ 127) &<< 23
    return p * unsafeBitCast(bits, to: SIMD8<Float>.self)
}
