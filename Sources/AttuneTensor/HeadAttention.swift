import CAttuneKernels

/// Rows of an attention cache (keys or values), stored as fp32 or as IEEE half bits.
public enum CachedRows {
    case fp32(UnsafePointer<Float>)
    case half(UnsafePointer<UInt16>)

    /// The rows from element `offset` on.
    public func advanced(by offset: Int) -> CachedRows {
        switch self {
        case .fp32(let p): return .fp32(p + offset)
        case .half(let p): return .half(p + offset)
        }
    }
}

/// One attention head's share of a decode step over its cached positions: vector kernels for
/// the scores and the weighted sum of values (`attention_decode.c`), over fp32 caches and over
/// half-precision ones (widened in registers).
public enum HeadAttention {
    /// `scores[j] = scale · q · keys[j]` for `count` positions, key j at element `j·stride`.
    public static func scores(q: UnsafePointer<Float>, headDim: Int, keys: CachedRows, stride: Int, count: Int,
                              scale: Float, into scores: UnsafeMutablePointer<Float>, isa: KernelISA = .active) {
        switch keys {
        case .fp32(let k): attune_attention_scores(isa.c, q, headDim, k, stride, count, scale, scores)
        case .half(let k): attune_attention_scores_f16(isa.c, q, headDim, k, stride, count, scale, scores)
        }
    }

    /// `out = Σ_j p[j] · values[j]` over `count` positions, value j at element `j·stride`.
    public static func mix(_ p: UnsafePointer<Float>, headDim: Int, values: CachedRows, stride: Int, count: Int,
                           into out: UnsafeMutablePointer<Float>, isa: KernelISA = .active) {
        switch values {
        case .fp32(let v): attune_attention_mix(isa.c, p, headDim, v, stride, count, out)
        case .half(let v): attune_attention_mix_f16(isa.c, p, headDim, v, stride, count, out)
        }
    }
}
