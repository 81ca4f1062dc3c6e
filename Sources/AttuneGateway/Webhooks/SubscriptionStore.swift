import Foundation
import Synchronization

/// A webhook subscription: where to deliver which `adapter.updated` events, how, and how far
/// delivery has come.
public struct Subscription: Codable, Sendable, Equatable {
    /// CloudEvents HTTP binding: `structured` (the whole event as
    /// `application/cloudevents+json`) or `binary` (`ce-*` headers, the data as the body).
    public enum Mode: String, Codable, Sendable { case structured, binary }

    public var id: String
    public var url: String
    public var mode: Mode
    public var adapters: [String]
    public var tenants: [String]
    public var domains: [String]
    /// The key that created it; deliveries stop while that key is revoked.
    public var keyID: String
    /// The tenants that key acted for at creation (events of others are never delivered).
    public var scope: TenantScope
    public var isAdmin: Bool
    /// The signing secret (`whsec_…`), returned once at creation.
    public var secret: String
    public var created: Date
    /// Where delivery resumes: everything before it was delivered (2xx) or filtered out.
    public var cursor: [Int64]?
    /// Set when the receiver answered 410 Gone: delivery stopped.
    public var disabled: String?
}

/// The webhook subscriptions of one gateway, in a JSON file in its state folder (mode 0600).
public final class SubscriptionStore: Sendable {
    public let path: String
    private let state: Mutex<[String: Subscription]>

    public init(path: String) throws {
        self.path = path
        var loaded: [String: Subscription] = [:]
        if let data = FileManager.default.contents(atPath: path) {
            let decoder = JSONDecoder()
            decoder.dateDecodingStrategy = .iso8601
            do {
                for s in try decoder.decode([Subscription].self, from: data) { loaded[s.id] = s }
            } catch {
                throw APIError(.internalServerError, "subscription file \(path) is not valid: \(error)", code: "subscriptions_invalid")
            }
        }
        state = Mutex(loaded)
    }

    public var all: [Subscription] { state.withLock { Array($0.values) }.sorted { $0.created < $1.created } }

    public func get(_ id: String) -> Subscription? { state.withLock { $0[id] } }

    public func add(_ subscription: Subscription) throws {
        try change { $0[subscription.id] = subscription }
    }

    @discardableResult
    public func remove(_ id: String) throws -> Bool {
        var removed = false
        try change { removed = $0.removeValue(forKey: id) != nil }
        return removed
    }

    /// Records delivery progress (ignored if the subscription was deleted meanwhile).
    public func advance(_ id: String, cursor: [Int64]) throws {
        try change { $0[id]?.cursor = cursor }
    }

    public func disable(_ id: String, reason: String) throws {
        try change { $0[id]?.disabled = reason }
    }

    private func change(_ body: (inout [String: Subscription]) -> Void) throws {
        try state.withLock { subscriptions in
            body(&subscriptions)
            let encoder = JSONEncoder()
            encoder.dateEncodingStrategy = .iso8601
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            let data = try encoder.encode(subscriptions.values.sorted { $0.created < $1.created })
            try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            let temporary = path + ".tmp"
            guard FileManager.default.createFile(atPath: temporary, contents: data, attributes: [.posixPermissions: 0o600]),
                  rename(temporary, path) == 0 else {
                throw APIError(.internalServerError, "cannot write \(path)", code: "subscriptions_unwritable")
            }
        }
    }
}
