/// y = W·x for a row-major weight matrix W (rows × cols) kept in its storage format.
///
/// Decode is memory-bound: these kernels read the 4/8-bit blocks directly and dequantize in
/// registers, so a token streams ≈ 98 MB instead of 540 MB of fp32 weights.
public enum MatVec {
    /// One matrix of a fused product: W (rows × cols, in `format`) and its output vector.
    public struct Product {
        public let format: QuantFormat
        public let weights: UnsafeRawPointer
        public let rows: Int
        public let cols: Int
        public let y: UnsafeMutablePointer<Float>

        public init(format: QuantFormat, weights: UnsafeRawPointer, rows: Int, cols: Int, y: UnsafeMutablePointer<Float>) {
            self.format = format
            self.weights = weights
            self.rows = rows
            self.cols = cols
            self.y = y
        }
    }

    /// `y[r] = Σ_c W[r, c] · x[c]` for r in 0..<rows, on all cores.
    public static func multiply(_ format: QuantFormat, weights: UnsafeRawPointer, rows: Int, cols: Int,
                                x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>) {
        multiply([Product(format: format, weights: weights, rows: rows, cols: cols, y: y)], x: x)
    }

    /// Several products of the same input vector (q/k/v, gate/up) in one fan-out: the rows of
    /// all matrices are split evenly across the workers, so they synchronize once.
    public static func multiply(_ products: [Product], x: UnsafePointer<Float>) {
        let cols = products[0].cols
        precondition(products.allSatisfy { $0.cols == cols }, "fused products share the input")
        let blockSums = UnsafeMutablePointer<Float>.allocate(capacity: cols / 32 + 1)
        defer { blockSums.deallocate() }
        for b in 0..<cols / 32 {
            var s = SIMD8<Float>()
            for g in 0..<4 { s += UnsafeRawPointer(x + 32 * b + 8 * g).loadUnaligned(as: SIMD8<Float>.self) }
            blockSums[b] = s.sum()
        }
        let sums = UnsafePointer(blockSums)
        let total = products.reduce(0) { $0 + $1.rows }
        Parallel.chunks(total, granule: 4, minPerChunk: 64) { range in
            var first = 0
            for p in products {
                let lo = max(range.lowerBound - first, 0), hi = min(range.upperBound - first, p.rows)
                if lo < hi { rowsOf(p, lo..<hi, x, sums) }
                first += p.rows
            }
        }
    }

    @inline(__always)
    static func rowsOf(_ p: Product, _ range: Range<Int>, _ x: UnsafePointer<Float>, _ sums: UnsafePointer<Float>) {
        let rowBytes = p.format.byteCount(elements: p.cols)!
        let blocks = p.cols / 32
        let y = p.y
        switch p.format {
        case .q4_1:
            for r in range { y[r] = dotQ4_1(p.weights + r * rowBytes, x, sums, blocks: blocks) }
        case .q8_0:
            for r in range { y[r] = dotQ8_0(p.weights + r * rowBytes, x, blocks: blocks) }
        case .f32:
            for r in range { y[r] = dot((p.weights + r * rowBytes).assumingMemoryBound(to: Float.self), x, p.cols) }
        default:
            for r in range { y[r] = dotGeneric(p.format, p.weights + r * rowBytes, x, p.cols) }
        }
    }

    /// Dot product of two fp32 vectors.
    @inline(__always)
    public static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
        var acc0 = SIMD8<Float>()
        var acc1 = SIMD8<Float>()
        var i = 0
        let ra = UnsafeRawPointer(a)
        let rb = UnsafeRawPointer(b)
        while i + 16 <= n {
            acc0.addProduct(ra.loadUnaligned(fromByteOffset: 4 * i, as: SIMD8<Float>.self),
                            rb.loadUnaligned(fromByteOffset: 4 * i, as: SIMD8<Float>.self))
            acc1.addProduct(ra.loadUnaligned(fromByteOffset: 4 * i + 32, as: SIMD8<Float>.self),
                            rb.loadUnaligned(fromByteOffset: 4 * i + 32, as: SIMD8<Float>.self))
            i += 16
        }
        var s = (acc0 + acc1).sum()
        while i < n {
            s += a[i] * b[i]
            i += 1
        }
        return s
    }

    @inline(__always)
    static func dotQ4_1(_ row: UnsafeRawPointer, _ x: UnsafePointer<Float>, _ sums: UnsafePointer<Float>, blocks: Int) -> Float {
        var acc = SIMD8<Float>()
        var mAcc: Float = 0
        let rx = UnsafeRawPointer(x)
        for b in 0..<blocks {
            let blk = row + 20 * b
            let d = halfToFloat(blk.loadUnaligned(as: UInt16.self))
            let m = halfToFloat(blk.loadUnaligned(fromByteOffset: 2, as: UInt16.self))
            let (l0, h0) = nibbles(blk.loadUnaligned(fromByteOffset: 4, as: SIMD8<UInt8>.self))
            let (l1, h1) = nibbles(blk.loadUnaligned(fromByteOffset: 12, as: SIMD8<UInt8>.self))
            let xb = rx + 128 * b
            var t = l0 * xb.loadUnaligned(as: SIMD8<Float>.self)
            t.addProduct(l1, xb.loadUnaligned(fromByteOffset: 32, as: SIMD8<Float>.self))
            t.addProduct(h0, xb.loadUnaligned(fromByteOffset: 64, as: SIMD8<Float>.self))
            t.addProduct(h1, xb.loadUnaligned(fromByteOffset: 96, as: SIMD8<Float>.self))
            acc.addProduct(t, SIMD8<Float>(repeating: d))
            mAcc += m * sums[b]
        }
        return acc.sum() + mAcc
    }

    @inline(__always)
    static func dotQ8_0(_ row: UnsafeRawPointer, _ x: UnsafePointer<Float>, blocks: Int) -> Float {
        var acc = SIMD8<Float>()
        let rx = UnsafeRawPointer(x)
        for b in 0..<blocks {
            let blk = row + 34 * b
            let d = halfToFloat(blk.loadUnaligned(as: UInt16.self))
            let xb = rx + 128 * b
            var t = SIMD8<Float>()
            for g in 0..<4 {
                let q = SIMD8<Float>(SIMD8<Int32>(truncatingIfNeeded: blk.loadUnaligned(fromByteOffset: 2 + 8 * g, as: SIMD8<Int8>.self)))
                t.addProduct(q, xb.loadUnaligned(fromByteOffset: 32 * g, as: SIMD8<Float>.self))
            }
            acc.addProduct(t, SIMD8<Float>(repeating: d))
        }
        return acc.sum()
    }

    /// Fallback for formats without a dedicated kernel: dequantize the row, then dot.
    static func dotGeneric(_ format: QuantFormat, _ row: UnsafeRawPointer, _ x: UnsafePointer<Float>, _ cols: Int) -> Float {
        withUnsafeTemporaryAllocation(of: Float.self, capacity: cols) { tmp in
            Dequantize.row(format, row, tmp.baseAddress!, count: cols)
            return dot(tmp.baseAddress!, x, cols)
        }
    }
}
