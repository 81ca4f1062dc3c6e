import Foundation
import HTTPTypes
import Hummingbird
import Synchronization

/// Who may call the API: with a key file, every request carries `Authorization: Bearer <key>`
/// and gets its key's tenants and roles, within the key's rate limit; without one, the
/// server is open (and must listen on loopback only).
public final class AccessControl: Sendable {
    public let keys: KeyStore?
    /// Requests per minute per key when the key names none; 0 means unlimited.
    public let defaultRateLimit: Int
    private let buckets = Mutex([String: TokenBucket]())

    public init(keys: KeyStore?, defaultRateLimit: Int = 0) {
        self.keys = keys
        self.defaultRateLimit = defaultRateLimit
    }

    /// Open access, for a server bound to loopback without a key file.
    public static let open = AccessControl(keys: nil)

    public var isOpen: Bool { keys == nil }

    /// The caller of `request`, if it may use `role` (nil: any valid key); throws 401 (no or
    /// unknown key), 403 (role missing) or 429 (over its rate limit).
    public func authorize(_ request: Request, role: Role?) throws -> Principal {
        let principal = try authenticate(request.headers)
        if let role, !principal.has(role) {
            throw APIError(.forbidden, "this key does not have the \(role.rawValue) role", code: "missing_role")
        }
        try admit(principal)
        return principal
    }

    /// The principal named by the `Authorization` header (or `.open`).
    public func authenticate(_ headers: HTTPFields) throws -> Principal {
        guard let keys else { return .open }
        guard let value = headers[.authorization] else {
            throw APIError(.unauthorized, "an API key is required: Authorization: Bearer <key>", code: "missing_api_key")
        }
        let parts = value.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else {
            throw APIError(.unauthorized, "the Authorization header must be: Bearer <key>", code: "invalid_api_key")
        }
        guard let principal = keys.authenticate(secret: String(parts[1]).trimmingCharacters(in: .whitespaces)) else {
            throw APIError(.unauthorized, "the API key is unknown or revoked", code: "invalid_api_key")
        }
        return principal
    }

    private func admit(_ principal: Principal) throws {
        let perMinute = principal.rateLimit ?? defaultRateLimit
        guard perMinute > 0 else { return }
        let wait = buckets.withLock { buckets -> Double? in
            var bucket = buckets[principal.keyID] ?? TokenBucket(perMinute: perMinute)
            bucket.perMinute = perMinute
            let wait = bucket.take(now: ContinuousClock.now)
            buckets[principal.keyID] = bucket
            return wait
        }
        if let wait {
            var error = APIError(.tooManyRequests, "rate limit of \(perMinute) requests per minute exceeded", code: "rate_limit_exceeded")
            error.retryAfterSeconds = max(1, Int(wait.rounded(.up)))
            throw error
        }
    }
}

/// A token bucket refilled at `perMinute`/60 tokens per second, holding up to `perMinute`
/// tokens (a burst of a full minute's allowance).
struct TokenBucket {
    var perMinute: Int
    var tokens: Double
    var last: ContinuousClock.Instant?

    init(perMinute: Int) {
        self.perMinute = perMinute
        self.tokens = Double(perMinute)
    }

    /// Takes a token; nil if one was there, else the seconds until one will be.
    mutating func take(now: ContinuousClock.Instant) -> Double? {
        let rate = Double(perMinute) / 60
        if let last {
            let elapsed = now - last
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            tokens = min(Double(perMinute), tokens + seconds * rate)
        }
        last = now
        if tokens >= 1 {
            tokens -= 1
            return nil
        }
        return (1 - tokens) / rate
    }
}
