import CAttuneKernels

/// One attention head's share of a decode step over its cached positions: vector kernels for
/// the scores and the weighted sum of values (`attention_decode.c`), over fp32 caches and over
/// half-precision ones (IEEE half bits, widened in registers).
public enum HeadAttention {
    /// `scores[j] = scale · q · keys[j]` for `count` positions, key j at `keys + j·stride`.
    public static func scores(q: UnsafePointer<Float>, headDim: Int, keys: UnsafePointer<Float>, stride: Int, count: Int,
                              scale: Float, into scores: UnsafeMutablePointer<Float>, isa: KernelISA = .active) {
        attune_attention_scores(isa.c, q, headDim, keys, stride, count, scale, scores)
    }

    /// `out = Σ_j p[j] · values[j]` over `count` positions, value j at `values + j·stride`.
    public static func mix(_ p: UnsafePointer<Float>, headDim: Int, values: UnsafePointer<Float>, stride: Int, count: Int,
                           into out: UnsafeMutablePointer<Float>, isa: KernelISA = .active) {
        attune_attention_mix(isa.c, p, headDim, values, stride, count, out)
    }

    /// `scores` over keys stored as IEEE half bits.
    public static func scores(q: UnsafePointer<Float>, headDim: Int, halfKeys keys: UnsafePointer<UInt16>, stride: Int,
                              count: Int, scale: Float, into scores: UnsafeMutablePointer<Float>, isa: KernelISA = .active) {
        attune_attention_scores_f16(isa.c, q, headDim, keys, stride, count, scale, scores)
    }

    /// `mix` over values stored as IEEE half bits.
    public static func mix(_ p: UnsafePointer<Float>, headDim: Int, halfValues values: UnsafePointer<UInt16>, stride: Int,
                           count: Int, into out: UnsafeMutablePointer<Float>, isa: KernelISA = .active) {
        attune_attention_mix_f16(isa.c, p, headDim, values, stride, count, out)
    }
}
