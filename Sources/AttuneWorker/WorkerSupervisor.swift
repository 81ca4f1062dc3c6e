import AttuneEventLog
import Logging
import Metrics
import Synchronization

/// Keeps a training worker running through event-log failures (a broker outage): when the
/// worker stops on an `EventLogError`, a new one starts after a backoff from what the log
/// holds — committed offsets, published versions, checkpoints — exactly as a restarted process
/// would, so nothing acknowledged is lost or trained twice. Other errors end the run, and so
/// does a full disk under the embedded log: restarting cannot help until space is freed.
public final class WorkerSupervisor: Sendable {
    private let make: @Sendable () throws -> TrainWorker
    private let current = Mutex<TrainWorker?>(nil)
    private let restarts: Counter
    private let logger: Logger
    private let backoff: (first: Duration, max: Duration)

    /// `make` builds a fresh worker (new consumer, new state) for each start.
    public init(metrics factory: any MetricsFactory = NOOPMetricsHandler.instance, logger: Logger,
                backoff: (first: Duration, max: Duration) = (.seconds(1), .seconds(10)),
                make: @escaping @Sendable () throws -> TrainWorker) {
        self.make = make
        self.logger = logger
        self.backoff = backoff
        restarts = Counter(label: "attune_worker_restarts_total", factory: factory)
    }

    /// Ready when the running worker is (not while it waits to restart).
    public var isReady: Bool { current.withLock { $0?.isReady ?? false } }

    /// What the workers did, summed over restarts.
    public var stats: WorkerStats {
        let running = current.withLock { $0?.stats } ?? WorkerStats()
        return statsSoFar.withLock { $0 } + running
    }
    private let statsSoFar = Mutex(WorkerStats())

    /// Runs workers until one returns (idle, or `stop`) or fails with an error that is not the log's.
    public func run(idle: Duration, stop: @escaping @Sendable () -> Bool) async throws {
        var delay = backoff.first
        while true {
            let worker = try make()
            current.withLock { $0 = worker }
            let started = ContinuousClock.now
            do {
                try await worker.run(idle: idle, stop: stop)
                return
            } catch let error as EventLogError where error.kind != .diskFull && !stop() && !Task.isCancelled {
                statsSoFar.withLock { $0 = $0 + worker.stats }
                current.withLock { $0 = nil }
                restarts.increment()
                if ContinuousClock.now - started > backoff.max * 2 { delay = backoff.first }
                logger.error("training worker stopped: \(error); starting again from the log in \(delay)")
                try await Task.sleep(for: delay)
                delay = min(delay * 2, backoff.max)
            }
        }
    }
}

extension WorkerStats {
    static func + (a: WorkerStats, b: WorkerStats) -> WorkerStats {
        var s = a
        s.published += b.published
        s.rejectedByGate += b.rejectedByGate
        s.deadLettered += b.deadLettered
        s.skippedAlreadyTrained += b.skippedAlreadyTrained
        s.examplesTrained += b.examplesTrained
        s.rebased += b.rebased
        s.reannounced += b.reannounced
        s.superseded += b.superseded
        return s
    }
}
