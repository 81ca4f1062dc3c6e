import AttuneModel
import AttuneRegistry
import AttuneTraining

/// One immutable thing requests can be served by: the base model, or one loaded, verified
/// adapter version — a domain adapter, or a tenant adapter stacked on the exact domain version
/// its release names. A new version is a new `ServedModel`; an existing one never changes,
/// so a request keeps the weights it was admitted with however many swaps happen meanwhile.
public final class ServedModel: Sendable {
    /// The adapter name, or nil for the base model.
    public let name: AdapterName?
    public let release: AdapterRelease?
    /// What the forward pass adds: this version's LoRA, stacked on its domain's for a tenant.
    public let adapter: (any LinearAdapter)?
    /// This version's own LoRA (without its domain's).
    let own: (any LinearAdapter)?
    /// Bytes of this version's own weights (its domain's are counted with the domain).
    public let bytes: Int
    /// The domain version a tenant stands on.
    public let domain: ServedModel?

    init(name: AdapterName?, release: AdapterRelease?, own: (any LinearAdapter)?, bytes: Int, domain: ServedModel?) {
        self.name = name
        self.release = release
        self.own = own
        adapter = own.map { own in domain?.own.map { AdapterStack([$0, own]) } ?? own }
        self.bytes = bytes
        self.domain = domain
    }

    /// The frozen base model alone.
    public static let base = ServedModel(name: nil, release: nil, own: nil, bytes: 0, domain: nil)

    /// The stack, lowest first: (version id, its own adapter) for the domain, then the tenant.
    var layers: [(id: String, adapter: any LinearAdapter)] {
        var out = domain?.layers ?? []
        if let own { out.append((id, own)) }
        return out
    }

    /// `name@version`, or `base`.
    public var id: String { release?.id ?? "base" }

    /// The release's content hash (empty for the base).
    public var sha256: String { release?.sha256 ?? "" }
}
