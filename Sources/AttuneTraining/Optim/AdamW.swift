import AttuneTensor
import Foundation

/// AdamW hyperparameters (decoupled weight decay, as in Loshchilov & Hutter).
public struct AdamWConfig: Codable, Sendable, Equatable {
    public var learningRate: Float = 2e-4
    public var beta1: Float = 0.9
    public var beta2: Float = 0.999
    public var epsilon: Float = 1e-8
    public var weightDecay: Float = 0
    /// Clip the global gradient L2 norm to this value (nil = no clipping).
    public var clipNorm: Float? = 1

    public init(learningRate: Float = 2e-4, beta1: Float = 0.9, beta2: Float = 0.999, epsilon: Float = 1e-8,
                weightDecay: Float = 0, clipNorm: Float? = 1) {
        self.learningRate = learningRate
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon
        self.weightDecay = weightDecay
        self.clipNorm = clipNorm
    }
}

/// AdamW over one flat parameter buffer: θ ← θ − lr·(m̂/(√v̂ + ε) + λθ).
public final class AdamW: @unchecked Sendable {
    public let config: AdamWConfig
    public let m: FloatBuffer
    public let v: FloatBuffer
    public internal(set) var step = 0

    public init(config: AdamWConfig, parameterCount: Int) {
        self.config = config
        m = FloatBuffer(parameterCount)
        v = FloatBuffer(parameterCount)
    }

    /// The global L2 norm of `gradients`.
    public static func norm(_ gradients: FloatBuffer) -> Float {
        var s = 0.0
        for i in 0..<gradients.count { s += Double(gradients[i]) * Double(gradients[i]) }
        return Float(s.squareRoot())
    }

    /// Applies one update with learning rate `lr` (from the schedule); clips first. Returns the
    /// gradient norm before clipping. Parameters where `mask` is 0 stay as they are (no step,
    /// no decay); their gradients should be zero so they do not count in the clipping norm.
    @discardableResult
    public func update(_ parameters: FloatBuffer, _ gradients: FloatBuffer, lr: Float, mask: FloatBuffer? = nil) -> Float {
        precondition(parameters.count == m.count && gradients.count == m.count, "buffer sizes differ")
        precondition(mask.map { $0.count == parameters.count } ?? true, "mask size differs")
        let gnorm = Self.norm(gradients)
        var scale: Float = 1
        if let clip = config.clipNorm, gnorm > clip, gnorm > 0 { scale = clip / gnorm }
        step += 1
        let b1 = config.beta1, b2 = config.beta2
        let c1 = 1 - Float(pow(Double(b1), Double(step))), c2 = 1 - Float(pow(Double(b2), Double(step)))
        let p = parameters.pointer, g = gradients.pointer, mm = m.pointer, vv = v.pointer
        let eps = config.epsilon, wd = config.weightDecay, frozen = mask?.pointer
        Parallel.chunks(parameters.count, granule: 8, minPerChunk: 1 << 15) { range in
            for i in range {
                if let frozen, frozen[i] == 0 { continue }
                let gi = g[i] * scale
                mm[i] = b1 * mm[i] + (1 - b1) * gi
                vv[i] = b2 * vv[i] + (1 - b2) * gi * gi
                let mHat = mm[i] / c1, vHat = vv[i] / c2
                p[i] -= lr * (mHat / (vHat.squareRoot() + eps) + wd * p[i])
            }
        }
        return gnorm
    }
}

/// Learning-rate schedule: linear warmup, then constant or cosine decay to `minRatio`·peak.
public struct LRSchedule: Codable, Sendable, Equatable {
    public enum Kind: String, Codable, Sendable, CaseIterable { case constant, cosine }
    public var kind: Kind
    public var peak: Float
    public var warmupSteps: Int
    public var totalSteps: Int
    public var minRatio: Float

    public init(kind: Kind = .cosine, peak: Float, warmupSteps: Int = 0, totalSteps: Int, minRatio: Float = 0.1) {
        self.kind = kind
        self.peak = peak
        self.warmupSteps = warmupSteps
        self.totalSteps = totalSteps
        self.minRatio = minRatio
    }

    /// The rate for update number `step` (1-based).
    public func rate(at step: Int) -> Float {
        if step <= warmupSteps { return peak * Float(step) / Float(max(warmupSteps, 1)) }
        switch kind {
        case .constant: return peak
        case .cosine:
            let span = max(1, totalSteps - warmupSteps)
            let progress = min(1, Float(step - warmupSteps) / Float(span))
            let cosine = 0.5 * (1 + Float(Foundation.cos(Double.pi * Double(progress))))
            return peak * (minRatio + (1 - minRatio) * cosine)
        }
    }
}
