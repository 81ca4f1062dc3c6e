import CAttuneKernels

/// Q4_1 and Q8_0 matrices with their rows interleaved in groups of eight, the layout quantized
/// decode reads (`MatVec.Product.interleaved`): per group and block, the eight rows' scales
/// (and Q4_1 offsets) and weight bytes side by side, so one vector instruction serves eight rows.
public enum InterleavedRows {
    /// Rows per group: an interleaved matrix has a multiple of it.
    public static let group = Int(ATTUNE_GROUP_ROWS)

    /// Whether a matrix of `rows` rows in `format` can be interleaved.
    public static func supports(_ format: QuantFormat, rows: Int) -> Bool {
        MatVec.hasBlockKernels(format) && rows % group == 0
    }

    /// Rewrites `rows` rows of `blocks` blocks at `src` into `dst` (as many bytes).
    public static func interleave(_ format: QuantFormat, _ src: UnsafeRawPointer, blocks: Int, rows: Int,
                                  into dst: UnsafeMutableRawPointer) {
        precondition(supports(format, rows: rows), "only Q4_1 and Q8_0 rows interleave, in whole groups of \(group)")
        if format == .q4_1 {
            attune_interleave_q4_1(src, blocks, rows, dst)
        } else {
            attune_interleave_q8_0(src, blocks, rows, dst)
        }
    }

    /// Rows `range` of an interleaved matrix as fp32, row after row at `dst` (32·blocks each):
    /// the values `Dequantize.row` gives for the plain blocks.
    public static func dequantize(_ format: QuantFormat, _ w: UnsafeRawPointer, blocks: Int, rows range: Range<Int>,
                                  into dst: UnsafeMutablePointer<Float>, isa: KernelISA = .active) {
        if format == .q4_1 {
            attune_dequantize_q4_1x8(isa.c, w, blocks, range.lowerBound, range.upperBound, dst)
        } else {
            attune_dequantize_q8_0x8(isa.c, w, blocks, range.lowerBound, range.upperBound, dst)
        }
    }
}
