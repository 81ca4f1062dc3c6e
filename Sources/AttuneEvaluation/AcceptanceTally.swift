import AttuneEventLog
import Foundation

/// The acceptance rate of served answers per adapter version, from the feedback on
/// `attune.interactions`: an interaction rated `up` counts as accepted, `down` as rejected
/// (a correction is a rejection with the better answer); the version is the interaction's
/// `served_by` (`attune serve` records it), or `unattributed` when the answer came from elsewhere.
public struct AcceptanceTally: Sendable, Equatable {
    public struct Count: Sendable, Equatable, Codable {
        public var accepted = 0
        public var rejected = 0
        public var rate: Double? { accepted + rejected > 0 ? Double(accepted) / Double(accepted + rejected) : nil }
    }

    public static let unattributed = "unattributed"

    /// Counts per `name@version`.
    public private(set) var byVersion: [String: Count] = [:]

    public init() {}

    /// Counts one interaction (ignored when it carries no rating), if it belongs to `tenant` (any when nil).
    public mutating func add(_ interaction: Interaction, tenant: String? = nil) {
        guard tenant == nil || interaction.tenant == tenant else { return }
        let version = interaction.served_by ?? Self.unattributed
        switch interaction.feedback {
        case "up": byVersion[version, default: Count()].accepted += 1
        case "down": byVersion[version, default: Count()].rejected += 1
        default: break
        }
    }

    /// Counts the interactions among `records` (other records are skipped).
    public mutating func add(_ records: [ConsumerRecord], tenant: String? = nil) {
        for r in records {
            guard let value = r.value, let interaction = try? JSONDecoder().decode(Interaction.self, from: Data(value)) else { continue }
            add(interaction, tenant: tenant)
        }
    }

    /// Versions in lineage order: by adapter name, then version number.
    public var versions: [String] {
        byVersion.keys.sorted { a, b in
            let (na, va) = Self.split(a), (nb, vb) = Self.split(b)
            return na != nb ? na < nb : va < vb
        }
    }

    private static func split(_ id: String) -> (String, Int) {
        guard let at = id.lastIndex(of: "@"), let v = Int(id[id.index(after: at)...]) else { return (id, 0) }
        return (String(id[..<at]), v)
    }
}
