import Foundation
import Testing
import CAttuneKernels
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

/// Input vectors for the decode kernels: blocks of different magnitudes, one block all zero.
private func kernelInput(_ cols: Int) -> [Float] {
    var x = randomFloats(cols, seed: 2)
    for i in 0..<cols { x[i] *= Float(1 + (i / 32) % 5) }
    for i in 32..<64 { x[i] = 0 }
    return x
}

private func quantizedRows(_ format: QuantFormat, rows: Int, cols: Int) -> [UInt8] {
    let w = randomFloats(rows * cols, seed: 1)
    let rowBytes = format.byteCount(elements: cols)!
    var q = [UInt8](repeating: 0, count: rows * rowBytes)
    w.withUnsafeBufferPointer { src in
        q.withUnsafeMutableBytes { dst in
            for r in 0..<rows { Quantize.row(format, src.baseAddress! + r * cols, dst.baseAddress! + r * rowBytes, count: cols) }
        }
    }
    // Q8_0 files may hold -128, whose magnitude the byte-product kernels take as unsigned 128.
    if format == .q8_0 { for r in 0..<rows { q[r * rowBytes + 2 + 5] = 0x80 } }
    return q
}

/// Every kernel path this CPU can run computes the product dequantize-then-dot computes in
/// double precision, within 1e-5 of Σ|w·x| for fp32 rounding plus, with 8-bit activations, the
/// error of quantizing x (for the 4/8-bit formats: Σ_b scale_b/2 · Σ_{i∈b} |w_i|, see
/// `QuantizedRows`). The 8-bit paths must also match the exact product of the quantized
/// operands within 1e-5 of its magnitude.
@Test(arguments: [QuantFormat.q4_1, .q8_0, .f32, .q4_0, .f16], [MatVec.Activations.int8, .fp32])
func matVecMatchesDequantizedProduct(format: QuantFormat, activations: MatVec.Activations) {
    // 8 and 9 blocks per row: the kernels' tiles take blocks in pairs.
    for cols in [256, 288] { matVecMatchesDequantizedProduct(format: format, activations: activations, cols: cols) }
}

