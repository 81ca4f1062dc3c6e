import AttuneGGUF
import AttuneTensor

/// How the frozen base weights are held in memory.
public enum WeightMode: String, Sendable, CaseIterable {
    /// Weights stay in their 4/8-bit file format (memory-mapped); batched work dequantizes
    /// one matrix at a time into a scratch buffer.
    case quantized
    /// Every matrix is also kept as fp32 for the fastest batched work (≈ 4 bytes/parameter).
    case dense
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
    private let owner: AnyObject

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

    deinit { dense?.deallocate() }

    /// Keeps an fp32 copy of the matrix.
    package func makeDense() {
        guard dense == nil else { return }
        let d = UnsafeMutablePointer<Float>.allocate(capacity: rows * cols)
        dequantize(rows: 0..<rows, into: d)
        dense = d
    }

    /// Dequantizes a row range into `into` (row-major, `cols` per row), on all cores.
    package func dequantize(rows range: Range<Int>, into: UnsafeMutablePointer<Float>) {
        let f = format, c = cols, rb = rowBytes, src = raw, lo = range.lowerBound
        Parallel.chunks(range.count, minPerChunk: 32) { sub in
            for r in sub {
                Dequantize.row(f, src + (lo + r) * rb, into + r * c, count: c)
            }
        }
    }

    /// y = W·x for one input vector, reading the stored (quantized) weights directly.
    package func matvec(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>) {
        MatVec.multiply(format, weights: raw, rows: rows, cols: cols, x: x, y: y)
    }

    /// y_i = W_i·x for several matrices sharing the input, in one fan-out.
    static func matvec(_ matrices: [WeightMatrix], _ x: UnsafePointer<Float>, _ ys: [UnsafeMutablePointer<Float>]) {
        MatVec.multiply(zip(matrices, ys).map { m, y in
            MatVec.Product(format: m.format, weights: m.raw, rows: m.rows, cols: m.cols, y: y)
        }, x: x)
    }

    /// Y_i = X·W_iᵀ for several matrices sharing the input (fused when the batch is one token).
    package static func matmul(_ matrices: [WeightMatrix], _ x: UnsafePointer<Float>, m: Int,
                       _ ys: [UnsafeMutablePointer<Float>], scratch: ScratchBuffer) {
        if m == 1 {
            matvec(matrices, x, ys)
        } else {
            for (w, y) in zip(matrices, ys) { w.matmul(x, m: m, y, scratch: scratch) }
        }
    }

    /// One row dequantized (embedding lookup).
    package func row(_ r: Int, into: UnsafeMutablePointer<Float>) {
        Dequantize.row(format, raw + r * rowBytes, into, count: cols)
    }

    /// Y[m, rows] = X[m, cols] · Wᵀ. Batches of one or two rows run the quantized matrix-vector
    /// kernel; larger ones call sgemm on the fp32 copy or on chunks dequantized into `scratch`.
    package func matmul(_ x: UnsafePointer<Float>, m: Int, _ y: UnsafeMutablePointer<Float>, scratch: ScratchBuffer) {
        if m <= 2 {
            for t in 0..<m { matvec(x + t * cols, y + t * rows) }
            return
        }
        forEachFP32Chunk(scratch) { r0, n, w in
            Blas.linear(x: x, m: m, inFeatures: cols, weight: w, outFeatures: n, y: y + r0, ldy: rows)
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
    var residentBytes: Int { dense == nil ? 0 : rows * cols * 4 }
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
