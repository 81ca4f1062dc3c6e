import AttuneGGUF
import AttuneTensor

/// How the frozen base weights are held in memory.
public enum WeightMode: String, Sendable, CaseIterable {
    /// Weights stay 4/8-bit: memory-mapped, and Q4_1/Q8_0 matrices copied once at load with their
    /// rows interleaved in groups of eight (the file's pages are then released). Decode steps
    /// multiply them with activations quantized to 8 bits (integer kernels, as llama.cpp);
    /// prefill (unless `PromptActivations.int8`) and training dequantize one matrix at a time
    /// into a scratch buffer for sgemm.
    case quantized
    /// Every matrix is also kept as fp32 (≈ 4 bytes/parameter) for the fastest batched work
    /// (sgemm), and every product runs in fp32: decode widens the stored blocks in registers,
    /// so decode and prefill differ only by rounding.
    case dense
}

/// How quantized mode multiplies prompt rows (a sequence's tokens after the first in one step)
/// by the stored 4/8-bit weights.
public enum PromptActivations: String, Sendable, CaseIterable {
    /// sgemm on the weights dequantized to fp32: prompts are computed in fp32, as in dense mode.
    case fp32
    /// The decode kernels for every row: activations quantized to 8 bits per 32-element block
    /// and integer dot products (llama.cpp's Q4 × Q8 arithmetic, for prompts too). Faster
    /// prompts; their logits move by the decode path's activation rounding.
    case int8
}

/// A frozen row-major weight matrix (rows = output features) in its storage format, with an
/// optional fp32 copy.
public final class WeightMatrix: @unchecked Sendable {
    public let name: String
    public let format: QuantFormat
    public let rows: Int
    public let cols: Int
    package let raw: UnsafeRawPointer
    package let rowBytes: Int
    package private(set) var dense: UnsafeMutablePointer<Float>?
    /// The blocks with rows interleaved in groups of eight (`interleave()`), which quantized
    /// decode reads instead of `raw`.
    package private(set) var interleaved: UnsafeRawPointer?
    private let owner: GGUFFile

    init(name: String, tensor: GGUFTensor, file: GGUFFile, expectRows: Int, expectCols: Int) throws {
        guard tensor.shape.count == 2, tensor.rows == expectRows, tensor.cols == expectCols else {
            throw ModelError.badTensor(name, "shape \(tensor.shape), expected [\(expectCols), \(expectRows)]")
        }
        self.name = name
        self.format = tensor.format
        self.rows = expectRows
        self.cols = expectCols
        self.raw = file.bytes(of: tensor)
        self.rowBytes = tensor.format.byteCount(elements: expectCols)!
        self.owner = file
    }

    deinit {
        dense?.deallocate()
        interleaved.map { UnsafeMutableRawPointer(mutating: $0).deallocate() }
    }

    /// Keeps an fp32 copy of the matrix.
    package func makeDense() {
        guard dense == nil else { return }
        let d = UnsafeMutablePointer<Float>.allocate(capacity: rows * cols)
        dequantize(rows: 0..<rows, into: d)
        dense = d
    }

    /// Keeps the Q4_1 or Q8_0 blocks with rows interleaved in groups of eight for quantized decode
    /// (`attune_matmul_q4_1x8_q8`, `attune_matmul_q8_0x8_q8`: a fraction of the row-major
    /// kernels' instructions per block) and releases the file's pages of the row-major blocks, so
    /// memory holds one copy. Other formats, and row counts that are not a multiple of eight,
    /// stay as they are.
    package func interleave() {
        guard InterleavedRows.supports(format, rows: rows), interleaved == nil else { return }
        let group = InterleavedRows.group
        let bytes = rows * rowBytes, blocks = cols / 32, rb = rowBytes, src = raw, f = format
        let dst = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
        Parallel.chunks(rows / group, minPerChunk: 8) { groups in
            let at = groups.lowerBound * group * rb
            InterleavedRows.interleave(f, src + at, blocks: blocks, rows: groups.count * group, into: dst + at)
        }
        interleaved = UnsafeRawPointer(dst)
        owner.releasePages(raw, count: bytes)
    }