/// The same bounds for Q4_1 and Q8_0 rows interleaved in groups of eight, which the SIMD paths
/// this CPU can run compute to the same bits (they quantize the input the same way, see
/// `activationQuantizationAgreesAcrossPaths`).
@Test(arguments: [QuantFormat.q4_1, .q8_0])
func interleavedMatVecMatchesDequantizedProduct(format: QuantFormat) {
    for cols in [256, 288] {
        let y = matVecMatchesDequantizedProduct(format: format, activations: .int8, cols: cols, interleaved: true)
        for isa in KernelISA.runnable where isa > .avx2 { #expect(y[isa] == y[.avx2], "\(format.name) \(isa), \(cols) columns") }
    }
}

/// Many activation rows through the interleaved kernels (tiles of up to four rows on AVX2,
/// eight with AVX-512, and their remainders) give each row the bits it gets alone, on every
/// path this CPU can run, and the same bits on every SIMD path.
@Test(arguments: [QuantFormat.q4_1, .q8_0])
func interleavedRowsInTilesGetTheBitsTheyGetAlone(format: QuantFormat) {
    let rows = 24, cols = 288, m = 13
    let x = (0..<m).flatMap { r in kernelInput(cols).map { $0 * Float(r % 5 + 1) } }
    let stored = interleaved(quantizedRows(format, rows: rows, cols: cols), format: format, rows: rows, cols: cols)
    var together: [KernelISA: [Float]] = [:]
    for isa in KernelISA.runnable {
        var y = [Float](repeating: .nan, count: m * rows), alone = y
        stored.withUnsafeBytes { w in
            x.withUnsafeBufferPointer { xp in
                y.withUnsafeMutableBufferPointer { yp in
                    MatVec.multiply([MatVec.Product(format: format, weights: w.baseAddress!, rows: rows, cols: cols, y: yp.baseAddress!,
                                                    interleaved: true)], x: xp.baseAddress!, m: m, isa: isa)
                }
                for r in 0..<m {
                    alone.withUnsafeMutableBufferPointer { yp in
                        MatVec.multiply([MatVec.Product(format: format, weights: w.baseAddress!, rows: rows, cols: cols,
                                                        y: yp.baseAddress! + r * rows, interleaved: true)],
                                        x: xp.baseAddress! + r * cols, m: 1, isa: isa)
                    }
                }
            }
        }
        #expect(y == alone, "\(format.name) \(isa)")
        together[isa] = y
    }
    for isa in KernelISA.runnable where isa > .avx2 { #expect(together[isa] == together[.avx2], "\(format.name) \(isa)") }
}

/// Interleaving keeps every row's values: any range of rows read back from the interleaved
/// layout, on every path, is bit for bit what dequantizing the plain blocks gives.
@Test(arguments: [QuantFormat.q4_1, .q8_0])
func interleavedRowsDequantizeAsThePlainBlocks(format: QuantFormat) {
    let rows = 24, cols = 96
    let rowBytes = format.byteCount(elements: cols)!
    let q = quantizedRows(format, rows: rows, cols: cols)
    var plain = [Float](repeating: 0, count: rows * cols)
    q.withUnsafeBytes { raw in
        plain.withUnsafeMutableBufferPointer { out in
            for r in 0..<rows { Dequantize.row(format, raw.baseAddress! + r * rowBytes, out.baseAddress! + r * cols, count: cols) }
        }
    }
    let x8 = interleaved(q, format: format, rows: rows, cols: cols)
    for isa in KernelISA.runnable {
        for range in [0..<rows, 3..<17, 9..<10, 23..<24] {
            var back = [Float](repeating: .nan, count: range.count * cols)
            x8.withUnsafeBytes { w in
                back.withUnsafeMutableBufferPointer {
                    InterleavedRows.dequantize(format, w.baseAddress!, blocks: cols / 32, rows: range, into: $0.baseAddress!, isa: isa)
                }
            }
            #expect(back.map(\.bitPattern) == plain[(range.lowerBound * cols)..<(range.upperBound * cols)].map(\.bitPattern),
                    "\(format.name) \(isa) rows \(range)")
        }
    }
}

private func interleaved(_ q: [UInt8], format: QuantFormat, rows: Int, cols: Int) -> [UInt8] {
    var out = [UInt8](repeating: 0, count: q.count)
    q.withUnsafeBytes { src in
        out.withUnsafeMutableBytes {
            InterleavedRows.interleave(format, src.baseAddress!, blocks: cols / 32, rows: rows, into: $0.baseAddress!)
        }
    }
    return out
}

@discardableResult
private func matVecMatchesDequantizedProduct(format: QuantFormat, activations: MatVec.Activations, cols: Int,
                                             interleaved grouped: Bool = false) -> [KernelISA: [Float]] {
    let rows = grouped ? 96 : 97
    let x = kernelInput(cols)
    let rowBytes = format.byteCount(elements: cols)!
    let q = quantizedRows(format, rows: rows, cols: cols)
    let stored = grouped ? interleaved(q, format: format, rows: rows, cols: cols) : q
    let integer = (format == .q4_1 || format == .q8_0) && activations == .int8
    var outputs: [KernelISA: [Float]] = [:]
    for isa in KernelISA.runnable {
        var y = [Float](repeating: .nan, count: rows)
        var deq = [Float](repeating: 0, count: cols)
        stored.withUnsafeBytes { w in
            x.withUnsafeBufferPointer { xp in
                y.withUnsafeMutableBufferPointer { yp in
                    MatVec.multiply([MatVec.Product(format: format, weights: w.baseAddress!, rows: rows, cols: cols,
                                                    y: yp.baseAddress!, interleaved: grouped)],
                                    x: xp.baseAddress!, activations: activations, isa: isa)
                }
            }
        }
        outputs[isa] = y
        q.withUnsafeBytes { raw in
            x.withUnsafeBufferPointer { xp in
                let xq = QuantizedRows(xp.baseAddress!, rows: 1, cols: cols, isa: isa)
                for r in 0..<rows {
                    deq.withUnsafeMutableBufferPointer { Dequantize.row(format, raw.baseAddress! + r * rowBytes, $0.baseAddress!, count: cols) }
                    var exact = 0.0, magnitude = 0.0, bound = 0.0, onQuantized = 0.0, quantizedMagnitude = 0.0
                    for c in 0..<cols {
                        exact += Double(deq[c]) * Double(x[c])
                        magnitude += abs(Double(deq[c]) * Double(x[c]))
                        let xHat = Double(xq.scales[c / 32]) * Double(xq.q[c])
                        // Q4_1's offset m multiplies the exact block sum of x, not the quantized one.
                        let m = format == .q4_1
                            ? Double(halfToFloat((raw.baseAddress! + r * rowBytes + 20 * (c / 32) + 2).loadUnaligned(as: UInt16.self))) : 0
                        onQuantized += (Double(deq[c]) - m) * xHat + m * Double(x[c])
                        quantizedMagnitude += abs(Double(deq[c]) * xHat)
                        if integer { bound += Double(xq.scales[c / 32]) / 2 * abs(Double(deq[c])) }
                    }
                    #expect(abs(Double(y[r]) - exact) <= bound + 1e-5 * magnitude + 1e-6,
                            "\(format.name) \(isa) row \(r): \(y[r]) vs \(exact), bound \(bound)")
                    if integer {
                        #expect(abs(Double(y[r]) - onQuantized) <= 1e-5 * quantizedMagnitude + 1e-6,
                                "\(format.name) \(isa) row \(r): \(y[r]) vs integer product \(onQuantized)")
                    }
                }
            }
        }
    }
    return outputs
}

