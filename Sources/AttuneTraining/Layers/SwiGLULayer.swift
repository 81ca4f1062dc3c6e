import AttuneTensor
import Foundation

/// h = silu(g) ⊙ u, silu(g) = g·σ(g).
enum SwiGLULayer {
    static func forward(gate: UnsafePointer<Float>, up: UnsafePointer<Float>, h: UnsafeMutablePointer<Float>, count: Int) {
        h.update(from: gate, count: count)
        Ops.swiglu(gate: h, up: up, count: count)
    }

    /// dg = dh ⊙ u ⊙ σ(g)(1 + g(1 − σ(g))), du = dh ⊙ silu(g).
    static func backward(_ dh: UnsafePointer<Float>, gate: UnsafePointer<Float>, up: UnsafePointer<Float>,
                         dGate: UnsafeMutablePointer<Float>, dUp: UnsafeMutablePointer<Float>, count: Int) {
        for i in 0..<count {
            let g = gate[i]
            let sig = 1 / (1 + expf(-g))
            dUp[i] = dh[i] * g * sig
            dGate[i] = dh[i] * up[i] * sig * (1 + g * (1 - sig))
        }
    }
}
