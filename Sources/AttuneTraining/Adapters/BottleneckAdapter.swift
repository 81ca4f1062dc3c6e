import AttuneModel
import AttuneTensor
import Foundation

/// Hyperparameters of bottleneck adapter modules (Houlsby-style): after a sublayer's output h,
/// h ← h + W_up·act(W_down·h + b_down) + b_up.
public struct BottleneckConfig: Codable, Sendable, Equatable {
    public enum Placement: String, Codable, Sendable, CaseIterable { case attention, mlp }
    public enum Activation: String, Codable, Sendable, CaseIterable { case relu, silu }

    public var size: Int
    public var placements: [Placement]
    public var activation: Activation

    public init(size: Int = 64, placements: [Placement] = [.attention, .mlp], activation: Activation = .silu) {
        self.size = size
        self.placements = placements
        self.activation = activation
    }

    public func validate() throws {
        guard size > 0, size <= 4096 else { throw TrainingError.invalid("bottleneck size must be in 1…4096") }
        guard !placements.isEmpty else { throw TrainingError.invalid("bottleneck adapters need a placement (attention, mlp)") }
    }
}

/// Bottleneck adapter modules for every layer and placement. W_down is Kaiming-uniform and
/// W_up, b_up zero, so a new adapter is the identity. Parameters live in one flat buffer.
public final class BottleneckAdapter: LinearAdapter, @unchecked Sendable {
    public let config: BottleneckConfig
    public let model: LlamaConfig
    public let parameters: FloatBuffer
    public let gradients: FloatBuffer
    private let stride: Int

    public init(config: BottleneckConfig, model: LlamaConfig, seed: UInt64 = 0) throws {
        try config.validate()
        self.config = config
        self.model = model
        let m = config.size, d = model.dim
        stride = 2 * m * d + m + d
        parameters = FloatBuffer(stride * model.layers * BottleneckConfig.Placement.allCases.count)
        gradients = FloatBuffer(parameters.count)
        var rng = SeededGenerator(seed: seed)
        let bound = 1 / Float(d).squareRoot()
        for l in 0..<model.layers {
            for p in config.placements {
                let wd = weights(l, p).down
                for i in 0..<(m * d) { wd[i] = Float.random(in: -bound...bound, using: &rng) }
            }
        }
    }

    public var parameterCount: Int { parameters.count }

    func has(_ p: BottleneckConfig.Placement) -> Bool { config.placements.contains(p) }

    private func base(_ l: Int, _ p: BottleneckConfig.Placement, _ buffer: FloatBuffer) -> UnsafeMutablePointer<Float> {
        buffer.pointer + (l * 2 + BottleneckConfig.Placement.allCases.firstIndex(of: p)!) * stride
    }

    /// (W_down [m, d], b_down [m], W_up [d, m], b_up [d]) of one module.
    func weights(_ l: Int, _ p: BottleneckConfig.Placement, grads: Bool = false)
        -> (down: UnsafeMutablePointer<Float>, downBias: UnsafeMutablePointer<Float>, up: UnsafeMutablePointer<Float>, upBias: UnsafeMutablePointer<Float>) {
        let m = config.size, d = model.dim
        let b = base(l, p, grads ? gradients : parameters)
        return (b, b + m * d, b + m * d + m, b + 2 * m * d + m)
    }

    // MARK: Forward and backward, side by side

    /// h[n, d] += W_up·act(W_down·h + b_down) + b_up, keeping the pre-activation `u` and
    /// activation `a` ([n, m]) for backward.
    func forward(_ l: Int, _ p: BottleneckConfig.Placement, h: UnsafeMutablePointer<Float>, n: Int,
                 u: UnsafeMutablePointer<Float>, a: UnsafeMutablePointer<Float>) {
        let m = config.size, d = model.dim
        let w = weights(l, p)
        for r in 0..<n { (u + r * m).update(from: w.downBias, count: m) }
        Blas.sgemm(transB: true, m: n, n: m, k: d, a: h, lda: d, b: w.down, ldb: d, beta: 1, c: u, ldc: m)
        for i in 0..<(n * m) { a[i] = activate(u[i]) }
        for r in 0..<n { Ops.add(h + r * d, w.upBias, count: d) }
        Blas.sgemm(transB: true, m: n, n: d, k: m, a: a, lda: m, b: w.up, ldb: m, beta: 1, c: h, ldc: d)
    }

    /// Given g = dL/d(adapted h) and the module input `hIn`, accumulates parameter gradients and
    /// writes dL/d(hIn) = g + (act'(u) ⊙ g·W_up)·W_down into `dh`. `du` needs n·m floats.
    func backward(_ l: Int, _ p: BottleneckConfig.Placement, g: UnsafePointer<Float>, hIn: UnsafePointer<Float>, n: Int,
                  u: UnsafePointer<Float>, a: UnsafePointer<Float>, du: UnsafeMutablePointer<Float>, dh: UnsafeMutablePointer<Float>) {
        let m = config.size, d = model.dim
        let w = weights(l, p), gw = weights(l, p, grads: true)
        Blas.sgemm(transA: true, m: d, n: m, k: n, a: g, lda: d, b: a, ldb: m, beta: 1, c: gw.up, ldc: m)
        for r in 0..<n { Ops.add(gw.upBias, g + r * d, count: d) }
        Blas.sgemm(m: n, n: m, k: d, a: g, lda: d, b: w.up, ldb: m, c: du, ldc: m)
        for i in 0..<(n * m) { du[i] *= derivative(u[i]) }
        Blas.sgemm(transA: true, m: m, n: d, k: n, a: du, lda: m, b: hIn, ldb: d, beta: 1, c: gw.down, ldc: d)
        for r in 0..<n { Ops.add(gw.downBias, du + r * m, count: m) }
        dh.update(from: g, count: n * d)
        Blas.sgemm(m: n, n: d, k: m, a: du, lda: m, b: w.down, ldb: d, beta: 1, c: dh, ldc: d)
    }

    @inline(__always)
    private func activate(_ x: Float) -> Float {
        switch config.activation {
        case .relu: return max(0, x)
        case .silu: return x / (1 + expf(-x))
        }
    }

    @inline(__always)
    private func derivative(_ x: Float) -> Float {
        switch config.activation {
        case .relu: return x > 0 ? 1 : 0
        case .silu:
            let s = 1 / (1 + expf(-x))
            return s * (1 + x * (1 - s))
        }
    }

    // MARK: Inference

    public func addDelta(layer: Int, target: LinearTarget, x: UnsafePointer<Float>, m: Int, y: UnsafeMutablePointer<Float>) {}

    public func adaptSublayer(layer: Int, afterAttention: Bool, h: UnsafeMutablePointer<Float>, m: Int) {
        let p: BottleneckConfig.Placement = afterAttention ? .attention : .mlp
        guard has(p) else { return }
        withUnsafeTemporaryAllocation(of: Float.self, capacity: 2 * m * config.size) { buffer in
            forward(layer, p, h: h, n: m, u: buffer.baseAddress!, a: buffer.baseAddress! + m * config.size)
        }
    }
}