/// Quantizing the input to 8 bits is the same on every path (bytes, scales and byte sums exactly,
/// block sums within fp32 rounding), each element within half a step of its value, each byte
/// sum the sum of its block's bytes.
@Test func activationQuantizationAgreesAcrossPaths() {
    let cols = 1536
    let x = kernelInput(cols)
    x.withUnsafeBufferPointer { xp in
        let reference = QuantizedRows(xp.baseAddress!, rows: 1, cols: cols, isa: .scalar)
        for c in 0..<cols {
            let step = reference.scales[c / 32]
            #expect(abs(Float(reference.q[c]) * step - x[c]) <= step / 2 * 1.0001, "element \(c)")
        }
        for b in 0..<cols / 32 {
            #expect(reference.quantizedSums[b] == (0..<32).reduce(0) { $0 + Int32(reference.q[32 * b + $1]) }, "block \(b)")
        }
        for isa in KernelISA.runnable where isa != .scalar {
            let other = QuantizedRows(xp.baseAddress!, rows: 1, cols: cols, isa: isa)
            for c in 0..<cols { #expect(other.q[c] == reference.q[c], "\(isa) element \(c)") }
            for b in 0..<cols / 32 {
                #expect(other.scales[b] == reference.scales[b], "\(isa) block \(b)")
                #expect(other.quantizedSums[b] == reference.quantizedSums[b], "\(isa) block \(b) byte sum")
                #expect(abs(other.sums[b] - reference.sums[b]) <= 1e-5 * 32 * 5, "\(isa) block \(b) sum")
            }
        }
    }
}

/// The kernels are chosen from the CPU's features: a machine with AVX-512 VNNI must not fall
/// back to AVX2, and every machine this runs on has AVX2 (DESIGN.md).
@Test func kernelLevelFollowsTheCPU() throws {
    let flags = try String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)
        .split(separator: "\n").first { $0.hasPrefix("flags") }.map { Set($0.split(separator: " ").map(String.init)) } ?? []
    let vnni = ["avx512f", "avx512bw", "avx512vl", "avx512_vnni"].allSatisfy(flags.contains)
    #expect(KernelISA.detected == (vnni ? .avx512vnni : .avx2))
}

