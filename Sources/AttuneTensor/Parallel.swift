import Foundation
import Synchronization

/// Splits index ranges across the machine's cores for the kernels that OpenBLAS does not run.
///
/// Decode calls a matrix-vector kernel ~200 times per token, so a dispatch-queue fan-out (a
/// thread wake-up per call) costs a quarter of the time. Instead, `workers − 1` resident
/// threads spin briefly on a generation counter and then sleep, and the caller runs the first
/// chunk itself.
public enum Parallel {
    /// Worker count: `ATTUNE_THREADS` if set (e.g. cores ÷ processes when several workers
    /// share a host), else the cores, capped at 8.
    public static let workers: Int = {
        if let text = ProcessInfo.processInfo.environment["ATTUNE_THREADS"], let n = Int(text), n > 0 { return min(n, 64) }
        return max(1, min(8, ProcessInfo.processInfo.activeProcessorCount))
    }()

    /// Runs `body` over `0..<count` in at most `workers` contiguous chunks (chunk boundaries are
    /// multiples of `granule`). Runs inline when the work is too small to split.
    public static func chunks(_ count: Int, granule: Int = 1, minPerChunk: Int = 64, _ body: (Range<Int>) -> Void) {
        let (n, units) = split(count, granule: granule, minPerWorker: minPerChunk)
        if n <= 1 {
            body(0..<count)
            return
        }
        withoutActuallyEscaping(body) { body in
            WorkerPool.shared.run(n) { i in
                let range = part(i, of: n, units: units, granule: granule, count: count)
                if !range.isEmpty { body(range) }
            }
        }
    }

    /// How many workers share `count` items (at least `minPerWorker` each; 1 means inline) and
    /// how many granules the items form.
    private static func split(_ count: Int, granule: Int, minPerWorker: Int) -> (workers: Int, units: Int) {
        (min(workers, max(1, count / max(minPerWorker, 1))), (count + granule - 1) / granule)
    }

    /// Part `p` of `0..<count` cut into `total` runs of whole granules.
    private static func part(_ p: Int, of total: Int, units: Int, granule: Int, count: Int) -> Range<Int> {
        min(count, (units * p / total) * granule)..<min(count, (units * (p + 1) / total) * granule)
    }
}

extension Parallel {
    /// Runs `body` over `0..<count` in contiguous pieces (boundaries are multiples of
    /// `granule`), about `perWorker` per worker, handed out one at a time to whichever thread is
    /// free: a core that is interrupted or slower leaves the rest of its share to the others,
    /// where `chunks` would make every core wait for it. For fan-outs whose pieces cost about the
    /// same and are independent (a batched decode step's products, adapter terms, attention).
    public static func pieces(_ count: Int, granule: Int = 1, minPerPiece: Int = 64, perWorker: Int = 4,
                              _ body: (Range<Int>) -> Void) {
        let (n, units) = split(count, granule: granule, minPerWorker: minPerPiece)
        if n <= 1 {
            body(0..<count)
            return
        }
        let total = min(units, n * perWorker)
        let next = PieceCounter()
        withoutActuallyEscaping(body) { body in
            WorkerPool.shared.run(n) { _ in
                while true {
                    let p = next.value.add(1, ordering: .relaxed).oldValue
                    if p >= total { break }
                    let range = part(p, of: total, units: units, granule: granule, count: count)
                    if !range.isEmpty { body(range) }
                }
            }
        }
    }
}

/// The next piece of a `Parallel.pieces` fan-out.
private final class PieceCounter: Sendable {
    let value = Atomic<Int>(0)
}

/// Resident worker threads that execute one fan-out job at a time.
final class WorkerPool: @unchecked Sendable {
    static let shared = WorkerPool(threads: Parallel.workers - 1)

    private let generation = Atomic<Int>(0)
    private let remaining = Atomic<Int>(0)
    private let sleeping = Atomic<Int>(0)
    private let condition = NSCondition()
    private let callers = NSLock()
    /// The current job, borrowed from the caller's stack for the duration of `run`.
    private var job: UnsafePointer<(Int) -> Void>?
    private var jobWidth = 0
    private let threads: Int

    /// Spin iterations before a worker goes to sleep (≈ 100 µs): long enough to bridge the
    /// gaps between the kernels of one forward pass, short enough to idle cheaply.
    private static let spins = 200_000

    init(threads: Int) {
        self.threads = threads
        for i in 0..<threads {
            let t = Thread { [unowned self] in self.workerLoop(index: i + 1) }
            t.name = "attune-worker-\(i + 1)"
            t.start()
        }
    }

    /// Runs `body(0..<n)` with index 0 on the calling thread; returns when all are done.
    func run(_ n: Int, _ body: @escaping (Int) -> Void) {
        withUnsafePointer(to: body) { run(n, $0) }
    }

    private func run(_ n: Int, _ body: UnsafePointer<(Int) -> Void>) {
        let width = min(n, threads + 1)
        callers.lock()
        defer { callers.unlock() }
        job = body
        jobWidth = width
        remaining.store(width - 1, ordering: .sequentiallyConsistent)
        generation.add(1, ordering: .sequentiallyConsistent)
        if sleeping.load(ordering: .sequentiallyConsistent) > 0 {
            condition.lock()
            condition.broadcast()
            condition.unlock()
        }
        body.pointee(0)
        while remaining.load(ordering: .acquiring) > 0 {}
        job = nil
    }

    private func workerLoop(index: Int) {
        var seen = 0
        while true {
            var spins = 0
            var current = generation.load(ordering: .acquiring)
            while current == seen {
                spins += 1
                if spins >= Self.spins {
                    condition.lock()
                    sleeping.add(1, ordering: .sequentiallyConsistent)
                    while generation.load(ordering: .sequentiallyConsistent) == seen { condition.wait() }
                    sleeping.subtract(1, ordering: .sequentiallyConsistent)
                    condition.unlock()
                    spins = 0
                }
                current = generation.load(ordering: .acquiring)
            }
            seen = current
            if index < jobWidth {
                job!.pointee(index)
                remaining.subtract(1, ordering: .releasing)
            }
        }
    }
}
