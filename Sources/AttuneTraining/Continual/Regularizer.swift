import AttuneTensor

/// A penalty that keeps adapter parameters near what earlier data needed, so new data does
/// not overwrite it:
/// - L2-SP: (λ/2)·‖θ − θ₀‖² toward the parent's parameters θ₀;
/// - online EWC: (λ/2)·Σ Fᵢ (θᵢ − θ*ᵢ)² with a diagonal Fisher estimate F (running mean of
///   squared gradients, decayed by γ at each consolidation) anchored at θ*.
public final class Regularizer: @unchecked Sendable {
    public enum Kind: String, Codable, Sendable, CaseIterable { case l2sp, ewc }

    public let kind: Kind
    public let strength: Float
    /// Online EWC's decay of the previous Fisher at each consolidation.
    public let gamma: Float
    public let anchor: FloatBuffer
    public let fisher: FloatBuffer
    private let running: FloatBuffer
    private var runningCount = 0

    /// A regularizer anchored at `anchor`; `fisher` continues an earlier EWC estimate.
    public init(kind: Kind, strength: Float, anchor: FloatBuffer, fisher: [Float]? = nil, gamma: Float = 0.9) {
        precondition(fisher.map { $0.count == anchor.count } ?? true, "Fisher estimate and anchor differ in size")
        self.kind = kind
        self.strength = strength
        self.gamma = gamma
        self.anchor = FloatBuffer(anchor.array)
        self.fisher = fisher.map { FloatBuffer($0) } ?? FloatBuffer(anchor.count)
        running = FloatBuffer(anchor.count)
    }

    /// An independent copy (anchor, Fisher and what was observed since the last consolidation).
    public func copy() -> Regularizer {
        let c = Regularizer(kind: kind, strength: strength, anchor: anchor, fisher: fisher.array, gamma: gamma)
        c.running.pointer.update(from: running.pointer, count: running.count)
        c.runningCount = runningCount
        return c
    }

    /// The penalty at θ.
    public func penalty(_ theta: FloatBuffer) -> Double {
        var s = 0.0
        for i in 0..<theta.count {
            let d = Double(theta[i] - anchor[i])
            s += (kind == .ewc ? Double(fisher[i]) : 1) * d * d
        }
        return 0.5 * Double(strength) * s
    }

    /// Adds ∂penalty/∂θ to `gradients`.
    public func addGradient(_ theta: FloatBuffer, into gradients: FloatBuffer) {
        let t = theta.pointer, a = anchor.pointer, f = fisher.pointer, g = gradients.pointer, lambda = strength
        let ewc = kind == .ewc
        for i in 0..<theta.count { g[i] += lambda * (ewc ? f[i] : 1) * (t[i] - a[i]) }
    }

    /// Accumulates squared data gradients for the Fisher estimate (EWC).
    public func observe(dataGradients g: FloatBuffer) {
        guard kind == .ewc else { return }
        for i in 0..<g.count { running[i] += g[i] * g[i] }
        runningCount += 1
    }

    /// Forgets the squared gradients observed since the last consolidation (a rejected run's).
    public func discardObservations() {
        running.zero()
        runningCount = 0
    }

    /// Moves the anchor to θ and folds the observed Fisher in: F ← γF + mean(g²).
    public func consolidate(at theta: FloatBuffer) {
        anchor.pointer.update(from: theta.pointer, count: theta.count)
        guard kind == .ewc, runningCount > 0 else { return }
        let inv = 1 / Float(runningCount)
        for i in 0..<fisher.count { fisher[i] = gamma * fisher[i] + running[i] * inv }
        running.zero()
        runningCount = 0
    }
}
