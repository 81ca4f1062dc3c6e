/// fp32 → block quantization for the formats Attune writes (q8_0, q4_0, q4_1, f16, f32), following
/// the GGML reference rounding so files round-trip with other GGUF readers.
public enum Quantize {
    /// Quantizes `count` floats (a multiple of the block size) into `dst`.
    public static func row(_ format: QuantFormat, _ src: UnsafePointer<Float>, _ dst: UnsafeMutableRawPointer, count: Int) {
        switch format {
        case .f32:
            dst.copyMemory(from: src, byteCount: 4 * count)
        case .f16:
            for i in 0..<count { dst.storeBytes(of: floatToHalf(src[i]), toByteOffset: 2 * i, as: UInt16.self) }
        case .bf16:
            for i in 0..<count {
                let bits = src[i].bitPattern
                let rounded = (bits &+ 0x7FFF &+ ((bits >> 16) & 1)) >> 16
                dst.storeBytes(of: UInt16(truncatingIfNeeded: rounded), toByteOffset: 2 * i, as: UInt16.self)
            }
        case .q8_0:
            for b in 0..<count / 32 {
                let x = src + 32 * b
                let blk = dst + 34 * b
                var amax: Float = 0
                for i in 0..<32 { amax = max(amax, abs(x[i])) }
                let d = amax / 127
                let id: Float = d != 0 ? 1 / d : 0
                blk.storeBytes(of: floatToHalf(d), as: UInt16.self)
                for i in 0..<32 {
                    blk.storeBytes(of: Int8((x[i] * id).rounded()), toByteOffset: 2 + i, as: Int8.self)
                }
            }
        case .q4_0:
            for b in 0..<count / 32 {
                let x = src + 32 * b
                let blk = dst + 18 * b
                var amax: Float = 0
                var signedMax: Float = 0
                for i in 0..<32 where abs(x[i]) > amax {
                    amax = abs(x[i])
                    signedMax = x[i]
                }
                let d = signedMax / -8
                let id: Float = d != 0 ? 1 / d : 0
                blk.storeBytes(of: floatToHalf(d), as: UInt16.self)
                for j in 0..<16 {
                    let lo = UInt8(min(15, max(0, x[j] * id + 8.5)))
                    let hi = UInt8(min(15, max(0, x[j + 16] * id + 8.5)))
                    blk.storeBytes(of: lo | hi << 4, toByteOffset: 2 + j, as: UInt8.self)
                }
            }
        case .q4_1:
            for b in 0..<count / 32 {
                let x = src + 32 * b
                let blk = dst + 20 * b
                var lo = Float.infinity
                var hi = -Float.infinity
                for i in 0..<32 {
                    lo = min(lo, x[i])
                    hi = max(hi, x[i])
                }
                let d = (hi - lo) / 15
                let id: Float = d != 0 ? 1 / d : 0
                blk.storeBytes(of: floatToHalf(d), as: UInt16.self)
                blk.storeBytes(of: floatToHalf(lo), toByteOffset: 2, as: UInt16.self)
                for j in 0..<16 {
                    let a = UInt8(min(15, max(0, (x[j] - lo) * id + 0.5)))
                    let c = UInt8(min(15, max(0, (x[j + 16] - lo) * id + 0.5)))
                    blk.storeBytes(of: a | c << 4, toByteOffset: 4 + j, as: UInt8.self)
                }
            }
        case .q4_K, .q6_K:
            preconditionFailure("\(format.name) is read-only in Attune")
        }
    }

    /// Whether `row(_:_:_:count:)` can write this format.
    public static func canWrite(_ format: QuantFormat) -> Bool {
        format != .q4_K && format != .q6_K
    }
}