    /// Dequantizes a row range into `into` (row-major, `cols` per row), on all cores.
    package func dequantize(rows range: Range<Int>, into: UnsafeMutablePointer<Float>) {
        let c = cols, lo = range.lowerBound
        Parallel.chunks(range.count, minPerChunk: 32) { sub in
            self.dequantizeSerially(rows: (lo + sub.lowerBound)..<(lo + sub.upperBound), into: into + sub.lowerBound * c)
        }
    }

    /// Y_i = X·W_iᵀ for several matrices sharing the input X (m rows × cols). The rows in
    /// `directRows` (sorted, disjoint: decode positions, and short prompts in dense mode) read the
    /// stored 4/8-bit blocks directly, in one fan-out for all matrices: against 8-bit activations in quantized mode; in
    /// dense mode widened to fp32 in registers, or by panels for more than `DenseForms.directMax`
    /// rows. The other rows use sgemm on the fp32 copy or on chunks dequantized into `scratch`.
    /// In dense mode every path computes in fp32, so a row's result differs between them only by
    /// rounding.
    package static func matmul(_ matrices: [WeightMatrix], _ x: UnsafePointer<Float>, m: Int,
                               _ ys: [UnsafeMutablePointer<Float>], scratch: ScratchBuffer, directRows direct: [Range<Int>] = []) {
        let nDirect = direct.reduce(0) { $0 + $1.count }
        if nDirect == 0 {
            for (w, y) in zip(matrices, ys) { w.sgemm(x, m: m, y, scratch: scratch, accumulate: false) }
            return
        }
        if nDirect == m {
            directProducts(matrices, x, m: m, ys)
            return
        }
        let cols = matrices[0].cols
        let fp32Rows = complement(direct, in: m)
        let xd = gather(x, cols, direct), xf = gather(x, cols, fp32Rows)
        defer { xd.deallocate(); xf.deallocate() }
        let yd = matrices.map { UnsafeMutablePointer<Float>.allocate(capacity: nDirect * $0.rows) }
        let yf = matrices.map { UnsafeMutablePointer<Float>.allocate(capacity: (m - nDirect) * $0.rows) }
        defer { (yd + yf).forEach { $0.deallocate() } }
        directProducts(matrices, xd, m: nDirect, yd)
        for (k, w) in matrices.enumerated() {
            w.sgemm(xf, m: m - nDirect, yf[k], scratch: scratch, accumulate: false)
            scatter(yd[k], w.rows, direct, into: ys[k])
            scatter(yf[k], w.rows, fp32Rows, into: ys[k])
        }
    }

    /// Y[m, rows] = X[m, cols] · Wᵀ, as the fused `matmul` for one matrix.
    package func matmul(_ x: UnsafePointer<Float>, m: Int, _ y: UnsafeMutablePointer<Float>, scratch: ScratchBuffer,
                        directRows: [Range<Int>] = []) {
        WeightMatrix.matmul([self], x, m: m, [y], scratch: scratch, directRows: directRows)
    }

    /// Y[m, rows] += X[m, cols] · Wᵀ on sgemm for every row (a residual stream): sgemm adds into
    /// Y itself (β = 1), with no clearing pass over a product buffer and no second pass to add it.
    package func matmulAdding(_ x: UnsafePointer<Float>, m: Int, into y: UnsafeMutablePointer<Float>, scratch: ScratchBuffer) {
        sgemm(x, m: m, y, scratch: scratch, accumulate: true)
    }

    /// One row dequantized (embedding lookup).
    package func row(_ r: Int, into: UnsafeMutablePointer<Float>) {
        dequantizeSerially(rows: r..<(r + 1), into: into)
    }

    /// Rows `range` dequantized on the calling thread, from the interleaved copy when there is one.
    private func dequantizeSerially(rows range: Range<Int>, into: UnsafeMutablePointer<Float>) {
        if let interleaved {
            InterleavedRows.dequantize(format, interleaved, blocks: cols / 32, rows: range, into: into)
        } else {
            for r in range { Dequantize.row(format, raw + r * rowBytes, into + (r - range.lowerBound) * cols, count: cols) }
        }
    }

