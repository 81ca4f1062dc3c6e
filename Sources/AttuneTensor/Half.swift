import CAttuneKernels

/// IEEE half and bfloat16 → Float conversions used by the GGUF dequantizers.
@inlinable
public func halfToFloat(_ bits: UInt16) -> Float {
    Float(Float16(bitPattern: bits))
}

@inlinable
public func bfloat16ToFloat(_ bits: UInt16) -> Float {
    Float(bitPattern: UInt32(bits) << 16)
}

@inlinable
public func floatToHalf(_ x: Float) -> UInt16 {
    Float16(x).bitPattern
}

/// Bulk fp32 ↔ IEEE half conversions (F16C where the CPU has it), the same bits on every path:
/// rounded to nearest even, infinity past the largest half.
public enum HalfConversion {
    /// `h[i] = half(x[i])` for `count` values.
    public static func narrow(_ x: UnsafePointer<Float>, into h: UnsafeMutablePointer<UInt16>, count: Int,
                              isa: KernelISA = .active) {
        attune_f32_to_f16(isa.c, x, h, count)
    }

    /// `x[i] = Float(h[i])` for `count` values (exact).
    public static func widen(_ h: UnsafePointer<UInt16>, into x: UnsafeMutablePointer<Float>, count: Int,
                             isa: KernelISA = .active) {
        attune_f16_to_f32(isa.c, h, x, count)
    }
}
