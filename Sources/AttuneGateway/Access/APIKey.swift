import AttuneRegistry
import Crypto
import Foundation

/// What a key may do.
public enum Role: String, Codable, Sendable, CaseIterable, Comparable {
    /// Post interactions and feedback for its tenants.
    case ingest
    /// Run completions, chat and scoring on base, domain and its tenants' adapters; list them.
    case infer
    /// Receive `adapter.updated` events of domains and its tenants (stream and webhooks).
    case subscribe
    /// Everything, every tenant, and domain corpora.
    case admin

    public static func < (a: Role, b: Role) -> Bool { a.rawValue < b.rawValue }
}

/// The tenants a key acts for: every tenant (`*`) or a fixed set.
public enum TenantScope: Sendable, Equatable, Codable {
    case all
    case only(Set<String>)

    public init(_ tenants: [String]) {
        self = tenants.contains("*") ? .all : .only(Set(tenants))
    }

    public func contains(_ tenant: String) -> Bool {
        switch self {
        case .all: return true
        case .only(let set): return set.contains(tenant)
        }
    }

    /// The scope as written in the key file and on the command line.
    public var list: [String] {
        switch self {
        case .all: return ["*"]
        case .only(let set): return set.sorted()
        }
    }

    public init(from decoder: any Decoder) throws {
        self.init(try decoder.singleValueContainer().decode([String].self))
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(list)
    }
}

/// One API key as the key file stores it: never the secret, only its SHA-256.
public struct APIKey: Codable, Sendable, Equatable {
    /// Public identifier (`key_` + 12 hex digits), shown by `attune keys list` and in logs.
    public var id: String
    public var name: String
    /// Hex SHA-256 of the secret.
    public var sha256: String
    public var tenants: TenantScope
    public var roles: [Role]
    /// Requests per minute; nil uses the server's default.
    public var rateLimit: Int?
    public var created: Date
    public var revoked: Date?

    /// The authenticated caller this key stands for.
    public var principal: Principal { Principal(keyID: id, tenants: tenants, roles: Set(roles), rateLimit: rateLimit) }
}

/// Who is calling: a key's identity, tenants and roles. With no key file the server runs
/// open on loopback and every caller is the `open` principal.
public struct Principal: Sendable, Equatable {
    public let keyID: String
    public let tenants: TenantScope
    public let roles: Set<Role>
    public let rateLimit: Int?

    public init(keyID: String, tenants: TenantScope, roles: Set<Role>, rateLimit: Int? = nil) {
        self.keyID = keyID
        self.tenants = tenants
        self.roles = roles
        self.rateLimit = rateLimit
    }

    /// The caller of a server without a key file.
    public static let open = Principal(keyID: "open", tenants: .all, roles: Set(Role.allCases), rateLimit: 0)

    public var isAdmin: Bool { roles.contains(.admin) }

    public func has(_ role: Role) -> Bool { isAdmin || roles.contains(role) }

    /// Whether this caller may act for `tenant` (admins act for all).
    public func actsFor(_ tenant: String) -> Bool { isAdmin || tenants.contains(tenant) }

    /// Whether this caller may use or follow `adapter`: every domain; its tenants (and their side
    /// lineages); a meta adapter, learned from many tenants' data, only as an admin.
    public func mayUse(_ adapter: AdapterName) -> Bool {
        switch adapter.kind {
        case .domain: true
        case .tenant: actsFor(adapter.liveID)
        case .meta: isAdmin
        }
    }
}

/// Secrets: `atk_` and 43 base64url characters (256 random bits).
enum KeySecret {
    static func generate() -> String {
        var bytes = [UInt8](repeating: 0, count: 32)
        var rng = SystemRandomNumberGenerator()
        for i in bytes.indices { bytes[i] = UInt8.random(in: 0...255, using: &rng) }
        let encoded = Data(bytes).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
        return "atk_" + encoded
    }

    static func digest(_ secret: String) -> String {
        SHA256.hash(data: Data(secret.utf8)).map { String(format: "%02x", $0) }.joined()
    }
}