    private static func directProducts(_ matrices: [WeightMatrix], _ x: UnsafePointer<Float>, m: Int,
                                        _ ys: [UnsafeMutablePointer<Float>]) {
        let quantized = matrices[0].dense == nil
        let products = zip(matrices, ys).map { w, y in
            let grouped = quantized ? w.interleaved : nil
            return MatVec.Product(format: w.format, weights: grouped ?? w.raw, rows: w.rows, cols: w.cols, y: y,
                                  interleaved: grouped != nil)
        }
        if quantized {
            MatVec.multiply(products, x: x, m: m, activations: .int8)
        } else if m > DenseForms.active.directMax {
            MatVec.multiplyPanels(products, x: x, m: m)
        } else {
            MatVec.multiply(products, x: x, m: m, activations: .fp32)
        }
    }

    private func sgemm(_ x: UnsafePointer<Float>, m: Int, _ y: UnsafeMutablePointer<Float>, scratch: ScratchBuffer,
                       accumulate: Bool) {
        guard m > 0 else { return }
        forEachFP32Chunk(scratch) { r0, n, w in
            Blas.linear(x: x, m: m, inFeatures: cols, weight: w, outFeatures: n, y: y + r0, ldy: rows, accumulate: accumulate)
        }
    }

    private static func complement(_ ranges: [Range<Int>], in m: Int) -> [Range<Int>] {
        var out: [Range<Int>] = [], next = 0
        for r in ranges {
            if r.lowerBound > next { out.append(next..<r.lowerBound) }
            next = r.upperBound
        }
        if next < m { out.append(next..<m) }
        return out
    }

    private static func gather(_ x: UnsafePointer<Float>, _ cols: Int, _ ranges: [Range<Int>]) -> UnsafeMutablePointer<Float> {
        let out = UnsafeMutablePointer<Float>.allocate(capacity: max(1, ranges.reduce(0) { $0 + $1.count } * cols))
        var at = 0
        for r in ranges {
            (out + at * cols).update(from: x + r.lowerBound * cols, count: r.count * cols)
            at += r.count
        }
        return out
    }

    private static func scatter(_ y: UnsafePointer<Float>, _ width: Int, _ ranges: [Range<Int>], into: UnsafeMutablePointer<Float>) {
        var at = 0
        for r in ranges {
            (into + r.lowerBound * width).update(from: y + at * width, count: r.count * width)
            at += r.count
        }
    }

    /// dX[m, cols] (+)= dY[m, rows] · W: the input gradient of `matmul` (W stays frozen).
    /// Uses the fp32 copy when present, else dequantizes chunks of rows into `scratch`.
    package func backward(_ dy: UnsafePointer<Float>, m: Int, _ dx: UnsafeMutablePointer<Float>,
                          accumulate: Bool, scratch: ScratchBuffer) {
        forEachFP32Chunk(scratch) { r0, n, w in
            Blas.linearInputGradient(dy: dy + r0, m: m, outFeatures: n, ldy: rows, weight: w,
                                     inFeatures: cols, dx: dx, accumulate: accumulate || r0 > 0)
        }
    }

    /// Calls `body(firstRow, rowCount, weights)` over the matrix as fp32: once with the fp32
    /// copy when present, else chunk by chunk dequantized into `scratch`.
    private func forEachFP32Chunk(_ scratch: ScratchBuffer, _ body: (Int, Int, UnsafePointer<Float>) -> Void) {
        if let dense {
            body(0, rows, dense)
            return
        }
        let chunkRows = max(1, min(rows, scratch.capacity / cols))
        var r0 = 0
        while r0 < rows {
            let n = min(chunkRows, rows - r0)
            dequantize(rows: r0..<(r0 + n), into: scratch.pointer)
            body(r0, n, scratch.pointer)
            r0 += n
        }
    }

    /// Bytes held by this matrix in memory beyond the mapped file.
    var residentBytes: Int { (dense == nil ? 0 : rows * cols * 4) + (interleaved == nil ? 0 : rows * rowBytes) }
}

/// A reusable fp32 scratch area for dequantized weight chunks.
package final class ScratchBuffer: @unchecked Sendable {
    package let pointer: UnsafeMutablePointer<Float>
    package let capacity: Int

    package init(capacity: Int) {
        self.capacity = capacity
        pointer = .allocate(capacity: capacity)
    }

    deinit { pointer.deallocate() }
}
