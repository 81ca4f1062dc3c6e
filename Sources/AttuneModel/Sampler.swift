import Foundation

/// How the next token is chosen from the logits.
public struct SamplingParameters: Sendable, Equatable, Codable {
    /// 0 selects greedy decoding.
    public var temperature: Float = 0
    /// Keep only the k most likely tokens (0 = all).
    public var topK: Int = 0
    /// Keep the smallest set of tokens whose probability reaches p (1 = all).
    public var topP: Float = 1
    /// > 1 discourages tokens already in the context (CTRL-style: positive logits divided, negative multiplied).
    public var repetitionPenalty: Float = 1
    /// How many recent tokens the repetition penalty looks at.
    public var repetitionWindow: Int = 64
    public var seed: UInt64 = 0

    public init(temperature: Float = 0, topK: Int = 0, topP: Float = 1, repetitionPenalty: Float = 1,
                repetitionWindow: Int = 64, seed: UInt64 = 0) {
        self.temperature = temperature
        self.topK = topK
        self.topP = topP
        self.repetitionPenalty = repetitionPenalty
        self.repetitionWindow = repetitionWindow
        self.seed = seed
    }

    public static let greedy = SamplingParameters()
}

/// xoshiro256** seeded through splitmix64: a small, fast, reproducible generator.
public struct SeededGenerator: RandomNumberGenerator, Sendable {
    private var s: (UInt64, UInt64, UInt64, UInt64)

    /// The generator's full state (for checkpoints that resume bit for bit).
    public var state: [UInt64] {
        get { [s.0, s.1, s.2, s.3] }
        set { s = (newValue[0], newValue[1], newValue[2], newValue[3]) }
    }

    public init(seed: UInt64) {
        var x = seed
        func next() -> UInt64 {
            x &+= 0x9E37_79B9_7F4A_7C15
            var z = x
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        s = (next(), next(), next(), next())
    }

    public mutating func next() -> UInt64 {
        let result = ((s.1 &* 5) << 7 | (s.1 &* 5) >> 57) &* 9
        let t = s.1 << 17
        s.2 ^= s.0
        s.3 ^= s.1
        s.1 ^= s.2
        s.0 ^= s.3
        s.2 ^= t
        s.3 = s.3 << 45 | s.3 >> 19
        return result
    }
}

/// Picks tokens from logits according to `SamplingParameters`.
public struct Sampler: Sendable {
    public let parameters: SamplingParameters
    private var rng: SeededGenerator

    public init(_ parameters: SamplingParameters) {
        self.parameters = parameters
        rng = SeededGenerator(seed: parameters.seed)
    }

    /// The next token given `logits` (one vocabulary row) and the tokens so far.
    ///
    /// Only tokens within 20 nats of the best are sorted for top-k / top-p; every excluded
    /// token is less likely than every included one, so the nucleus is exact whenever the
    /// included mass reaches p (otherwise the whole vocabulary is sorted).
    public mutating func sample(_ logits: ArraySlice<Float>, history: [Int32]) -> Int32 {
        var z = Array(logits)
        let p = parameters
        if p.repetitionPenalty != 1 {
            for t in Set(history.suffix(p.repetitionWindow)) where t >= 0 && Int(t) < z.count {
                let v = z[Int(t)]
                z[Int(t)] = v > 0 ? v / p.repetitionPenalty : v * p.repetitionPenalty
            }
        }
        if p.temperature <= 0 {
            var best = 0
            for i in 1..<z.count where z[i] > z[best] { best = i }
            return Int32(best)
        }
        let invT = 1 / p.temperature
        var maxLogit = -Float.infinity
        for i in z.indices {
            z[i] *= invT
            maxLogit = max(maxLogit, z[i])
        }
        if p.topK <= 0 && p.topP >= 1 {
            let weights = z.map { Double(expf($0 - maxLogit)) }
            let total = weights.reduce(0, +)
            var r = Double.random(in: 0..<1, using: &rng) * total
            for i in weights.indices {
                r -= weights[i]
                if r < 0 { return Int32(i) }
            }
            return Int32(z.count - 1)
        }
        let fullMass = z.reduce(0.0) { $0 + Double(expf($1 - maxLogit)) }
        var candidates = z.indices.filter { z[$0] >= maxLogit - 20 }
        let filteredMass = candidates.reduce(0.0) { $0 + Double(expf(z[$1] - maxLogit)) }
        let needFull = (p.topK > 0 && candidates.count < p.topK) || (p.topK <= 0 && filteredMass < Double(p.topP) * fullMass)
        if needFull { candidates = Array(z.indices) }
        candidates.sort { z[$0] > z[$1] }
        var mass = fullMass
        if p.topK > 0 && p.topK < candidates.count {
            candidates.removeLast(candidates.count - p.topK)
            mass = candidates.reduce(0.0) { $0 + Double(expf(z[$1] - maxLogit)) }
        }
        var keep = candidates.count
        if p.topP < 1 {
            var cumulative = 0.0
            for (i, id) in candidates.enumerated() {
                cumulative += Double(expf(z[id] - maxLogit)) / mass
                if cumulative >= Double(p.topP) {
                    keep = i + 1
                    break
                }
            }
        }
        let kept = candidates[..<keep].reduce(0.0) { $0 + Double(expf(z[$1] - maxLogit)) }
        var r = Double.random(in: 0..<1, using: &rng) * kept
        for id in candidates[..<keep] {
            r -= Double(expf(z[id] - maxLogit))
            if r < 0 { return Int32(id) }
        }
        return Int32(candidates[keep - 1])
    }
}
