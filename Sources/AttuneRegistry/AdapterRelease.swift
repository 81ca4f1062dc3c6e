import AttuneEventLog
import Crypto
import Foundation

/// One immutable published adapter version: what it is (name, version, content hash), what it
/// stands on (base model, parent version), which input offsets it covers, and how it evaluated.
public struct AdapterRelease: Codable, Sendable, Equatable {
    public var adapter: String
    public var version: Int
    public var sha256: String
    /// The previous version of this adapter, if any (`name@version`).
    public var parent: String?
    /// For a tenant or meta adapter: the domain adapter version it was trained on (`name@version`).
    public var domain: String?
    public var baseModel: String
    public var baseModelSHA256: String
    /// The input offsets this version trained.
    public var covers: OffsetCoverage
    public var metrics: [String: Double]
    /// Ranks of the adapter's blocks, oldest first; only the last one trains (absent: one block).
    public var blocks: [Int]? = nil
    /// Inputs of earlier versions whose offsets were not yet committed when this one was
    /// published, so that they are still known as trained once a compacted topic keeps only
    /// this version.
    public var carried: OffsetCoverage? = nil
    /// For a tenant's first version: the meta adapter version it started from (`meta/<domain>@<version>`).
    public var initialization: String? = nil

    public init(adapter: String, version: Int, sha256: String, parent: String?, domain: String?, baseModel: String,
                baseModelSHA256: String, covers: OffsetCoverage, metrics: [String: Double], blocks: [Int]? = nil,
                carried: OffsetCoverage? = nil, initialization: String? = nil) {
        self.adapter = adapter
        self.version = version
        self.sha256 = sha256
        self.parent = parent
        self.domain = domain
        self.baseModel = baseModel
        self.baseModelSHA256 = baseModelSHA256
        self.covers = covers
        self.metrics = metrics
        self.blocks = blocks
        self.carried = carried
        self.initialization = initialization
    }

    /// `name@version`.
    public var id: String { "\(adapter)@\(version)" }

    /// The typed adapter name (nil for a name of no known kind).
    public var name: AdapterName? { AdapterName(parsing: adapter) }

    /// The domain version a tenant or meta adapter stands on, typed.
    public var domainReference: AdapterReference? { domain.flatMap(AdapterReference.init(parsing:)) }

    /// The adapter name and version of an id `domain/<name>@<version>` or `tenant/<name>@<version>`.
    public static func parseID(_ id: String) -> (name: String, version: Int)? {
        guard let ref = AdapterReference(parsing: id), let version = ref.version else { return nil }
        return (ref.name.description, version)
    }

    /// Whether `name` is a typed adapter name (`domain/<id>` or `tenant/<id>`).
    public static func isAdapterName(_ name: String) -> Bool { AdapterName(parsing: name) != nil }

    /// Whether a release read from a topic is one a worker can act on: a known kind of adapter,
    /// a sane version, a sha256, parseable parent and domain ids, and ranges of two ordered
    /// non-negative offsets (`OffsetRange` holds no other).
    public var isWellFormed: Bool {
        Self.isAdapterName(adapter) && (1...(1 << 40)).contains(version) && sha256.count == 64
            && (parent.map { Self.parseID($0)?.name == adapter } ?? true) && (domain.map { Self.parseID($0) != nil } ?? true)
    }

    /// Headers of the `attune.adapters` record.
    public func headers() throws -> [EventHeader] {
        let json = String(decoding: try JSONEncoder.sorted.encode(self), as: UTF8.self)
        return [EventHeader("version", "\(version)"), EventHeader("sha256", sha256), EventHeader("parent", parent ?? ""),
                EventHeader("attune-release", json)]
    }

    /// Decodes the release stored in an `attune.adapters` record's headers.
    public static func from(_ record: ConsumerRecord) -> AdapterRelease? {
        guard let json = record.headers.text(named: "attune-release") else { return nil }
        return try? JSONDecoder().decode(AdapterRelease.self, from: Data(json.utf8))
    }

    /// The CloudEvents 1.0 `adapter.updated` event announcing this release.
    public func cloudEvent(source: String) throws -> [UInt8] {
        try AdapterEvent(announcing: self, source: source).encoded()
    }

    /// Hex sha256 of the published bytes.
    public static func digest(_ bytes: [UInt8]) -> String {
        SHA256.hash(data: bytes).map { String(format: "%02x", $0) }.joined()
    }

    /// Whether `offset` of `partition` is one of the inputs this version trained.
    public func covers(_ partition: TopicPartition, _ offset: Int64) -> Bool {
        covers.contains(partition, offset)
    }

    /// Whether this version or, as far as it carries them, an earlier one trained that input.
    public func accountsFor(_ partition: TopicPartition, _ offset: Int64) -> Bool {
        covers(partition, offset) || carried?.contains(partition, offset) == true
    }

    /// This version's inputs and those it carries, without the ranges that end below each
    /// partition's committed offset: what the next version must carry.
    public func uncommitted(_ committed: [TopicPartition: Int64]) -> OffsetCoverage {
        var out: OffsetCoverage = [:]
        for (tp, ranges) in covers.merging(carried ?? [:], uniquingKeysWith: +) {
            let kept = ranges.filter { $0.last >= committed[tp] ?? 0 }.sorted { $0.first < $1.first }
            if !kept.isEmpty { out[tp] = kept }
        }
        return out
    }
}

extension JSONEncoder {
    /// An encoder with sorted keys (stable bytes for headers and hashes).
    public static var sorted: JSONEncoder {
        let e = JSONEncoder()
        e.outputFormatting = .sortedKeys
        return e
    }
}
