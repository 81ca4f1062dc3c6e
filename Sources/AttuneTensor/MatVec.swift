import CAttuneKernels

/// y = W·x for a row-major weight matrix W (rows × cols) kept in its storage format.
///
/// Decode is memory-bound: these kernels read the 4/8-bit blocks directly (integer dot
/// products against the 8-bit quantized input, in `CAttuneKernels`), so a token streams
/// ≈ 98 MB instead of 540 MB of fp32 weights.
public enum MatVec {
    /// One matrix of a fused product: W (rows × cols, in `format`) and its output, m rows of
    /// `rows` values (row i at y + i·rows).
    public struct Product {
        public let format: QuantFormat
        public let weights: UnsafeRawPointer
        public let rows: Int
        public let cols: Int
        public let y: UnsafeMutablePointer<Float>
        /// Q4_1 or Q8_0 rows interleaved in groups of eight (`InterleavedRows`): read only by the
        /// 8-bit activation kernels.
        public let interleaved: Bool

        public init(format: QuantFormat, weights: UnsafeRawPointer, rows: Int, cols: Int, y: UnsafeMutablePointer<Float>,
                    interleaved: Bool = false) {
            precondition(!interleaved || InterleavedRows.supports(format, rows: rows),
                         "only Q4_1 and Q8_0 matrices with whole groups of rows are interleaved")
            self.format = format
            self.weights = weights
            self.rows = rows
            self.cols = cols
            self.y = y
            self.interleaved = interleaved
        }
    }

    /// `y[r] = Σ_c W[r, c] · x[c]` for r in 0..<rows, on all cores.
    public static func multiply(_ format: QuantFormat, weights: UnsafeRawPointer, rows: Int, cols: Int,
                                x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>) {
        multiply([Product(format: format, weights: weights, rows: rows, cols: cols, y: y)], x: x)
    }

    /// How the 4/8-bit kernels take their input.
    public enum Activations: Sendable {
        /// Quantized to 8 bits per 32-element block, integer dot products (as llama.cpp's
        /// Q4 × Q8; error bound in `QuantizedRows`).
        case int8
        /// Kept in fp32; the weight blocks are widened to fp32 in registers.
        case fp32
    }

    /// Several products of the same m input rows (q/k/v, gate/up) in one fan-out: the output
    /// features of all matrices are split evenly across the workers (in whole groups of
    /// interleaved rows), so they synchronize once, and each weight row is read once for all m
    /// inputs. An output is computed the same way whatever m is.
    public static func multiply(_ products: [Product], x: UnsafePointer<Float>, m: Int = 1,
                                activations: Activations = .int8, isa: KernelISA = .active) {
        let cols = products[0].cols
        precondition(products.allSatisfy { $0.cols == cols }, "fused products share the input")
        let blockFormats = products.contains { hasBlockKernels($0.format) }
        let xq = blockFormats && activations == .int8 ? QuantizedRows(x, rows: m, cols: cols, isa: isa) : nil
        let sums = blockFormats && activations == .fp32 ? BlockSums(x, count: m * cols, isa: isa) : nil
        let total = products.reduce(0) { $0 + $1.rows }
        precondition(activations == .int8 || !products.contains(where: \.interleaved), "interleaved rows take 8-bit activations")
        let body = { (range: Range<Int>) in
            var first = 0
            for p in products {
                let lo = max(range.lowerBound - first, 0), hi = min(range.upperBound - first, p.rows)
                if lo < hi { rowsOf(p, lo..<hi, x, m, xq, sums, isa) }
                first += p.rows
            }
        }
        // One input row (decode of one sequence): two halves, the fewest hand-offs for ~200
        // short calls per token. Several rows (a batched step, a prompt): pieces handed to
        // whichever core is free, so a core slowed by its neighbour does not hold up the other.
        if m == 1 {
            Parallel.chunks(total, granule: InterleavedRows.group, minPerChunk: 64, body)
        } else {
            Parallel.pieces(total, granule: InterleavedRows.group, minPerPiece: 64, body)
        }
    }

    /// Whether the format has the 4/8-bit block kernels: 8-bit and fp32 activations, panels.
    public static func hasBlockKernels(_ format: QuantFormat) -> Bool { format == .q4_1 || format == .q8_0 }

