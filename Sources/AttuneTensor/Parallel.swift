import Dispatch

/// Splits index ranges across the machine's cores for the matrix-vector kernels.
public enum Parallel {
    /// Worker count; OpenBLAS uses its own threads for sgemm.
    public static let workers = max(1, min(8, sysconfThreads()))

    /// Runs `body` over `0..<count` in at most `workers` contiguous chunks (chunk sizes are
    /// multiples of `granule`). Runs inline when the work is too small to split.
    public static func chunks(_ count: Int, granule: Int = 1, minPerChunk: Int = 64, _ body: (Range<Int>) -> Void) {
        let n = min(workers, max(1, count / max(minPerChunk, 1)))
        if n <= 1 {
            body(0..<count)
            return
        }
        let units = (count + granule - 1) / granule
        withoutActuallyEscaping(body) { body in
            let work = UncheckedBox(body)
            DispatchQueue.concurrentPerform(iterations: n) { i in
                let lo = min(count, (units * i / n) * granule)
                let hi = min(count, (units * (i + 1) / n) * granule)
                if lo < hi { work.value(lo..<hi) }
            }
        }
    }

    private static func sysconfThreads() -> Int {
        #if canImport(Glibc)
        return Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))
        #else
        return 2
        #endif
    }
}

/// Carries a value whose thread-safety the caller guarantees into a concurrent closure
/// (the kernels write disjoint ranges of one output buffer).
struct UncheckedBox<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}

#if canImport(Glibc)
import Glibc
#endif
