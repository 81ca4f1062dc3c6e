import CAttuneKernels

/// One attention head's share of a decode step over its cached positions: vector kernels for
/// the scores and the weighted sum of values (`attention_decode.c`).
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
}