@Test func byteCountRejectsPartialBlocks() {
    #expect(QuantFormat.q4_1.byteCount(elements: 64) == 40)
    #expect(QuantFormat.q4_1.byteCount(elements: 33) == nil)
    #expect(QuantFormat.q6_K.byteCount(elements: 512) == 420)
    #expect(QuantFormat.f32.byteCount(elements: Int.max / 2) == nil)
}

/// Multiplying several input rows at once gives, bit for bit, what each row gives alone: a
/// sequence decodes to the same logits whatever batch it shares a step with.
@Test(arguments: [QuantFormat.q4_1, .q8_0], [MatVec.Activations.int8, .fp32])
func decodeProductIsTheSameInAnyBatch(format: QuantFormat, activations: MatVec.Activations) {
    decodeProductIsTheSameInAnyBatch(format: format, activations: activations, interleaved: false)
}

@Test(arguments: [QuantFormat.q4_1, .q8_0])
func interleavedDecodeProductIsTheSameInAnyBatch(format: QuantFormat) {
    decodeProductIsTheSameInAnyBatch(format: format, activations: .int8, interleaved: true)
}

private func decodeProductIsTheSameInAnyBatch(format: QuantFormat, activations: MatVec.Activations, interleaved grouped: Bool) {
    // 5 blocks per row: the kernels' tiles take blocks in pairs, so the last one is alone.
    let rows = grouped ? 72 : 70, cols = 160, m = 5
    let plain = quantizedRows(format, rows: rows, cols: cols)
    let q = grouped ? interleaved(plain, format: format, rows: rows, cols: cols) : plain
    let x = (0..<m).flatMap { i in randomFloats(cols, seed: 10 + UInt64(i), scale: Float(i + 1)) }
    for isa in KernelISA.runnable {
        var batched = [Float](repeating: .nan, count: m * rows)
        q.withUnsafeBytes { raw in
            x.withUnsafeBufferPointer { xp in
                batched.withUnsafeMutableBufferPointer { yp in
                    MatVec.multiply([MatVec.Product(format: format, weights: raw.baseAddress!, rows: rows, cols: cols,
                                                    y: yp.baseAddress!, interleaved: grouped)], x: xp.baseAddress!, m: m,
                                        activations: activations, isa: isa)
                }
                for i in 0..<m {
                    var alone = [Float](repeating: .nan, count: rows)
                    alone.withUnsafeMutableBufferPointer { yp in
                        MatVec.multiply([MatVec.Product(format: format, weights: raw.baseAddress!, rows: rows, cols: cols,
                                                        y: yp.baseAddress!, interleaved: grouped)], x: xp.baseAddress! + i * cols, m: 1,
                                            activations: activations, isa: isa)
                    }
                    #expect(Array(batched[(i * rows)..<((i + 1) * rows)]) == alone, "\(format.name) \(isa) row \(i)")
                }
            }
        }
    }
}

