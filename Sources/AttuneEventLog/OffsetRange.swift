/// An inclusive range of offsets in one partition, written `[first, last]` in JSON.
public struct OffsetRange: Hashable, Sendable, Codable, CustomStringConvertible {
    public let first: Int64
    public let last: Int64

    /// nil unless `0 <= first <= last`.
    public init?(_ first: Int64, _ last: Int64) {
        guard 0 <= first, first <= last else { return nil }
        self.first = first
        self.last = last
    }

    public init(single offset: Int64) {
        first = offset
        last = offset
    }

    public func contains(_ offset: Int64) -> Bool { first <= offset && offset <= last }

    /// How many offsets the range holds.
    public var count: Int64 { last - first + 1 }

    public var description: String { "[\(first), \(last)]" }

    public init(from decoder: any Decoder) throws {
        var c = try decoder.unkeyedContainer()
        let first = try c.decode(Int64.self), last = try c.decode(Int64.self)
        guard c.isAtEnd, let range = OffsetRange(first, last) else {
            throw DecodingError.dataCorruptedError(in: c, debugDescription: "expected [first, last] with 0 <= first <= last")
        }
        self = range
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.unkeyedContainer()
        try c.encode(first)
        try c.encode(last)
    }
}

/// Offsets per partition, as inclusive ranges: the inputs an adapter version trained. Encodes
/// as a JSON object keyed by `topic[partition]`.
public typealias OffsetCoverage = [TopicPartition: [OffsetRange]]

extension TopicPartition: CodingKeyRepresentable, Codable {
    public var codingKey: any CodingKey { Key(stringValue: description) }

    public init?<T: CodingKey>(codingKey: T) { self.init(parsing: codingKey.stringValue) }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        guard let tp = TopicPartition(parsing: try c.decode(String.self)) else {
            throw DecodingError.dataCorruptedError(in: c, debugDescription: "expected topic[partition]")
        }
        self = tp
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(description)
    }

    private struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }
}

extension Dictionary where Key == TopicPartition, Value == [OffsetRange] {
    /// The coverage of these positions, merged into as few ranges as possible.
    public init(positions: some Sequence<(TopicPartition, Int64)>) {
        self.init()
        var byPartition: [TopicPartition: Set<Int64>] = [:]
        for (tp, offset) in positions { byPartition[tp, default: []].insert(offset) }
        for (tp, offsets) in byPartition {
            var ranges: [OffsetRange] = []
            for o in offsets.sorted() {
                if let last = ranges.last, last.last + 1 == o { ranges[ranges.count - 1] = OffsetRange(last.first, o)! } else { ranges.append(OffsetRange(single: o)) }
            }
            self[tp] = ranges
        }
    }

    public func contains(_ partition: TopicPartition, _ offset: Int64) -> Bool {
        self[partition]?.contains { $0.contains(offset) } ?? false
    }

    /// How many offsets are covered.
    public var offsetCount: Int64 { values.reduce(0) { $0 + $1.reduce(0) { $0 + $1.count } } }
}
