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

    /// `count` different examples drawn uniformly (all of them when the memory holds fewer),
    /// in the order drawn, so any prefix of the draw is a uniform sample too.
    public mutating func distinct(_ count: Int) -> [TrainingExample] {
        guard count < items.count else { return items }
        var rng = generator()
        defer { rngState = rng.state }
        var indices = Array(items.indices)
        for i in 0..<count { indices.swapAt(i, Int.random(in: i..<indices.count, using: &rng)) }
        return indices.prefix(count).map { items[$0] }
    }

    /// A draw whose expected size is `expected`: its whole part always, plus one more with
    /// the probability of its fraction, so a small batch gets its replay share on average.
    public mutating func sample(expected: Double) -> [TrainingExample] {
        guard !items.isEmpty, expected > 0 else { return [] }
        var whole = Int(expected.rounded(.down))
        var rng = generator()
        if Double.random(in: 0..<1, using: &rng) < expected - Double(whole) { whole += 1 }
        rngState = rng.state
        return sample(whole)
    }

    private func generator() -> SeededGenerator {
        var g = SeededGenerator(seed: 0)
        g.state = rngState
        return g
    }
}
