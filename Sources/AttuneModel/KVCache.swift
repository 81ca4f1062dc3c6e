/// Keys and values of past positions for one sequence, per layer: `[position, kvHeads × headDim]`.
/// Grows by doubling up to the model's context length.
public final class KVCache: @unchecked Sendable {
    public let layers: Int
    public let width: Int
    public let limit: Int
    public private(set) var capacity: Int
    /// Positions stored (the next token's position).
    public internal(set) var count = 0
    private var keys: [UnsafeMutablePointer<Float>]
    private var values: [UnsafeMutablePointer<Float>]

    public init(config: LlamaConfig, capacity: Int = 256) {
        layers = config.layers
        width = config.kvHeads * config.headDim
        limit = config.contextLength
        let positions = max(1, min(capacity, config.contextLength))
        self.capacity = positions
        keys = (0..<config.layers).map { _ in .allocate(capacity: positions * config.kvHeads * config.headDim) }
        values = (0..<config.layers).map { _ in .allocate(capacity: positions * config.kvHeads * config.headDim) }
    }

    deinit {
        keys.forEach { $0.deallocate() }
        values.forEach { $0.deallocate() }
    }

    /// Makes room for `n` more positions.
    func reserve(_ n: Int) throws {
        let needed = count + n
        guard needed <= limit else { throw ModelError.contextOverflow(needed: needed, limit: limit) }
        guard needed > capacity else { return }
        let newCapacity = min(limit, max(needed, capacity * 2))
        for l in 0..<layers {
            let k = UnsafeMutablePointer<Float>.allocate(capacity: newCapacity * width)
            let v = UnsafeMutablePointer<Float>.allocate(capacity: newCapacity * width)
            k.update(from: keys[l], count: count * width)
            v.update(from: values[l], count: count * width)
            keys[l].deallocate()
            values[l].deallocate()
            keys[l] = k
            values[l] = v
        }
        capacity = newCapacity
    }

    func keys(_ layer: Int) -> UnsafeMutablePointer<Float> { keys[layer] }
    func values(_ layer: Int) -> UnsafeMutablePointer<Float> { values[layer] }

    /// Forgets positions from `length` on (to rewind after a rejected draft or reuse a prefix).
    public func truncate(to length: Int) {
        count = min(count, max(0, length))
    }

    /// Bytes allocated.
    public var bytes: Int { 2 * layers * capacity * width * 4 }
}
