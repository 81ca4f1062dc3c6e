import Foundation
import Testing
@testable import AttuneTensor

/// RoPE on adjacent pairs equals multiplying each pair, read as a complex number, by e^{iθ}.
@Test func ropeRotatesAdjacentPairs() {
    let headDim = 8, heads = 2, pos = 5
    let table = RopeTable(headDim: headDim, maxPositions: 16, base: 10000)
    var x: [Float] = (0..<(heads * headDim)).map { Float($0) * 0.1 - 0.7 }
    let original = x
    x.withUnsafeMutableBufferPointer { Ops.rope($0.baseAddress!, heads: heads, headDim: headDim, pos: pos, table: table) }
    for h in 0..<heads {
        for i in 0..<(headDim / 2) {
            let theta = Double(pos) * pow(10000, -2 * Double(i) / Double(headDim))
            let a = Double(original[h * headDim + 2 * i]), b = Double(original[h * headDim + 2 * i + 1])
            #expect(abs(Double(x[h * headDim + 2 * i]) - (a * cos(theta) - b * sin(theta))) < 1e-5)
            #expect(abs(Double(x[h * headDim + 2 * i + 1]) - (a * sin(theta) + b * cos(theta))) < 1e-5)
        }
    }
}

@Test func softmaxAndLogSoftmaxAgree() {
    var x: [Float] = [1000, 999, -5, 0, 3]
    var ls = [Float](repeating: 0, count: 5)
    x.withUnsafeBufferPointer { p in ls.withUnsafeMutableBufferPointer { Ops.logSoftmax(p.baseAddress!, 5, out: $0.baseAddress!) } }
    x.withUnsafeMutableBufferPointer { Ops.softmax($0.baseAddress!, 5) }
    #expect(abs(x.reduce(0, +) - 1) < 1e-6)
    for i in 0..<5 { #expect(abs(exp(ls[i]) - x[i]) <= 1e-5 * x[i] + 1e-7) }
    #expect(x[0] > x[1] && x[1] > x[4])
}

@Test func rmsNormScalesToUnitRMS() {
    let x: [Float] = [3, -4, 0, 5]
    let w: [Float] = [1, 1, 2, 1]
    var out = [Float](repeating: 0, count: 4)
    x.withUnsafeBufferPointer { xp in
        w.withUnsafeBufferPointer { wp in
            out.withUnsafeMutableBufferPointer { Ops.rmsNorm(xp.baseAddress!, weight: wp.baseAddress!, out: $0.baseAddress!, rows: 1, n: 4, eps: 0) }
        }
    }
    let rms = (Float(9 + 16 + 25) / 4).squareRoot()
    #expect(abs(out[0] - 3 / rms) < 1e-6 && abs(out[1] + 4 / rms) < 1e-6 && abs(out[3] - 5 / rms) < 1e-6)
}

@Test func sgemmLinearMatchesNaiveProduct() {
    let m = 3, k = 5, n = 4
    let x: [Float] = (0..<(m * k)).map { Float($0 % 7) - 3 }
    let w: [Float] = (0..<(n * k)).map { Float($0 % 5) * 0.5 - 1 }
    var y = [Float](repeating: 0, count: m * n)
    Blas.linear(x: x, m: m, inFeatures: k, weight: w, outFeatures: n, y: &y)
    for i in 0..<m {
        for j in 0..<n {
            let expected = (0..<k).reduce(Float(0)) { $0 + x[i * k + $1] * w[j * k + $1] }
            #expect(abs(y[i * n + j] - expected) < 1e-5)
        }
    }
}

/// exp8 agrees with libm's expf to 4e-7 relative over the range softmax and SiLU use.
@Test func vectorExpMatchesLibm() {
    var worst: Float = 0
    var x: Float = -87
    while x < 88 {
        let v = exp8(SIMD8<Float>((0..<8).map { x + Float($0) * 0.0137 }))
        for k in 0..<8 {
            let ref = Foundation.exp(Double(x + Float(k) * 0.0137))
            worst = max(worst, Float(abs(Double(v[k]) - ref) / ref))
        }
        x += 0.1093
    }
    #expect(worst < 4e-7, "max relative error \(worst)")
    #expect(exp8(SIMD8(repeating: -1000))[0] >= 0)
    #expect(exp8(SIMD8(repeating: 1000))[0].isFinite)
}