    /// Several products of the same m fp32 input rows in one fan-out, by panels: each group of
    /// weight rows is widened to fp32 once and multiplied with every input row from cache, so the
    /// stored blocks stream from memory once per call and the work is bound by arithmetic, not by
    /// reading an fp32 copy. From `forms.broadcastMin` rows (by default the forms of `isa` on
    /// this CPU) the input is packed column-major once and the tiles broadcast weights
    /// (`attune_panel_gemm`); below, the tiles run along the rows (`attune_panel_gemm_rows`). For
    /// many rows (a large decode batch); formats without panels use the register-widening kernels.
    public static func multiplyPanels(_ products: [Product], x: UnsafePointer<Float>, m: Int, isa: KernelISA = .active,
                                      forms: DenseForms? = nil) {
        let forms = forms ?? DenseForms.forCPU(isa)
        let cols = products[0].cols
        precondition(products.allSatisfy { $0.cols == cols }, "fused products share the input")
        precondition(!products.contains(where: \.interleaved), "panels read row-major blocks")
        var packed: UnsafePointer<Float>?
        if m >= forms.broadcastMin {
            guard let p = attune_panel_pack(m, cols, x) else { fatalError("out of memory packing \(m) × \(cols) floats") }
            packed = p
        }
        let total = products.reduce(0) { $0 + $1.rows }
        Parallel.pieces(total, granule: 24, minPerPiece: 64) { range in
            var first = 0
            for p in products {
                let lo = max(range.lowerBound - first, 0), hi = min(range.upperBound - first, p.rows)
                if lo < hi {
                    if hasBlockKernels(p.format) {
                        let format = p.format == .q4_1 ? ATTUNE_PANEL_Q4_1 : ATTUNE_PANEL_Q8_0
                        if let packed {
                            attune_panel_gemm(isa.c, format, p.weights, p.cols / 32, lo, hi, m, packed, p.y, p.rows)
                        } else {
                            attune_panel_gemm_rows(isa.c, format, p.weights, p.cols / 32, lo, hi, m, x, p.y, p.rows)
                        }
                    } else {
                        rowsOf(p, lo..<hi, x, m, nil, nil, isa)
                    }
                }
                first += p.rows
            }
        }
    }

    @inline(__always)
    static func rowsOf(_ p: Product, _ range: Range<Int>, _ x: UnsafePointer<Float>, _ m: Int, _ xq: QuantizedRows?,
                       _ sums: BlockSums?, _ isa: KernelISA) {
        let rowBytes = p.format.byteCount(elements: p.cols)!
        let blocks = p.cols / 32, lo = range.lowerBound, hi = range.upperBound
        let y = p.y, cols = p.cols
        switch p.format {
        case .q4_1:
            if let xq, p.interleaved {
                attune_matmul_q4_1x8_q8(isa.c, p.weights, blocks, lo, hi, m, xq.q, xq.scales, xq.sums, y, p.rows)
            } else if let xq {
                attune_matmul_q4_1_q8(isa.c, p.weights, blocks, lo, hi, m, xq.q, xq.scales, xq.sums, y, p.rows)
            } else {
                attune_matmul_q4_1_f32(isa.c, p.weights, blocks, lo, hi, m, x, sums!.pointer, y, p.rows)
            }
        case .q8_0:
            if let xq, p.interleaved {
                attune_matmul_q8_0x8_q8(isa.c, p.weights, blocks, lo, hi, m, xq.q, xq.scales, xq.quantizedSums, y, p.rows)
            } else if let xq {
                attune_matmul_q8_0_q8(isa.c, p.weights, blocks, lo, hi, m, xq.q, xq.scales, y, p.rows)
            } else {
                attune_matmul_q8_0_f32(isa.c, p.weights, blocks, lo, hi, m, x, y, p.rows)
            }
        case .f32:
            for r in range {
                let w = (p.weights + r * rowBytes).assumingMemoryBound(to: Float.self)
                for i in 0..<m { y[i * p.rows + r] = dot(w, x + i * cols, cols) }
            }
        default:
            withUnsafeTemporaryAllocation(of: Float.self, capacity: cols) { tmp in
                for r in range {
                    Dequantize.row(p.format, p.weights + r * rowBytes, tmp.baseAddress!, count: cols)
                    for i in 0..<m { y[i * p.rows + r] = dot(tmp.baseAddress!, x + i * cols, cols) }
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
}
