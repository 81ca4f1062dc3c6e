import AttuneTensor

/// Keys and values of past positions for one sequence, per layer: `[position, kvHeads × headDim]`,
/// stored as fp32 or as IEEE half bits. Grows by doubling up to the model's context length.
public final class KVCache: @unchecked Sendable {
    /// How a cache stores its keys and values.
    public enum Precision: Sendable {
        /// fp32: attention reads exactly what the projections produced.
        case fp32
        /// IEEE half: half the bytes for decode attention to read and for the memory budget to hold.
        case half

        /// Bytes per stored value.
        public var bytes: Int { self == .fp32 ? 4 : 2 }
    }

    public let layers: Int
    public let width: Int
    public let limit: Int
    public let precision: Precision
    public private(set) var capacity: Int
    /// Positions stored (the next token's position).
    public internal(set) var count = 0
    private var keys: [UnsafeMutableRawPointer]
    private var values: [UnsafeMutableRawPointer]

    public init(config: LlamaConfig, capacity: Int = 256, precision: Precision = .fp32) {
        layers = config.layers
        width = config.kvHeads * config.headDim
        limit = config.contextLength
        self.precision = precision
        let positions = max(1, min(capacity, config.contextLength))
        self.capacity = positions
        let bytes = positions * width * precision.bytes
        keys = (0..<config.layers).map { _ in .allocate(byteCount: bytes, alignment: 64) }
        values = (0..<config.layers).map { _ in .allocate(byteCount: bytes, alignment: 64) }
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
        let rowBytes = width * precision.bytes
        for l in 0..<layers {
            let k = UnsafeMutableRawPointer.allocate(byteCount: newCapacity * rowBytes, alignment: 64)
            let v = UnsafeMutableRawPointer.allocate(byteCount: newCapacity * rowBytes, alignment: 64)
            k.copyMemory(from: keys[l], byteCount: count * rowBytes)
            v.copyMemory(from: values[l], byteCount: count * rowBytes)
            keys[l].deallocate()
            values[l].deallocate()
            keys[l] = k
            values[l] = v
        }
        capacity = newCapacity
    }

    /// Writes `n` new positions' keys and values (fp32, `[n, width]`) after the `count` stored
    /// ones of `layer`, in the cache's precision; `count` moves once every layer has them.
    func store(layer: Int, keys k: UnsafePointer<Float>, values v: UnsafePointer<Float>, n: Int) {
        let offset = count * width
        switch precision {
        case .fp32:
            (keys[layer].assumingMemoryBound(to: Float.self) + offset).update(from: k, count: n * width)
            (values[layer].assumingMemoryBound(to: Float.self) + offset).update(from: v, count: n * width)
        case .half:
            HalfConversion.narrow(k, into: keys[layer].assumingMemoryBound(to: UInt16.self) + offset, count: n * width)
            HalfConversion.narrow(v, into: values[layer].assumingMemoryBound(to: UInt16.self) + offset, count: n * width)
        }
    }

    /// The stored keys / values of `layer`.
    func keys(_ layer: Int) -> CachedRows { rows(keys[layer]) }
    func values(_ layer: Int) -> CachedRows { rows(values[layer]) }

    private func rows(_ p: UnsafeMutableRawPointer) -> CachedRows {
        precision == .fp32 ? .fp32(p.assumingMemoryBound(to: Float.self)) : .half(p.assumingMemoryBound(to: UInt16.self))
    }

    /// Calls `body` with fp32 keys and values of positions `0 ..< count + n` of `layer` (a
    /// prompt's attention), after `store` has written the `n` new ones given here in fp32. The
    /// new positions take part as given; earlier ones as stored (widened from half precision).
    func withFP32<R>(layer: Int, newKeys: UnsafePointer<Float>, newValues: UnsafePointer<Float>, n: Int,
                     _ body: (UnsafePointer<Float>, UnsafePointer<Float>) -> R) -> R {
        if precision == .fp32 {
            return body(keys[layer].assumingMemoryBound(to: Float.self), values[layer].assumingMemoryBound(to: Float.self))
        }
        if count == 0 { return body(newKeys, newValues) }
        let k = UnsafeMutablePointer<Float>.allocate(capacity: (count + n) * width)
        let v = UnsafeMutablePointer<Float>.allocate(capacity: (count + n) * width)
        defer { k.deallocate(); v.deallocate() }
        HalfConversion.widen(keys[layer].assumingMemoryBound(to: UInt16.self), into: k, count: count * width)
        HalfConversion.widen(values[layer].assumingMemoryBound(to: UInt16.self), into: v, count: count * width)
        (k + count * width).update(from: newKeys, count: n * width)
        (v + count * width).update(from: newValues, count: n * width)
        return body(k, v)
    }

    /// Forgets positions from `length` on (to rewind after a rejected draft or reuse a prefix).
    public func truncate(to length: Int) {
        count = min(count, max(0, length))
    }

    /// Bytes of keys and values for `positions` positions of a model with `config`.
    public static func bytes(config: LlamaConfig, positions: Int, precision: Precision) -> Int {
        bytes(layers: config.layers, width: config.kvHeads * config.headDim, positions: positions, precision: precision)
    }

    private static func bytes(layers: Int, width: Int, positions: Int, precision: Precision) -> Int {
        2 * layers * positions * width * precision.bytes
    }

    /// Bytes allocated.
    public var bytes: Int { Self.bytes(layers: layers, width: width, positions: capacity, precision: precision) }
}
