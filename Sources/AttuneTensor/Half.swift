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
