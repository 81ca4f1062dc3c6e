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
    /// For a tenant adapter: the domain adapter version it was trained on (`name@version`).
    public var domain: String?
    public var baseModel: String
    public var baseModelSHA256: String
    /// Inclusive offset ranges covered, per "topic[partition]".
    public var covers: [String: [[Int64]]]
    public var metrics: [String: Double]
    /// Ranks of the adapter's blocks, oldest first; only the last one trains (absent: one block).
    public var blocks: [Int]? = nil

    public var id: String { "\(adapter)@\(version)" }

    /// Headers of the `attune.adapters` record.
    func headers() throws -> [EventHeader] {
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
    func cloudEvent(source: String) throws -> [UInt8] {
        var data: [String: Any] = ["adapter": adapter, "version": "\(version)", "sha256": sha256, "parent": parent.map { $0 as Any } ?? NSNull()]
        if adapter.hasPrefix("tenant/") { data["tenant"] = String(adapter.dropFirst(7)) }
        if let domain { data["domain"] = domain }
        if adapter.hasPrefix("domain/") { data["domain"] = String(adapter.dropFirst(7)) }
        let event: [String: Any] = [
            "specversion": "1.0", "type": "adapter.updated", "source": source, "id": "\(id)#\(sha256.prefix(12))",
            "time": ISO8601DateFormatter().string(from: Date()), "subject": adapter, "datacontenttype": "application/json",
            "data": data,
        ]
        return Array(try JSONSerialization.data(withJSONObject: event, options: [.sortedKeys]))
    }

    /// Hex sha256 of the published bytes.
    static func digest(_ bytes: [UInt8]) -> String {
        SHA256.hash(data: bytes).map { String(format: "%02x", $0) }.joined()
    }

    /// Whether `offset` of `partition` is inside this release's ranges.
    public func covers(_ partition: TopicPartition, _ offset: Int64) -> Bool {
        (covers[partition.description] ?? []).contains { $0[0] <= offset && offset <= $0[1] }
    }
}

extension JSONEncoder {
    static var sorted: JSONEncoder {
        let e = JSONEncoder()
        e.outputFormatting = .sortedKeys
        return e
    }
}
