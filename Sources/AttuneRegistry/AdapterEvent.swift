import AttuneEventLog
import Foundation

/// A CloudEvents 1.0 `adapter.updated` event read from `attune.adapter-events`.
public struct AdapterEvent: Sendable {
    /// The CloudEvent id (`name@version#sha-prefix`): the same for a repeated announcement.
    public let id: String
    public let time: String?
    /// What the event says of the version: name, version, sha256, parent, domain and covered
    /// inputs (base model and metrics are only in the `attune.adapters` record).
    public let release: AdapterRelease

    /// Decodes an event; nil if it is not a well-formed `adapter.updated` CloudEvent.
    public init?(_ bytes: [UInt8]) {
        guard let object = try? JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any],
              object["specversion"] as? String == "1.0", object["type"] as? String == "adapter.updated",
              let id = object["id"] as? String, let data = object["data"] as? [String: Any],
              let adapter = data["adapter"] as? String, let versionText = data["version"] as? String,
              let version = Int(versionText), let sha256 = data["sha256"] as? String else { return nil }
        var covers: OffsetCoverage = [:]
        for (name, ranges) in data["covers"] as? [String: [[NSNumber]]] ?? [:] {
            guard let tp = TopicPartition(parsing: name) else { return nil }
            var list: [OffsetRange] = []
            for r in ranges {
                guard r.count == 2, let range = OffsetRange(r[0].int64Value, r[1].int64Value) else { return nil }
                list.append(range)
            }
            covers[tp] = list
        }
        // A domain adapter's event names its own domain id; only a tenant's names the version it stands on.
        let domain = AdapterName(parsing: adapter)?.kind == .tenant ? data["domain"] as? String : nil
        let release = AdapterRelease(adapter: adapter, version: version, sha256: sha256, parent: data["parent"] as? String,
                                     domain: domain, baseModel: "", baseModelSHA256: "", covers: covers, metrics: [:])
        guard release.isWellFormed else { return nil }
        self.id = id
        self.time = object["time"] as? String
        self.release = release
    }
}
