import AttuneTensor
import Foundation

/// h = silu(g) ⊙ u, silu(g) = g·σ(g). Both directions split the elements across the cores in
/// whole vectors (forward through `Ops.swiglu`), so each element takes the same path in any split.
enum SwiGLULayer {
    static func forward(gate: UnsafePointer<Float>, up: UnsafePointer<Float>, h: UnsafeMutablePointer<Float>, count: Int) {
        h.update(from: gate, count: count)
        Ops.swiglu(gate: h, up: up, count: count)
    }

    /// dg = dh ⊙ u ⊙ σ(g)(1 + g(1 − σ(g))), du = dh ⊙ silu(g).
    static func backward(_ dh: UnsafePointer<Float>, gate: UnsafePointer<Float>, up: UnsafePointer<Float>,
                         dGate: UnsafeMutablePointer<Float>, dUp: UnsafeMutablePointer<Float>, count: Int) {
        Parallel.chunks(count, granule: 8, minPerChunk: 16384) { r in
            let o = r.lowerBound
            backwardSerially(dh + o, gate: gate + o, up: up + o, dGate: dGate + o, dUp: dUp + o, count: r.count)
        }
    }

    private static func backwardSerially(_ dh: UnsafePointer<Float>, gate: UnsafePointer<Float>, up: UnsafePointer<Float>,
                                         dGate: UnsafeMutablePointer<Float>, dUp: UnsafeMutablePointer<Float>, count: Int) {
        var i = 0
        let rdh = UnsafeRawPointer(dh), rg = UnsafeRawPointer(gate), ru = UnsafeRawPointer(up)
        let rdg = UnsafeMutableRawPointer(dGate), rdu = UnsafeMutableRawPointer(dUp)
        while i + 8 <= count {
            let g = rg.loadUnaligned(fromByteOffset: 4 * i, as: SIMD8<Float>.self)
            let d = rdh.loadUnaligned(fromByteOffset: 4 * i, as: SIMD8<Float>.self)
            let u = ru.loadUnaligned(fromByteOffset: 4 * i, as: SIMD8<Float>.self)
            let sig = 1 / (1 + exp8(-g))
            rdu.storeBytes(of: d * g * sig, toByteOffset: 4 * i, as: SIMD8<Float>.self)
            rdg.storeBytes(of: d * u * sig * (1 + g * (1 - sig)), toByteOffset: 4 * i, as: SIMD8<Float>.self)
            i += 8
        }
        while i < count {
            let g = gate[i]
            let sig = 1 / (1 + expf(-g))
            dUp[i] = dh[i] * g * sig
            dGate[i] = dh[i] * up[i] * sig * (1 + g * (1 - sig))
            i += 1
        }
    }
}
