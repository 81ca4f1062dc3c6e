import AttuneWorker
import ServiceLifecycle
import Synchronization

/// Runs training workers (restarted from the log after a log failure) until one is idle or the
/// service group shuts down gracefully (the worker then finishes the batch in hand, commits and
/// leaves its group).
struct WorkerService: Service {
    let supervisor: WorkerSupervisor
    let idle: Duration

    func run() async throws {
        let stop = StopRequest()
        try await withGracefulShutdownHandler {
            try await supervisor.run(idle: idle) { stop.requested.load(ordering: .acquiring) }
        } onGracefulShutdown: {
            stop.requested.store(true, ordering: .releasing)
        }
    }
}

/// Set once by graceful shutdown, read by the worker between batches.
final class StopRequest: Sendable {
    let requested = Atomic(false)
}
