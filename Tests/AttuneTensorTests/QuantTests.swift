import Foundation
import Testing
@testable import AttuneTensor

private struct GoldenCase: Decodable {
    let format: String
    let bytes: [UInt8]
    let values: [Double]
}

private struct GoldenFile: Decodable { let cases: [GoldenCase] }

private func goldenCases() throws -> [GoldenCase] {
    let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Golden/quant_golden.json")
    return try JSONDecoder().decode(GoldenFile.self, from: Data(contentsOf: url)).cases
}

private func randomFloats(_ n: Int, seed: UInt64, scale: Float = 1) -> [Float] {
    var rng = SplitMix(seed: seed)
    return (0..<n).map { _ in (Float(rng.next() % 20001) / 10000 - 1) * scale }
}

/// A tiny deterministic generator for test data.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Dequantization agrees with the `gguf` Python package on random blocks of every format
/// (exact up to fp32 rounding of d·q ± m: tolerance 1e-6 relative).
@Test(arguments: ["F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q4_K", "Q6_K"])
func dequantizeMatchesReference(format: String) throws {
    let c = try #require(try goldenCases().first { $0.format == format })
    let f = try #require(QuantFormat(name: format))
    var out = [Float](repeating: .nan, count: c.values.count)
    c.bytes.withUnsafeBytes { raw in
        out.withUnsafeMutableBufferPointer { Dequantize.row(f, raw.baseAddress!, $0.baseAddress!, count: c.values.count) }
    }
    for (a, b) in zip(out, c.values) {
        #expect(abs(Double(a) - b) <= 1e-6 * max(1, abs(b)), "\(format): \(a) vs \(b)")
    }
}

/// quantize → dequantize stays within each format's rounding error: half a quantization step
/// per element (plus the f16 rounding of the block scale).
@Test(arguments: [QuantFormat.q8_0, .q4_0, .q4_1, .f16, .bf16, .f32])
func quantizeRoundTripWithinFormatError(format: QuantFormat) {
    let n = 1024
    let x = randomFloats(n, seed: 42, scale: 3)
    var bytes = [UInt8](repeating: 0, count: format.byteCount(elements: n)!)
    var back = [Float](repeating: 0, count: n)
    x.withUnsafeBufferPointer { src in
        bytes.withUnsafeMutableBytes { Quantize.row(format, src.baseAddress!, $0.baseAddress!, count: n) }
    }
    bytes.withUnsafeBytes { raw in
        back.withUnsafeMutableBufferPointer { Dequantize.row(format, raw.baseAddress!, $0.baseAddress!, count: n) }
    }
    for b in stride(from: 0, to: n, by: 32) {
        let block = x[b..<b + 32]
        let lo = block.min()!, hi = block.max()!, amax = block.map(abs).max()!
        let bound: Float
        switch format {
        case .q8_0: bound = amax / 127 * 0.5 + amax * 1e-3
        case .q4_0: bound = amax / 8 * 1.0 + amax * 1e-3
        case .q4_1: bound = (hi - lo) / 15 * 0.5 + (hi - lo) * 2e-3 + 1e-3
        case .f16: bound = amax * 1e-3
        case .bf16: bound = amax * 8e-3
        default: bound = 0
        }
        for i in b..<b + 32 {
            #expect(abs(back[i] - x[i]) <= bound, "\(format.name) element \(i): \(x[i]) → \(back[i]), bound \(bound)")
        }
    }
}

/// The decode kernels compute the same product as dequantize-then-dot in double precision
/// (relative tolerance 1e-4 of Σ|w·x|).
@Test(arguments: [QuantFormat.q4_1, .q8_0, .f32, .q4_0, .f16])
func matVecMatchesDequantizedProduct(format: QuantFormat) {
    let rows = 97, cols = 256
    let w = randomFloats(rows * cols, seed: 1)
    let x = randomFloats(cols, seed: 2)
    let rowBytes = format.byteCount(elements: cols)!
    var q = [UInt8](repeating: 0, count: rows * rowBytes)
    w.withUnsafeBufferPointer { src in
        q.withUnsafeMutableBytes { dst in
            for r in 0..<rows { Quantize.row(format, src.baseAddress! + r * cols, dst.baseAddress! + r * rowBytes, count: cols) }
        }
    }
    var y = [Float](repeating: 0, count: rows)
    var deq = [Float](repeating: 0, count: cols)
    q.withUnsafeBytes { raw in
        x.withUnsafeBufferPointer { xp in
            y.withUnsafeMutableBufferPointer {
                MatVec.multiply(format, weights: raw.baseAddress!, rows: rows, cols: cols, x: xp.baseAddress!, y: $0.baseAddress!)
            }
        }
        for r in 0..<rows {
            deq.withUnsafeMutableBufferPointer { Dequantize.row(format, raw.baseAddress! + r * rowBytes, $0.baseAddress!, count: cols) }
            var exact = 0.0, magnitude = 0.0
            for c in 0..<cols {
                exact += Double(deq[c]) * Double(x[c])
                magnitude += abs(Double(deq[c]) * Double(x[c]))
            }
            #expect(abs(Double(y[r]) - exact) <= 1e-4 * magnitude + 1e-6, "row \(r): \(y[r]) vs \(exact)")
        }
    }
}

@Test func byteCountRejectsPartialBlocks() {
    #expect(QuantFormat.q4_1.byteCount(elements: 64) == 40)
    #expect(QuantFormat.q4_1.byteCount(elements: 33) == nil)
    #expect(QuantFormat.q6_K.byteCount(elements: 512) == 420)
    #expect(QuantFormat.f32.byteCount(elements: Int.max / 2) == nil)
}
