import AttuneWorker
import ServiceLifecycle
import Synchronization

/// Runs a training worker until it is idle or the service group shuts down gracefully (it
/// then finishes the batch in hand, commits and leaves its group).
struct WorkerService: Service {
    let worker: TrainWorker
    let idle: Duration

    func run() async throws {
        let stop = StopRequest()
        try await withGracefulShutdownHandler {
            try await worker.run(idle: idle) { stop.requested.load(ordering: .acquiring) }
        } onGracefulShutdown: {
            stop.requested.store(true, ordering: .releasing)
        }
    }
}

/// Set once by graceful shutdown, read by the worker between batches.
final class StopRequest: Sendable {
    let requested = Atomic(false)
}
