/// What an adapter adapts: a domain (stage 1, on the base model) or a tenant (stage 2, on a
/// domain adapter); a meta adapter (`meta/<domain>`) is the meta-learned starting point of a
/// domain's new tenants, standing on that domain like a tenant.
public enum AdapterKind: String, Sendable, CaseIterable, Codable, Comparable {
    case domain, tenant, meta

    public static func < (a: AdapterKind, b: AdapterKind) -> Bool { a.rawValue < b.rawValue }
}

/// A typed adapter name, written `domain/<id>`, `tenant/<id>` or `meta/<domain id>` on the topics and in the API.
/// The id is the domain or tenant key of the input records (1–128 characters, no control
/// characters).
public struct AdapterName: Hashable, Sendable, Comparable, CustomStringConvertible {
    public let kind: AdapterKind
    public let id: String

    public init?(_ kind: AdapterKind, _ id: String) {
        guard (1...128).contains(id.count), !id.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
            return nil
        }
        self.kind = kind
        self.id = id
    }

    /// Parses `domain/<id>` or `tenant/<id>`.
    public init?(parsing text: String) {
        guard let slash = text.firstIndex(of: "/"), let kind = AdapterKind(rawValue: String(text[..<slash])) else { return nil }
        self.init(kind, String(text[text.index(after: slash)...]))
    }

    public static func domain(_ id: String) -> AdapterName? { AdapterName(.domain, id) }
    public static func tenant(_ id: String) -> AdapterName? { AdapterName(.tenant, id) }
    public static func meta(_ id: String) -> AdapterName? { AdapterName(.meta, id) }

    /// Whether its versions stand on a domain version (tenants and meta adapters do).
    public var standsOnDomain: Bool { kind != .domain }

    public var description: String { "\(kind.rawValue)/\(id)" }

    /// A side lineage (`tenant/acme~replay-2026-12-03`): versions built beside a live adapter,
    /// served and evaluated like any other but never trained on by the workers. Live adapters'
    /// ids hold no `~`.
    public var isSideLineage: Bool { id.contains("~") }

    /// The id of the live adapter a side lineage stands beside (the id itself for a live
    /// adapter): whoever may use `tenant/acme` may use `tenant/acme~replay-1`.
    public var liveID: String { String(id.prefix { $0 != "~" }) }

    public static func < (a: AdapterName, b: AdapterName) -> Bool { (a.kind, a.id) < (b.kind, b.id) }
}

/// An adapter name with an optional exact version: `tenant/acme` (its latest version) or
/// `tenant/acme@12`. A trailing `@<digits>` is the version; any other `@` belongs to the id.
public struct AdapterReference: Hashable, Sendable, CustomStringConvertible {
    public let name: AdapterName
    public let version: Int?

    public init(_ name: AdapterName, version: Int? = nil) {
        self.name = name
        self.version = version
    }

    public init?(parsing text: String) {
        if let at = text.lastIndex(of: "@"), let version = Int(text[text.index(after: at)...]),
           text[text.index(after: at)...].allSatisfy(\.isASCII) {
            guard version > 0, let name = AdapterName(parsing: String(text[..<at])) else { return nil }
            self.init(name, version: version)
        } else {
            guard let name = AdapterName(parsing: text) else { return nil }
            self.init(name)
        }
    }

    public var description: String { version.map { "\(name)@\($0)" } ?? name.description }
}
