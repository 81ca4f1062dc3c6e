/// y = W·x for a row-major weight matrix W (rows × cols) kept in its storage format.
///
/// Decode is memory-bound: these kernels read the 4/8-bit blocks directly and dequantize in
/// registers, so a token streams ≈ 98 MB instead of 540 MB of fp32 weights.
public enum MatVec {
    /// `y[r] = Σ_c W[r, c] · x[c]` for r in 0..<rows, on all cores.
    public static func multiply(_ format: QuantFormat, weights: UnsafeRawPointer, rows: Int, cols: Int,
                                x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>) {
        let rowBytes = format.byteCount(elements: cols)!
        let blockSums = UnsafeMutablePointer<Float>.allocate(capacity: cols / 32 + 1)
        defer { blockSums.deallocate() }
        if format == .q4_1 {
            for b in 0..<cols / 32 {
                var s = SIMD8<Float>()
                for g in 0..<4 { s += UnsafeRawPointer(x + 32 * b + 8 * g).loadUnaligned(as: SIMD8<Float>.self) }
                blockSums[b] = s.sum()
            }
        }
        let sums = UnsafePointer(blockSums)
        Parallel.chunks(rows, granule: 4, minPerChunk: 64) { range in
            for r in range {
                let row = weights + r * rowBytes
                switch format {
                case .q4_1: y[r] = dotQ4_1(row, x, sums, blocks: cols / 32)
                case .q8_0: y[r] = dotQ8_0(row, x, blocks: cols / 32)
                case .f32: y[r] = dot(row.assumingMemoryBound(to: Float.self), x, cols)
                default:
                    y[r] = dotGeneric(format, row, x, cols)
                }
            }
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
