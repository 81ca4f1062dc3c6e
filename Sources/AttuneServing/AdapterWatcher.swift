import AttuneEventLog
import AttuneRegistry
import Foundation
import Logging
import Synchronization

/// Follows the registry's topics for the whole life of a server: rebuilds every adapter's
/// versions on start (then the server is ready), and hands each version that becomes live to
/// the cache, which swaps it in when its adapter is in use.
public final class AdapterWatcher: Sendable {
    private let registry: AdapterRegistry
    private let cache: AdapterCache
    private let logger: Logger
    private let readiness = Atomic(false)
    private let health = LogHealth()

    public init(registry: AdapterRegistry, cache: AdapterCache, logger: Logger) {
        self.registry = registry
        self.cache = cache
        self.logger = logger
    }

    /// Whether the topics have been read to the end they had at start and the log answers.
    public var isReady: Bool { readiness.load(ordering: .acquiring) && health.answering }

    /// Runs until cancelled.
    public func run() async throws {
        let live = try await registry.catchUp()
        let names = await registry.names
        logger.info("adapter registry caught up", metadata: ["adapters": "\(names.count)", "versions": "\(live.count)"])
        await cache.loadPinned()
        readiness.store(true, ordering: .releasing)
        let probe = Task { [registry, health, logger] in
            await health.watch(probe: { try await registry.probe() }) { answering, error in
                if answering { logger.notice("the event log answers again") } else { logger.error("the event log does not answer: \(error.map { "\($0)" } ?? "")") }
            }
        }
        defer { probe.cancel() }
        while !Task.isCancelled {
            let fresh: [AdapterRelease]
            do {
                fresh = try await registry.poll(timeout: .milliseconds(100))
            } catch {
                if Task.isCancelled { break }
                logger.error("reading the adapter topics failed: \(error); retrying")
                try? await Task.sleep(for: .seconds(1))
                continue
            }
            for release in fresh {
                logger.debug("version live", metadata: ["adapter": "\(release.adapter)", "version": "\(release.version)"])
                await cache.offer(release)
            }
        }
    }
}

