import AttuneEventLog
import Foundation

/// A CloudEvents 1.0 `adapter.updated` event on `attune.adapter-events` (schema
/// `adapter-event.v1`): what subscribers hear of a new version.
public struct AdapterEvent: Codable, Sendable {
    /// What the event says of the version (the base model is only in the `attune.adapters` record).
    public struct Payload: Codable, Sendable {
        public var adapter: String
        /// The version number, as a string.
        public var version: String
        public var sha256: String
        /// `name@version` of the previous version; JSON null for a first version.
        public var parent: String?
        /// For a tenant adapter: its tenant id.
        public var tenant: String?
        /// For a tenant or meta adapter, the domain version it stands on (`domain/<id>@<version>`);
        /// for a domain adapter, its domain id.
        public var domain: String?
        public var covers: OffsetCoverage?
        /// The version's training and gate numbers (`train_loss`, `heldout_loss`, …), as in its release.
        public var metrics: [String: Double]?

        private enum CodingKeys: String, CodingKey { case adapter, version, sha256, parent, tenant, domain, covers, metrics }

        public func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(adapter, forKey: .adapter)
            try c.encode(version, forKey: .version)
            try c.encode(sha256, forKey: .sha256)
            try c.encode(parent, forKey: .parent)
            try c.encodeIfPresent(tenant, forKey: .tenant)
            try c.encodeIfPresent(domain, forKey: .domain)
            try c.encodeIfPresent(covers, forKey: .covers)
            if let metrics, !metrics.isEmpty { try c.encode(metrics, forKey: .metrics) }
        }
    }

    public var specversion = "1.0"
    public var type = "adapter.updated"
    public var source: String
    /// The CloudEvent id (`name@version#sha-prefix`): the same for a repeated announcement.
    public var id: String
    public var time: String?
    public var subject: String?
    public var datacontenttype: String? = "application/json"
    public var data: Payload

    /// The event announcing `release`, from `source`, now.
    public init(announcing release: AdapterRelease, source: String, time: Date = Date()) {
        self.source = source
        id = "\(release.id)#\(release.sha256.prefix(12))"
        self.time = ISO8601DateFormatter().string(from: time)
        subject = release.adapter
        let name = release.name
        data = Payload(adapter: release.adapter, version: "\(release.version)", sha256: release.sha256, parent: release.parent,
                       tenant: name?.kind == .tenant ? name?.id : nil,
                       domain: name?.standsOnDomain == true ? release.domain : name?.id, covers: release.covers,
                       metrics: release.metrics)
    }

    /// Decodes an event; nil if it is not a well-formed `adapter.updated` CloudEvent.
    public init?(_ bytes: [UInt8]) {
        guard let event = try? JSONDecoder().decode(AdapterEvent.self, from: Data(bytes)),
              event.specversion == "1.0", event.type == "adapter.updated", event.release.isWellFormed else { return nil }
        self = event
    }

    /// What the event says of the version, as a release.
    public var release: AdapterRelease {
        // A domain adapter's event names its own domain id; a tenant's or meta adapter's names the version it stands on.
        AdapterRelease(adapter: data.adapter, version: Int(data.version) ?? 0, sha256: data.sha256, parent: data.parent,
                       domain: AdapterName(parsing: data.adapter)?.standsOnDomain == true ? data.domain : nil,
                       baseModel: "", baseModelSHA256: "", covers: data.covers ?? [:], metrics: data.metrics ?? [:])
    }

    public func encoded() throws -> [UInt8] { Array(try JSONEncoder.sorted.encode(self)) }
}
