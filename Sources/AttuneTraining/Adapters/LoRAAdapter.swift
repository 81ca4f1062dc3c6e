import AttuneModel
import AttuneTensor
import Foundation

/// LoRA weights for a llama model: for each layer and target projection W (out × in),
/// A (r × in) and B (out × r), so that W' = W + s·B·A. All parameters live in one flat buffer
/// for the optimizer (A and B are views into it); their gradients, in another, allocated on
/// first use — an adapter that only serves never holds them.
public final class LoRAAdapter: LinearAdapter, @unchecked Sendable {
    public let config: LoRAConfig
    public let model: LlamaConfig
    public let parameters: FloatBuffer
    public private(set) lazy var gradients = FloatBuffer(parameters.count)
    /// Where A and B of each (layer, target) start, indexed by `key` (a flat table: this is
    /// looked up for every product).
    private let offsets: [(a: Int, b: Int, out: Int, in: Int)]

    /// A new adapter initialized as PEFT does: A Kaiming-uniform (bound 1/√in), B zero.
    public convenience init(config: LoRAConfig, model: LlamaConfig, seed: UInt64 = 0) throws {
        try self.init(config: config, model: model, zeroed: ())
        var rng = SeededGenerator(seed: seed)
        for l in 0..<model.layers {
            for t in config.targets {
                let o = offsets[Self.key(l, t)]
                let bound = 1 / Float(o.in).squareRoot()
                let a = parameters.pointer + o.a
                for i in 0..<(config.rank * o.in) { a[i] = Float.random(in: -bound...bound, using: &rng) }
            }
        }
    }

    /// An all-zero adapter (weights to be filled by a loader).
    public init(config: LoRAConfig, model: LlamaConfig, zeroed: Void) throws {
        try config.validate()
        self.config = config
        self.model = model
        var total = 0
        var table = [(a: Int, b: Int, out: Int, in: Int)](repeating: (-1, -1, 0, 0), count: model.layers * 8)
        for l in 0..<model.layers {
            for t in config.targets {
                let (out, inF) = t.shape(model)
                table[Self.key(l, t)] = (total, total + config.rank * inF, out, inF)
                total += config.rank * (inF + out)
            }
        }
        offsets = table
        parameters = FloatBuffer(total)
    }

    /// An independent copy with the same configuration and weights.
    public func copy() -> LoRAAdapter {
        let c = try! LoRAAdapter(config: config, model: model, zeroed: ())  // the configuration was validated when self was made
        c.parameters.pointer.update(from: parameters.pointer, count: parameters.count)
        return c
    }

    @inline(__always)
    public static func key(_ layer: Int, _ target: LinearTarget) -> Int {
        let ordinal: Int
        switch target {
        case .q: ordinal = 0
        case .k: ordinal = 1
        case .v: ordinal = 2
        case .o: ordinal = 3
        case .gate: ordinal = 4
        case .up: ordinal = 5
        case .down: ordinal = 6
        }
        return layer * 8 + ordinal
    }

    public var parameterCount: Int { parameters.count }

    public func has(_ target: LinearTarget) -> Bool { offsets[Self.key(0, target)].a >= 0 }

    /// A (rank × in) of `target` in `layer`.
    public func a(_ layer: Int, _ target: LinearTarget) -> UnsafeMutablePointer<Float> {
        parameters.pointer + offsets[Self.key(layer, target)].a
    }

    /// B (out × rank) of `target` in `layer`.
    public func b(_ layer: Int, _ target: LinearTarget) -> UnsafeMutablePointer<Float> {
        parameters.pointer + offsets[Self.key(layer, target)].b
    }

    func gradA(_ layer: Int, _ target: LinearTarget) -> UnsafeMutablePointer<Float> {
        gradients.pointer + offsets[Self.key(layer, target)].a
    }

    func gradB(_ layer: Int, _ target: LinearTarget) -> UnsafeMutablePointer<Float> {
        gradients.pointer + offsets[Self.key(layer, target)].b
    }

    // MARK: Inference

    public func addDelta(layer: Int, target: LinearTarget, x: UnsafePointer<Float>, m: Int, y: UnsafeMutablePointer<Float>) {
        guard has(target) else { return }
        withUnsafeTemporaryAllocation(of: Float.self, capacity: m * config.rank) { buffer in
            let xa = buffer.baseAddress!
            project(x, m: m, layer: layer, target: target, into: xa)
            expand(xa, m: m, layer: layer, target: target, into: y, out: target.shape(model).out)
        }
    }

