/// Conversion of quantized rows to fp32. `src` must hold `format.byteCount(elements: count)` bytes.
public enum Dequantize {
    public static func row(_ format: QuantFormat, _ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, count: Int) {
        switch format {
        case .f32:
            dst.update(from: src.assumingMemoryBound(to: Float.self), count: count)
        case .f16:
            for i in 0..<count { dst[i] = halfToFloat(src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)) }
        case .bf16:
            for i in 0..<count { dst[i] = bfloat16ToFloat(src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)) }
        case .q8_0: q8_0(src, dst, blocks: count / 32)
        case .q4_0: q4_0(src, dst, blocks: count / 32)
        case .q4_1: q4_1(src, dst, blocks: count / 32)
        case .q4_K: q4_K(src, dst, blocks: count / 256)
        case .q6_K: q6_K(src, dst, blocks: count / 256)
        }
    }

    static func q8_0(_ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, blocks: Int) {
        for b in 0..<blocks {
            let blk = src + b * 34
            let d = SIMD8<Float>(repeating: halfToFloat(blk.loadUnaligned(as: UInt16.self)))
            let out = UnsafeMutableRawPointer(dst + b * 32)
            for g in 0..<4 {
                let q = blk.loadUnaligned(fromByteOffset: 2 + 8 * g, as: SIMD8<Int8>.self)
                out.storeBytes(of: SIMD8<Float>(SIMD8<Int32>(truncatingIfNeeded: q)) * d, toByteOffset: 32 * g, as: SIMD8<Float>.self)
            }
        }
    }

    static func q4_0(_ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, blocks: Int) {
        for b in 0..<blocks {
            let blk = src + b * 18
            let d = SIMD8<Float>(repeating: halfToFloat(blk.loadUnaligned(as: UInt16.self)))
            let eight = SIMD8<Float>(repeating: 8)
            let out = UnsafeMutableRawPointer(dst + b * 32)
            for g in 0..<2 {
                let (lo, hi) = nibbles(blk.loadUnaligned(fromByteOffset: 2 + 8 * g, as: SIMD8<UInt8>.self))
                out.storeBytes(of: (lo - eight) * d, toByteOffset: 32 * g, as: SIMD8<Float>.self)
                out.storeBytes(of: (hi - eight) * d, toByteOffset: 64 + 32 * g, as: SIMD8<Float>.self)
            }
        }
    }

    static func q4_1(_ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, blocks: Int) {
        for b in 0..<blocks {
            let blk = src + b * 20
            let d = SIMD8<Float>(repeating: halfToFloat(blk.loadUnaligned(as: UInt16.self)))
            let m = SIMD8<Float>(repeating: halfToFloat(blk.loadUnaligned(fromByteOffset: 2, as: UInt16.self)))
            let out = UnsafeMutableRawPointer(dst + b * 32)
            for g in 0..<2 {
                let (lo, hi) = nibbles(blk.loadUnaligned(fromByteOffset: 4 + 8 * g, as: SIMD8<UInt8>.self))
                out.storeBytes(of: lo * d + m, toByteOffset: 32 * g, as: SIMD8<Float>.self)
                out.storeBytes(of: hi * d + m, toByteOffset: 64 + 32 * g, as: SIMD8<Float>.self)
            }
        }
    }

    /// The 6-bit scale and min of sub-block `j` (0..<8) of a q4_K super-block.
    @inline(__always)
    static func q4KScaleMin(_ s: UnsafeRawPointer, _ j: Int) -> (Float, Float) {
        let b = { (i: Int) in UInt32(s.load(fromByteOffset: i, as: UInt8.self)) }
        if j < 4 {
            return (Float(b(j) & 63), Float(b(j + 4) & 63))
        }
        let sc = (b(j + 4) & 0x0F) | ((b(j - 4) >> 6) << 4)
        let mn = (b(j + 4) >> 4) | ((b(j) >> 6) << 4)
        return (Float(sc), Float(mn))
    }

    static func q4_K(_ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, blocks: Int) {
        for b in 0..<blocks {
            let blk = src + b * 144
            let d = halfToFloat(blk.loadUnaligned(as: UInt16.self))
            let dmin = halfToFloat(blk.loadUnaligned(fromByteOffset: 2, as: UInt16.self))
            let scales = blk + 4
            let qs = blk + 16
            var out = dst + b * 256
            for pair in 0..<4 {
                let (s1, m1) = q4KScaleMin(scales, 2 * pair)
                let (s2, m2) = q4KScaleMin(scales, 2 * pair + 1)
                let q = qs + 32 * pair
                for l in 0..<32 { out[l] = d * s1 * Float(q.load(fromByteOffset: l, as: UInt8.self) & 0x0F) - dmin * m1 }
                for l in 0..<32 { out[32 + l] = d * s2 * Float(q.load(fromByteOffset: l, as: UInt8.self) >> 4) - dmin * m2 }
                out += 64
            }
        }
    }

    static func q6_K(_ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, blocks: Int) {
        for b in 0..<blocks {
            let blk = src + b * 210
            let d = halfToFloat(blk.loadUnaligned(fromByteOffset: 208, as: UInt16.self))
            for half in 0..<2 {
                let ql = blk + 64 * half
                let qh = blk + 128 + 32 * half
                let sc = blk + 192 + 8 * half
                let out = dst + b * 256 + 128 * half
                for l in 0..<32 {
                    let sub = l / 16
                    let lA = Int32(ql.load(fromByteOffset: l, as: UInt8.self))
                    let lB = Int32(ql.load(fromByteOffset: l + 32, as: UInt8.self))
                    let h = Int32(qh.load(fromByteOffset: l, as: UInt8.self))
                    let q1 = ((lA & 0xF) | ((h >> 0) & 3) << 4) - 32
                    let q2 = ((lB & 0xF) | ((h >> 2) & 3) << 4) - 32
                    let q3 = ((lA >> 4) | ((h >> 4) & 3) << 4) - 32
                    let q4 = ((lB >> 4) | ((h >> 6) & 3) << 4) - 32
                    let s = { (i: Int) in Float(sc.load(fromByteOffset: sub + i, as: Int8.self)) }
                    out[l] = d * s(0) * Float(q1)
                    out[l + 32] = d * s(2) * Float(q2)
                    out[l + 64] = d * s(4) * Float(q3)
                    out[l + 96] = d * s(6) * Float(q4)
                }
            }
        }
    }
}

/// Splits 8 bytes of packed nibbles into the low and high nibbles as floats.
@inline(__always)
func nibbles(_ q: SIMD8<UInt8>) -> (SIMD8<Float>, SIMD8<Float>) {
    let lo = SIMD8<Int32>(truncatingIfNeeded: q & 0x0F)
    let hi = SIMD8<Int32>(truncatingIfNeeded: q &>> 4)
    return (SIMD8<Float>(lo), SIMD8<Float>(hi))
}
