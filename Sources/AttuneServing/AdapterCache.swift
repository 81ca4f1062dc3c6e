import AttuneModel
import AttuneRegistry
import AttuneTraining
import Foundation
import Logging

/// Why a model name could not be served.
public struct ServingError: Error, CustomStringConvertible, Sendable {
    public enum Kind: Sendable { case unknownModel, unavailable, invalidRequest, overloaded }
    public let kind: Kind
    public let message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public var description: String { message }
}

/// A request's hold on a loaded version: the cache never evicts a version while a lease on it
/// is out. Return it with `AdapterCache.release`.
public struct AdapterLease: Sendable {
    public let model: ServedModel
    let keys: [String]
}

/// The loaded adapter versions of an inference worker and, per adapter name, the version new
/// requests get.
///
/// - **Hot swap.** `current[name]` moves to a new version only after that version loaded and
///   verified, only forward, in one actor step: a request leases the version it resolved at
///   admission and keeps it to the end, so it finishes on the version it started with while
///   requests admitted after the swap get the new one. A version that fails verification or
///   will not load is refused (logged, counted) and the previous one keeps serving.
/// - **Budget.** Loaded weights are kept within `memoryBudget` bytes by evicting the least
///   recently used versions that no request holds and that are not pinned; a tenant's entry
///   holds a lease on its domain version. When every resident version is in use the budget is
///   exceeded rather than failing a request, and the overshoot is visible in the metrics.
public actor AdapterCache {
    private struct Entry {
        let model: ServedModel
        var leases = 0
        var lastUse: UInt64
        /// Keys this entry holds leases on (a tenant's domain version).
        let holds: [String]
    }

    private let registry: AdapterRegistry
    private let config: LlamaConfig
    private let memoryBudget: Int
    private let pinned: Set<AdapterName>
    private let precision: AdapterPrecision
    private let metrics: ServingMetrics
    private let logger: Logger
    private var entries: [String: Entry] = [:]
    private var loading: [String: Task<ServedModel, Error>] = [:]
    /// The version new requests for a name get.
    private var current: [AdapterName: AdapterRelease] = [:]
    /// Versions that failed verification or loading, never tried again.
    private var refused: Set<String> = []
    private var clock: UInt64 = 0
    private(set) var residentBytes = 0

    /// Loaded versions hold their weights in `precision`.
    public init(registry: AdapterRegistry, config: LlamaConfig, memoryBudget: Int, pinned: Set<AdapterName> = [],
                precision: AdapterPrecision = .int8, metrics: ServingMetrics, logger: Logger) {
        self.registry = registry
        self.config = config
        self.memoryBudget = memoryBudget
        self.pinned = pinned
        self.precision = precision
        self.metrics = metrics
        self.logger = logger
    }

    /// The version a model name resolves to for a new request, loaded and leased:
    /// `base`, `domain/X` or `tenant/Y` (the current version), `name@N` (exactly that one).
    public func acquire(_ model: String) async throws -> AdapterLease {
        if model == "base" { return AdapterLease(model: .base, keys: []) }
        guard let reference = AdapterReference(parsing: model) else {
            throw ServingError(.unknownModel, "model \"\(model)\" is not base, domain/<id>, tenant/<id> or <name>@<version>")
        }
        let release: AdapterRelease
        if reference.version != nil {
            release = try await resolve(reference)
        } else {
            // A version announced while this name was not in use yet (or while its first load
            // was in flight) was not swapped in by `offer`: catch up here, never backwards.
            if let newest = await registry.latest(reference.name), newest.version > (current[reference.name]?.version ?? 0),
               !refused.contains(newest.id) {
                await swapIn(newest)
            }
            if let live = current[reference.name] {
                release = live
            } else {
                release = try await newestLoadable(reference.name)
            }
        }
        if entries[release.id] != nil { metrics.cacheHits.increment() }
        let served = try await load(release)
        if reference.version == nil, (current[reference.name]?.version ?? 0) < release.version {
            current[reference.name] = release
        }
        entries[served.id]?.leases += 1
        entries[served.id]?.lastUse = tick()
        evictToBudget()
        return AdapterLease(model: served, keys: [served.id])
    }

    /// Gives a lease back.
    public func release(_ lease: AdapterLease) {
        for key in lease.keys { entries[key]?.leases -= 1 }
        evictToBudget()
    }

    /// A new live version from the registry: loaded and swapped in now when its name is in
    /// use (resident, loading or pinned), otherwise loaded on its first request. Returns the
    /// swapped-in model, or nil.
    @discardableResult
    public func offer(_ release: AdapterRelease) async -> ServedModel? {
        guard let name = release.name, !refused.contains(release.id) else { return nil }
        let inUse = pinned.contains(name) || current[name] != nil || entries.values.contains { $0.model.name == name }
            || loading.keys.contains { AdapterReference(parsing: $0)?.name == name }
        guard inUse else { return nil }
        return await swapIn(release)
    }

    /// Loads `release` and makes it the version new requests for its name get, if it is newer
    /// than the current one. Returns the loaded model when it was swapped in.
    @discardableResult
    private func swapIn(_ release: AdapterRelease) async -> ServedModel? {
        guard let name = release.name else { return nil }
        if let live = current[name], live.version >= release.version { return nil }
        let started = ContinuousClock.now
        do {
            let served = try await load(release)
            if let live = current[name], live.version >= release.version { return nil }
            current[name] = release
            metrics.swaps.increment()
            metrics.swapLatency.recordNanoseconds((ContinuousClock.now - started).nanoseconds)
            logger.info("swapped in \(release.id)", metadata: ["adapter": "\(name)", "version": "\(release.version)",
                                                                "sha256": "\(release.sha256.prefix(12))"])
            evictToBudget()
            return served
        } catch {
            return nil
        }
    }

    /// Loads the pinned adapters' current versions (at start).
    public func loadPinned() async {
        for name in pinned.sorted() {
            guard let release = try? await newestLoadable(name) else {
                logger.warning("pinned adapter \(name) has no loadable version yet")
                continue
            }
            _ = try? await load(release)
        }
    }

    /// The version new requests for `name` get (nil: none loaded yet).
    public func currentVersion(_ name: AdapterName) -> AdapterRelease? { current[name] }

    /// What is resident: version ids with their bytes and leases.
    public func resident() -> [(id: String, bytes: Int, leases: Int)] {
        entries.map { ($0.key, $0.value.model.bytes, $0.value.leases) }.sorted { $0.id < $1.id }
    }

    private func resolve(_ reference: AdapterReference) async throws -> AdapterRelease {
        do {
            return try await registry.resolve(reference)
        } catch let error as RegistryError {
            throw ServingError(.unknownModel, error.message)
        }
    }

    /// The newest live version of `name` that has not been refused.
    private func newestLoadable(_ name: AdapterName) async throws -> AdapterRelease {
        let live = await registry.liveVersions(name)
        guard let release = live.first(where: { !refused.contains($0.id) }) else {
            if await registry.history(name).isEmpty { throw ServingError(.unknownModel, "no adapter named \(name)") }
            throw ServingError(.unavailable, "\(name) has no loadable version yet")
        }
        return release
    }

    /// The loaded model of a release, loading (and verifying) it once however many ask at once.
    private func load(_ release: AdapterRelease) async throws -> ServedModel {
        if let entry = entries[release.id] { return entry.model }
        if refused.contains(release.id) { throw ServingError(.unavailable, "\(release.id) was refused: it failed verification or loading") }
        if let pending = loading[release.id] { return try await pending.value }
        let task = Task { try await self.fetchAndBuild(release) }
        loading[release.id] = task
        defer { loading[release.id] = nil }
        do {
            let served = try await task.value
            if entries[served.id] == nil {
                let holds = served.domain.map { [$0.id] } ?? []
                for held in holds { entries[held]?.leases += 1 }
                entries[served.id] = Entry(model: served, lastUse: tick(), holds: holds)
                residentBytes += served.bytes
                metrics.cacheBytes.record(residentBytes)
            }
            return served
        } catch let error as DomainUnavailable {
            throw ServingError(.unavailable, error.message)
        } catch {
            refused.insert(release.id)
            metrics.refusedVersions.increment()
            logger.error("refused \(release.id): \(error)", metadata: ["adapter": "\(release.adapter)", "version": "\(release.version)"])
            throw ServingError(.unavailable, "\(release.id) was refused: \(error)")
        }
    }

    private func fetchAndBuild(_ release: AdapterRelease) async throws -> ServedModel {
        metrics.cacheMisses.increment()
        var domain: ServedModel?
        if release.name?.standsOnDomain == true, let reference = release.domainReference {
            do {
                domain = try await load(try await registry.resolve(reference))
            } catch {
                throw DomainUnavailable(message: "domain \(reference) of \(release.id) is not available: \(error)")
            }
        }
        let bytes = try await registry.weights(of: release)
        let lora = ServingLoRA(try PEFTAdapterFile.decode(published: Data(bytes), model: config), precision: precision)
        return ServedModel(name: release.name, release: release, own: lora, bytes: lora.byteCount, domain: domain)
    }

    private func tick() -> UInt64 {
        clock += 1
        return clock
    }

    /// Evicts least recently used, unleased, unpinned versions while over budget. A name's
    /// current version may go (it is loaded again on its next request); `current` stays.
    private func evictToBudget() {
        while residentBytes > memoryBudget {
            let candidates = entries.filter { $0.value.leases == 0 && !($0.value.model.name.map(pinned.contains) ?? false) }
            guard let victim = candidates.min(by: { $0.value.lastUse < $1.value.lastUse }) else { break }
            entries[victim.key] = nil
            residentBytes -= victim.value.model.bytes
            for held in victim.value.holds { entries[held]?.leases -= 1 }
            metrics.cacheEvictions.increment()
        }
        metrics.cacheBytes.record(residentBytes)
    }
}

/// A tenant version whose domain version cannot be loaded (now): the tenant is not refused.
private struct DomainUnavailable: Error {
    let message: String
}
