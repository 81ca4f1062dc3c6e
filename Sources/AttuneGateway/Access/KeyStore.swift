import Foundation
import Synchronization

/// The API keys of a deployment, in one JSON file (`{"keys": [...]}`, mode 0600) that
/// `attune keys` edits and every server reads. Servers notice edits (a revoked key stops
/// working within a second) without a restart. Only SHA-256 digests of secrets are stored.
public final class KeyStore: Sendable {
    public let path: String
    private struct State {
        var keys: [APIKey] = []
        var byDigest: [String: APIKey] = [:]
        var modified: Date?
        var checked = ContinuousClock.now - .seconds(10)
    }
    private let state = Mutex(State())

    private struct File: Codable {
        var keys: [APIKey]
    }

    /// Opens the key file; it must exist unless `create` is set (then an empty one is written).
    public init(path: String, create: Bool = false) throws {
        self.path = path
        if !FileManager.default.fileExists(atPath: path) {
            guard create else { throw APIError(.badRequest, "key file \(path) does not exist (create a key with `attune keys create`)", code: "no_key_file") }
            try Self.write([], to: path)
        }
        try state.withLock { try Self.load(path, into: &$0) }
    }

    /// Every key, revoked ones included.
    public var keys: [APIKey] {
        refresh()
        return state.withLock { $0.keys }
    }

    /// The principal of a live key with this secret, or nil.
    public func authenticate(secret: String) -> Principal? {
        refresh()
        let digest = KeySecret.digest(secret)
        return state.withLock { state in
            guard let key = state.byDigest[digest], key.revoked == nil else { return nil }
            return key.principal
        }
    }

    /// Adds a key and returns it with its secret, which is shown once and stored nowhere.
    public func create(name: String, tenants: [String], roles: [Role], rateLimit: Int? = nil) throws -> (key: APIKey, secret: String) {
        guard !tenants.isEmpty else { throw APIError(.badRequest, "a key needs at least one tenant (or *)") }
        guard !roles.isEmpty else { throw APIError(.badRequest, "a key needs at least one role") }
        for tenant in tenants where tenant != "*" && !(1...128).contains(tenant.count) {
            throw APIError(.badRequest, "tenant \"\(tenant)\" must be 1–128 characters")
        }
        let secret = KeySecret.generate()
        let id = "key_" + KeySecret.digest(secret + "#id").prefix(12)
        let key = APIKey(id: id, name: name, sha256: KeySecret.digest(secret), tenants: TenantScope(tenants),
                         roles: Array(Set(roles)).sorted(), rateLimit: rateLimit, created: Date(), revoked: nil)
        try update { $0.append(key) }
        return (key, secret)
    }

    /// Marks a key revoked (kept in the file so that its id stays explained).
    @discardableResult
    public func revoke(id: String) throws -> APIKey {
        var revoked: APIKey?
        try update { keys in
            guard let i = keys.firstIndex(where: { $0.id == id }) else { return }
            if keys[i].revoked == nil { keys[i].revoked = Date() }
            revoked = keys[i]
        }
        guard let revoked else { throw APIError(.notFound, "no key \(id)", code: "unknown_key") }
        return revoked
    }

    private func update(_ change: (inout [APIKey]) -> Void) throws {
        try state.withLock { state in
            try Self.load(path, into: &state)
            var keys = state.keys
            change(&keys)
            try Self.write(keys, to: path)
            try Self.load(path, into: &state)
        }
    }

    /// Re-reads the file when it changed, at most once a second.
    private func refresh() {
        state.withLock { state in
            let now = ContinuousClock.now
            guard now - state.checked >= .seconds(1) else { return }
            state.checked = now
            let modified = (try? FileManager.default.attributesOfItem(atPath: path))?[.modificationDate] as? Date
            if modified != state.modified { try? Self.load(path, into: &state) }
        }
    }

    private static func load(_ path: String, into state: inout State) throws {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw APIError(.internalServerError, "cannot read key file \(path)", code: "key_file_unreadable")
        }
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        let file: File
        do {
            file = try decoder.decode(File.self, from: data)
        } catch {
            throw APIError(.internalServerError, "key file \(path) is not valid: \(error)", code: "key_file_invalid")
        }
        state.keys = file.keys
        state.byDigest = Dictionary(file.keys.map { ($0.sha256, $0) }, uniquingKeysWith: { a, _ in a })
        state.modified = (try? FileManager.default.attributesOfItem(atPath: path))?[.modificationDate] as? Date
        state.checked = ContinuousClock.now
    }

    private static func write(_ keys: [APIKey], to path: String) throws {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let data = try encoder.encode(File(keys: keys))
        let url = URL(fileURLWithPath: path)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        let temporary = path + ".tmp-\(getpid())"
        guard FileManager.default.createFile(atPath: temporary, contents: data, attributes: [.posixPermissions: 0o600]) else {
            throw APIError(.internalServerError, "cannot write \(temporary)", code: "key_file_unwritable")
        }
        guard rename(temporary, path) == 0 else {
            throw APIError(.internalServerError, "cannot replace \(path): \(String(cString: strerror(errno)))", code: "key_file_unwritable")
        }
    }
}
