import AttuneEventLog
import AttuneRegistry
import Logging
import Metrics

/// Keeps `meta/<domain>` current as tenants accumulate: follows the registry and learns the
/// next version whenever at least `refreshAfter` more tenants stand on the domain than the
/// latest version was learned from (the first once `minimumTenants` do).
public final class MetaRefresher {
    let initializer: MetaInitializer
    let domain: AdapterName
    let settings: MetaLearningSettings
    let refreshAfter: Int
    let logger: Logger
    let published: Counter
    let failures: Counter
    let tenants: Gauge
    let learning: Timer

    public init(initializer: MetaInitializer, domain: AdapterName, settings: MetaLearningSettings, refreshAfter: Int,
                metrics: any MetricsFactory, logger: Logger) {
        self.initializer = initializer
        self.domain = domain
        self.settings = settings
        self.refreshAfter = max(1, refreshAfter)
        self.logger = logger
        let dimensions = [("domain", domain.id)]
        published = Counter(label: "attune_meta_versions_published_total", dimensions: dimensions, factory: metrics)
        failures = Counter(label: "attune_meta_failures_total", dimensions: dimensions, factory: metrics)
        tenants = Gauge(label: "attune_meta_domain_tenants", dimensions: dimensions, factory: metrics)
        learning = Timer(label: "attune_meta_learn_seconds", dimensions: dimensions, factory: metrics)
    }

    /// Tenants (live lineages) whose latest version stands on the domain.
    func tenantCount() async -> Int {
        let registry = initializer.registry
        var count = 0
        for name in await registry.names where name.kind == .tenant && !name.isSideLineage {
            if await registry.latest(name)?.domainReference?.name == domain { count += 1 }
        }
        return count
    }

    /// Whether a version is due when `count` tenants stand on the domain.
    func isDue(tenants count: Int) async -> Bool {
        guard count >= settings.minimumTenants, let name = AdapterName.meta(domain.id) else { return false }
        guard let latest = await initializer.registry.latest(name) else { return true }
        return count >= Int(latest.metrics["tenants"] ?? 0) + refreshAfter
    }

    /// Follows the registry until `stop` says so (checked between polls; a version being
    /// learned is finished first). A version that cannot be learned (too few tenants with
    /// data, a weight that does not verify) is logged and tried again when the count changes;
    /// an event-log failure ends the run.
    public func run(stop: @Sendable () -> Bool) async throws {
        var failedAt: Int?
        while !stop() {
            let count = await tenantCount()
            tenants.record(count)
            if count != failedAt, await isDue(tenants: count) {
                let started = ContinuousClock.now
                do {
                    let release = try await initializer.run(domain: domain, settings: settings) { logger.info("\($0)") }
                    learning.recordNanoseconds((ContinuousClock.now - started).nanoseconds)
                    published.increment()
                    failedAt = nil
                    logger.notice("published \(release.id) on \(release.domain ?? "-") from \(count) tenants",
                                  metadata: ["adapter": "\(release.adapter)", "version": "\(release.version)"])
                } catch let error as EventLogError {
                    throw error
                } catch {
                    failures.increment()
                    failedAt = count
                    logger.error("cannot learn the next meta-initialization of \(domain): \(error)")
                }
            }
            _ = try await initializer.registry.poll(timeout: .seconds(1))
        }
    }
}
