import CAttuneKernels

/// Q4_1 matrices with their rows interleaved in groups of eight, the layout quantized decode
/// reads (`MatVec.Product.interleaved`): per group and block, the eight rows' scales, offsets and
/// nibbles side by side, so one vector instruction serves eight rows.
public enum InterleavedQ4_1 {
    /// Rows per group: an interleaved matrix has a multiple of it.
    public static let group = Int(ATTUNE_Q4_1_GROUP)

    /// Rewrites `rows` rows of `blocks` Q4_1 blocks at `src` into `dst` (as many bytes).
    public static func interleave(_ src: UnsafeRawPointer, blocks: Int, rows: Int, into dst: UnsafeMutableRawPointer) {
        precondition(rows % group == 0, "Q4_1 rows interleave in whole groups of \(group)")
        attune_interleave_q4_1(src, blocks, rows, dst)
    }

    /// Row `r` of an interleaved matrix as `blocks` plain Q4_1 blocks at `dst`.
    public static func row(_ w: UnsafeRawPointer, blocks: Int, _ r: Int, into dst: UnsafeMutableRawPointer) {
        attune_interleaved_q4_1_row(w, blocks, r, dst)
    }
}
