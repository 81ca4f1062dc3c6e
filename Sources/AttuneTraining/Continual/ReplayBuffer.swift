import AttuneModel

/// A bounded, uniformly sampled memory of past examples (reservoir sampling, Vitter's
/// algorithm R): after n offers each example is kept with probability capacity/n. Mixed into
/// new batches so an adapter keeps rehearsing what it learned before.
public struct ReplayBuffer: Sendable, Equatable, Codable {
    public let capacity: Int
    public private(set) var items: [TrainingExample] = []
    /// Examples offered so far.
    public private(set) var seen = 0
    private var rngState: [UInt64]

    public init(capacity: Int, seed: UInt64 = 0) {
        precondition(capacity > 0, "replay capacity must be positive")
        self.capacity = capacity
        rngState = SeededGenerator(seed: seed).state
    }

    public mutating func offer(_ example: TrainingExample) {
        seen += 1
        if items.count < capacity {
            items.append(example)
            return
        }
        var rng = generator()
        let j = Int.random(in: 0..<seen, using: &rng)
        rngState = rng.state
        if j < capacity { items[j] = example }
    }

    /// `count` examples drawn uniformly with replacement (empty when the buffer is).
    public mutating func sample(_ count: Int) -> [TrainingExample] {
        guard !items.isEmpty else { return [] }
        var rng = generator()
        defer { rngState = rng.state }
        return (0..<count).map { _ in items[Int.random(in: 0..<items.count, using: &rng)] }
    }

    private func generator() -> SeededGenerator {
        var g = SeededGenerator(seed: 0)
        g.state = rngState
        return g
    }
}