    /// xa[m, r] = x[m, in] · Aᵀ.
    func project(_ x: UnsafePointer<Float>, m: Int, layer: Int, target: LinearTarget, into xa: UnsafeMutablePointer<Float>) {
        let r = config.rank
        let inF = target.shape(model).in
        let a = self.a(layer, target)
        if m == 1 {
            for j in 0..<r { xa[j] = MatVec.dot(a + j * inF, x, inF) }
        } else {
            Blas.sgemm(transB: true, m: m, n: r, k: inF, a: x, lda: inF, b: a, ldb: inF, c: xa, ldc: r)
        }
    }

    /// y[m, out] += s · xa[m, r] · Bᵀ.
    func expand(_ xa: UnsafePointer<Float>, m: Int, layer: Int, target: LinearTarget, into y: UnsafeMutablePointer<Float>, out: Int) {
        let r = config.rank
        let b = self.b(layer, target)
        if m == 1 && r % 8 == 0 {
            // One row: each output is a dot of r contiguous values, eight lanes at a time
            // (a call per output costs more than the product at these lengths).
            let s = config.scale
            let raw = UnsafeRawPointer(b)
            for o in 0..<out {
                var acc = SIMD8<Float>()
                for j in stride(from: 0, to: r, by: 8) {
                    acc += raw.loadUnaligned(fromByteOffset: (o * r + j) * 4, as: SIMD8<Float>.self)
                        * UnsafeRawPointer(xa).loadUnaligned(fromByteOffset: j * 4, as: SIMD8<Float>.self)
                }
                y[o] += s * acc.sum()
            }
        } else if m == 1 {
            let s = config.scale
            for o in 0..<out { y[o] += s * MatVec.dot(b + o * r, xa, r) }
        } else {
            Blas.sgemm(transB: true, m: m, n: out, k: r, alpha: config.scale, a: xa, lda: r, b: b, ldb: r, beta: 1, c: y, ldc: out)
        }
    }

    // MARK: Training

    /// Backward of y += s·(x·Aᵀ)·Bᵀ given dy: dx += s·(dy·B)·A and, when the forward input `x`
    /// and projection `xa` are given, the parameter gradients dB += s·dyᵀ·xa, dA += s·(dy·B)ᵀ·x.
    /// A frozen adapter passes nil for both and only propagates dx.
    func backward(layer: Int, target: LinearTarget, x: UnsafePointer<Float>?, xa: UnsafePointer<Float>?,
                  dy: UnsafePointer<Float>, m: Int, dx: UnsafeMutablePointer<Float>) {
        guard has(target) else { return }
        let r = config.rank, s = config.scale
        let (out, inF) = target.shape(model)
        let dxa = UnsafeMutablePointer<Float>.allocate(capacity: m * r)
        defer { dxa.deallocate() }
        Blas.sgemm(m: m, n: r, k: out, alpha: s, a: dy, lda: out, b: b(layer, target), ldb: r, c: dxa, ldc: r)
        if let x, let xa {
            Blas.sgemm(transA: true, m: out, n: r, k: m, alpha: s, a: dy, lda: out, b: xa, ldb: r, beta: 1,
                       c: gradB(layer, target), ldc: r)
            Blas.sgemm(transA: true, m: r, n: inF, k: m, a: dxa, lda: r, b: x, ldb: inF, beta: 1,
                       c: gradA(layer, target), ldc: inF)
        }
        Blas.sgemm(m: m, n: inF, k: r, a: dxa, lda: r, b: a(layer, target), ldb: inF, beta: 1, c: dx, ldc: inF)
    }

    /// The dense update s·B·A (out × in) of one projection, e.g. to merge into a weight copy.
    public func delta(layer: Int, target: LinearTarget) -> [Float] {
        let (out, inF) = target.shape(model)
        var d = [Float](repeating: 0, count: out * inF)
        guard has(target) else { return d }
        Blas.sgemm(m: out, n: inF, k: config.rank, alpha: config.scale, a: b(layer, target), lda: config.rank,
                   b: a(layer, target), ldb: inF, c: &d, ldc: inF)
        return d
    }
}

/// Several adapters applied together (a frozen domain adapter under a tenant adapter).
public struct AdapterStack: LinearAdapter {
    public let adapters: [any LinearAdapter]

    public init(_ adapters: [any LinearAdapter]) {
        self.adapters = adapters
    }

    public func addDelta(layer: Int, target: LinearTarget, x: UnsafePointer<Float>, m: Int, y: UnsafeMutablePointer<Float>) {
        for a in adapters { a.addDelta(layer: layer, target: target, x: x, m: m, y: y) }
    }

    public func adaptSublayer(layer: Int, afterAttention: Bool, h: UnsafeMutablePointer<Float>, m: Int) {
        for a in adapters { a.adaptSublayer(layer: layer, afterAttention: afterAttention, h: h, m: m) }
    }
}