/// The panel products (many input rows, weights widened once per group of rows) on every
/// path this CPU can run: within 1e-5 of Σ|w·x| of dequantize-then-dot in double precision, on
/// shapes with a partial group of rows, a row length that is not a multiple of the kernel's
/// column block and a row count that is not a multiple of its tile; batches that take both tile
/// forms (broadcast from 24 rows here, whatever this CPU's own `DenseForms`) and every broadcast
/// shape (1 to 4 vectors of 16 rows, more rows than one tile holds).
@Test(arguments: [QuantFormat.q4_1, .q8_0], [6, 13, 29, 37, 45, 70])
func panelProductMatchesDequantizedProduct(format: QuantFormat, m: Int) {
    let rows = 97, cols = 1088
    let rowBytes = format.byteCount(elements: cols)!
    let q = quantizedRows(format, rows: rows, cols: cols)
    let x = (0..<m).flatMap { i in kernelInput(cols).map { $0 * Float(i + 1) } }
    let deq = q.withUnsafeBytes { raw in
        (0..<rows).flatMap { r in
            [Float](unsafeUninitializedCapacity: cols) { buffer, count in
                Dequantize.row(format, raw.baseAddress! + r * rowBytes, buffer.baseAddress!, count: cols)
                count = cols
            }
        }
    }
    for isa in KernelISA.runnable {
        var y = [Float](repeating: .nan, count: m * rows)
        q.withUnsafeBytes { raw in
            y.withUnsafeMutableBufferPointer { yp in
                MatVec.multiplyPanels([MatVec.Product(format: format, weights: raw.baseAddress!, rows: rows, cols: cols,
                                                      y: yp.baseAddress!)], x: x, m: m, isa: isa,
                                      forms: DenseForms(directMax: 2, broadcastMin: 24))
            }
        }
        for i in 0..<m {
            for r in 0..<rows {
                var exact = 0.0, magnitude = 0.0
                for c in 0..<cols {
                    exact += Double(deq[r * cols + c]) * Double(x[i * cols + c])
                    magnitude += abs(Double(deq[r * cols + c]) * Double(x[i * cols + c]))
                }
                #expect(abs(Double(y[i * rows + r]) - exact) <= 1e-5 * magnitude + 1e-6,
                        "\(format.name) \(isa) input \(i) row \(r): \(y[i * rows + r]) vs \(exact)")
            }
        }
    }
}

/// A panel product's element is the same bit for bit whatever the batch (m) and whichever
/// range of weight rows a core was given, in either tile form: a sequence decodes to the same
/// logits in any batch that takes this path.
@Test(arguments: [QuantFormat.q4_1, .q8_0], [false, true])
func panelProductIsTheSameInAnyBatchAndRowRange(format: QuantFormat, broadcast: Bool) {
    let rows = 70, cols = 576, m = 40
    let q = quantizedRows(format, rows: rows, cols: cols)
    let x = (0..<m).flatMap { i in randomFloats(cols, seed: 20 + UInt64(i), scale: Float(i + 1)) }
    let panelFormat = format == .q4_1 ? ATTUNE_PANEL_Q4_1 : ATTUNE_PANEL_Q8_0
    for isa in KernelISA.runnable {
        func product(rows range: Range<Int>, inputs: Range<Int>) -> [Float] {
            var y = [Float](repeating: .nan, count: inputs.count * rows)
            x.withUnsafeBufferPointer { xp in
                let rowsAt = xp.baseAddress! + inputs.lowerBound * cols
                q.withUnsafeBytes { raw in
                    if broadcast {
                        let packed = attune_panel_pack(inputs.count, cols, rowsAt)!
                        attune_panel_gemm(isa.c, panelFormat, raw.baseAddress!, cols / 32, range.lowerBound,
                                          range.upperBound, inputs.count, packed, &y, rows)
                    } else {
                        attune_panel_gemm_rows(isa.c, panelFormat, raw.baseAddress!, cols / 32, range.lowerBound,
                                               range.upperBound, inputs.count, rowsAt, &y, rows)
                    }
                }
            }
            return y
        }
        let all = product(rows: 0..<rows, inputs: 0..<m)
        #expect(!all.contains { $0.isNaN }, "\(isa) broadcast \(broadcast): every element written")
        for i in 0..<m {
            #expect(product(rows: 0..<rows, inputs: i..<(i + 1)) == Array(all[(i * rows)..<((i + 1) * rows)]),
                    "\(format.name) \(isa) broadcast \(broadcast) input \(i) alone")
        }
        for range in [3..<50, 5..<70, 0..<66] {
            let part = product(rows: range, inputs: 2..<7)
            for i in 0..<5 {
                #expect(Array(part[(i * rows + range.lowerBound)..<(i * rows + range.upperBound)])
                        == Array(all[((i + 2) * rows + range.lowerBound)..<((i + 2) * rows + range.upperBound)]),
                        "\(format.name) \(isa) broadcast \(broadcast) rows \(range) input \(i + 2)")
            }
        }
    }
}
