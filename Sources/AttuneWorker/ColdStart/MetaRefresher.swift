import AttuneEventLog
import AttuneRegistry
import Logging
import Metrics

/// Keeps meta-initializations current as tenants accumulate: follows the registry and learns
/// the next version of `meta/<domain>` whenever at least `refreshAfter` more tenants stand on
/// the domain than its latest version was learned from (the first once `minimumTenants` do),
/// for the given domains or, without any, for every domain the registry holds.
public final class MetaRefresher {
    let initializer: MetaInitializer
    let domains: [AdapterName]?
    let settings: MetaLearningSettings
    let refreshAfter: Int
    let logger: Logger
    let factory: any MetricsFactory
    private var domainMetrics: [AdapterName: DomainMetrics] = [:]
    /// The tenant count at which a domain's last attempt failed; tried again once it changes.
    private var failedAt: [AdapterName: Int] = [:]

    public init(initializer: MetaInitializer, domains: [AdapterName]? = nil, settings: MetaLearningSettings, refreshAfter: Int,
                metrics: any MetricsFactory, logger: Logger) {
        self.initializer = initializer
        self.domains = domains
        self.settings = settings
        self.refreshAfter = max(1, refreshAfter)
        self.logger = logger
        factory = metrics
    }

    /// Live tenants per domain they stand on (their latest version's domain), for the followed domains.
    func tenantCounts() async -> [AdapterName: Int] {
        let registry = initializer.registry
        let names = await registry.names
        var counts: [AdapterName: Int] = [:]
        for domain in domains ?? names.filter({ $0.kind == .domain && !$0.isSideLineage }) { counts[domain] = 0 }
        for name in names where name.kind == .tenant && !name.isSideLineage {
            guard let domain = await registry.latest(name)?.domainReference?.name, let count = counts[domain] else { continue }
            counts[domain] = count + 1
        }
        return counts
    }

    /// Whether `domain`'s next version is due when `count` tenants stand on it.
    func isDue(_ domain: AdapterName, tenants count: Int) async -> Bool {
        guard count >= settings.minimumTenants, let name = AdapterName.meta(domain.id) else { return false }
        guard let latest = await initializer.registry.latest(name) else { return true }
        return count >= Int(latest.metrics["standing_tenants"] ?? latest.metrics["tenants"] ?? 0) + refreshAfter
    }

    /// Follows the registry until `stop` says so. Tenants are counted again whenever a version
    /// becomes live or this refresher published one. `stop` is also checked between the
    /// iterations of a version being learned, which is then abandoned unpublished (the next
    /// start learns it again). A version that
    /// cannot be learned (too few tenants with data, weights that do not verify) is logged and
    /// tried again when its domain's tenant count changes; an event-log failure ends the run.
    public func run(stop: @escaping @Sendable () -> Bool) async throws {
        var changed = true
        while !stop() {
            var published = false
            if changed {
                do {
                    for (domain, count) in await tenantCounts().sorted(by: { $0.key < $1.key }) {
                        published = try await refresh(domain, tenants: count, stop: stop) || published
                    }
                } catch is CancellationError {
                    logger.notice("stopped while learning a meta-initialization; nothing published")
                    return
                }
            }
            changed = try await !initializer.registry.poll(timeout: .seconds(1)).isEmpty || published
        }
    }

    /// Learns and publishes `domain`'s next version if it is due with `count` tenants and did
    /// not already fail at that count; returns whether it published one.
    private func refresh(_ domain: AdapterName, tenants count: Int, stop: @escaping @Sendable () -> Bool) async throws -> Bool {
        let m = metrics(of: domain)
        m.tenants.record(count)
        guard failedAt[domain] != count, await isDue(domain, tenants: count), !stop() else { return false }
        let started = ContinuousClock.now
        do {
            let release = try await initializer.run(domain: domain, settings: settings, stop: stop) { logger.info("\($0)") }
            m.learning.recordNanoseconds((ContinuousClock.now - started).nanoseconds)
            m.published.increment()
            failedAt[domain] = nil
            logger.notice("published \(release.id) on \(release.domain ?? "-") from \(count) tenants",
                          metadata: ["adapter": "\(release.adapter)", "version": "\(release.version)"])
            try await awaitLive(release, stop: stop)
            return true
        } catch let error as CancellationError {
            throw error
        } catch let error as EventLogError {
            throw error
        } catch {
            m.failures.increment()
            failedAt[domain] = count
            logger.error("cannot learn the next meta-initialization of \(domain): \(error)")
            return false
        }
    }

    /// Waits until the registry holds `release` live, so the next due check counts from it.
    private func awaitLive(_ release: AdapterRelease, stop: () -> Bool) async throws {
        guard let name = release.name else { return }
        let deadline = ContinuousClock.now + .seconds(120)
        while await (initializer.registry.latest(name)?.version ?? 0) < release.version {
            guard !stop(), ContinuousClock.now < deadline else {
                logger.warning("\(release.id) is not live in the registry yet; counting again from the registry's view")
                return
            }
            _ = try await initializer.registry.poll(timeout: .seconds(1))
        }
    }

    /// The metrics of one domain's meta-initialization.
    private struct DomainMetrics {
        let published: Counter
        let failures: Counter
        let tenants: Gauge
        let learning: Timer
    }

    private func metrics(of domain: AdapterName) -> DomainMetrics {
        if let m = domainMetrics[domain] { return m }
        let d = [("domain", domain.id)]
        let m = DomainMetrics(published: Counter(label: "attune_meta_versions_published_total", dimensions: d, factory: factory),
                              failures: Counter(label: "attune_meta_failures_total", dimensions: d, factory: factory),
                              tenants: Gauge(label: "attune_meta_domain_tenants", dimensions: d, factory: factory),
                              learning: Timer(label: "attune_meta_learn_seconds", dimensions: d, factory: factory))
        domainMetrics[domain] = m
        return m
    }
}
