import AttuneTensor
import Foundation

/// This machine's memory bandwidth, measured STREAM-style through the same worker threads the
/// kernels use, on arrays far larger than the caches (best of several passes).
enum MemoryBandwidth {
    /// Read rate in GB/s: every core sums its share of one array (what decode does to weights).
    static func readGBs(megabytes: Int = 512, passes: Int = 5) -> Double {
        let n = megabytes << 18
        let a = UnsafeMutablePointer<Float>.allocate(capacity: n)
        defer { a.deallocate() }
        a.initialize(repeating: 1, count: n)
        let partial = UnsafeMutablePointer<Float>.allocate(capacity: 64)
        defer { partial.deallocate() }
        return best(passes, bytes: Double(n) * 4) {
            Parallel.chunks(n / 64, minPerChunk: 1) { range in
                var s0 = SIMD16<Float>(), s1 = SIMD16<Float>(), s2 = SIMD16<Float>(), s3 = SIMD16<Float>()
                let p = UnsafeRawPointer(a)
                for i in range {
                    let o = i * 256
                    s0 += p.loadUnaligned(fromByteOffset: o, as: SIMD16<Float>.self)
                    s1 += p.loadUnaligned(fromByteOffset: o + 64, as: SIMD16<Float>.self)
                    s2 += p.loadUnaligned(fromByteOffset: o + 128, as: SIMD16<Float>.self)
                    s3 += p.loadUnaligned(fromByteOffset: o + 192, as: SIMD16<Float>.self)
                }
                // One slot per chunk keeps the sums (and so the reads) live.
                partial[range.lowerBound * 63 / max(n / 64, 1)] = (s0 + s1 + s2 + s3).sum()
            }
        }
    }

    /// STREAM triad rate in GB/s: a[i] = b[i] + s·c[i], counting 3 arrays moved.
    static func triadGBs(megabytes: Int = 512, passes: Int = 5) -> Double {
        let n = megabytes << 18 / 3
        let a = UnsafeMutablePointer<Float>.allocate(capacity: n), b = UnsafeMutablePointer<Float>.allocate(capacity: n),
            c = UnsafeMutablePointer<Float>.allocate(capacity: n)
        defer { a.deallocate(); b.deallocate(); c.deallocate() }
        a.initialize(repeating: 0, count: n)
        b.initialize(repeating: 1, count: n)
        c.initialize(repeating: 2, count: n)
        return best(passes, bytes: Double(n) * 12) {
            Parallel.chunks(n, granule: 16, minPerChunk: 1 << 16) { range in
                for i in range { a[i] = b[i] + 3 * c[i] }
            }
        }
    }

    private static func best(_ passes: Int, bytes: Double, _ body: () -> Void) -> Double {
        body()
        var rate = 0.0
        for _ in 0..<passes {
            let start = ContinuousClock.now
            body()
            rate = max(rate, bytes / (ContinuousClock.now - start).seconds / 1e9)
        }
        return rate
    }
}
