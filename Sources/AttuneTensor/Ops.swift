import Foundation

/// Elementwise and row-wise kernels of the transformer: RMSNorm, RoPE, softmax, SwiGLU.
public enum Ops {
    /// Rows below which the row-wise kernels stay on the calling core.
    public static let rowsPerCore = 32

    /// out[i] = x[i] / rms(x) · weight[i] for each of `rows` rows of length `n`, and each row's
    /// 1 / rms(x) in `rstd` when given (training keeps it for backward); many rows are split
    /// across the cores (each row computed alone).
    public static func rmsNorm(_ x: UnsafePointer<Float>, weight: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>,
                               rows: Int, n: Int, eps: Float, rstd: UnsafeMutablePointer<Float>? = nil) {
        Parallel.chunks(rows, minPerChunk: rowsPerCore) { part in
            for r in part {
                let xr = x + r * n
                let ss = MatVec.dot(xr, xr, n)
                let scale = 1 / (ss / Float(n) + eps).squareRoot()
                rstd?[r] = scale
                let o = out + r * n
                for i in 0..<n { o[i] = xr[i] * scale * weight[i] }
            }
        }
    }

    /// Rotary position embedding on adjacent pairs (GGUF/llama.cpp convention) of every head
    /// in a row of `heads × headDim` values at position `pos`.
    public static func rope(_ x: UnsafeMutablePointer<Float>, heads: Int, headDim: Int, pos: Int, table: RopeTable) {
        let half = headDim / 2
        let cs = table.cos + pos * half
        let sn = table.sin + pos * half
        for h in 0..<heads {
            let v = x + h * headDim
            for i in 0..<half {
                let a = v[2 * i]
                let b = v[2 * i + 1]
                v[2 * i] = a * cs[i] - b * sn[i]
                v[2 * i + 1] = a * sn[i] + b * cs[i]
            }
        }
    }

    /// Numerically stable softmax in place over `n` values.
    public static func softmax(_ x: UnsafeMutablePointer<Float>, _ n: Int) {
        let inv = 1 / expShifted(x, n).sum
        for j in 0..<n { x[j] *= inv }
    }

    /// x[i] = exp(x[i] − max) in place over `n` values; returns the max and the sum of the
    /// exponentials (softmax before its normalization).
    public static func expShifted(_ x: UnsafeMutablePointer<Float>, _ n: Int) -> (max: Float, sum: Float) {
        var mx = -Float.infinity
        for i in 0..<n { mx = max(mx, x[i]) }
        let raw = UnsafeMutableRawPointer(x)
        var acc = SIMD8<Float>()
        var i = 0
        while i + 8 <= n {
            let e = exp8(raw.loadUnaligned(fromByteOffset: 4 * i, as: SIMD8<Float>.self) - mx)
            raw.storeBytes(of: e, toByteOffset: 4 * i, as: SIMD8<Float>.self)
            acc += e
            i += 8
        }
        var sum = acc.sum()
        while i < n {
            x[i] = expf(x[i] - mx)
            sum += x[i]
            i += 1
        }
        return (mx, sum)
    }

    /// log-softmax of `n` logits into `out` (may alias `x`).
    public static func logSoftmax(_ x: UnsafePointer<Float>, _ n: Int, out: UnsafeMutablePointer<Float>) {
        let raw = UnsafeRawPointer(x)
        var m8 = SIMD8<Float>(repeating: -.infinity)
        var i = 0
        while i + 8 <= n {
            m8 = pointwiseMax8(m8, raw.loadUnaligned(fromByteOffset: 4 * i, as: SIMD8<Float>.self))
            i += 8
        }
        var mx = m8.max()
        for j in i..<n { mx = max(mx, x[j]) }
        var s8 = SIMD8<Float>()
        i = 0
        while i + 8 <= n {
            s8 += exp8(raw.loadUnaligned(fromByteOffset: 4 * i, as: SIMD8<Float>.self) - mx)
            i += 8
        }
        var sum = Double(s8.sum())
        for j in i..<n { sum += Double(expf(x[j] - mx)) }
        let logSum = Float(log(sum))
        for j in 0..<n { out[j] = (x[j] - mx) - logSum }
    }

    /// Lane-wise maximum (the generic `pointwiseMax` is not specialized in hot loops).
    @inline(__always)
    static func pointwiseMax8(_ a: SIMD8<Float>, _ b: SIMD8<Float>) -> SIMD8<Float> {
        var r = a
        for k in 0..<8 where b[k] > r[k] { r[k] = b[k] }
        return r
    }

    /// SwiGLU: gate[i] = silu(gate[i]) · up[i]; a large step is split across the cores in whole
    /// vectors, so each element takes the same path in any split.
    public static func swiglu(gate: UnsafeMutablePointer<Float>, up: UnsafePointer<Float>, count: Int) {
        Parallel.chunks(count, granule: 8, minPerChunk: 16384) { r in
            swigluSerially(gate: gate + r.lowerBound, up: up + r.lowerBound, count: r.count)
        }
    }

    private static func swigluSerially(gate: UnsafeMutablePointer<Float>, up: UnsafePointer<Float>, count: Int) {
        let g = UnsafeMutableRawPointer(gate), u = UnsafeRawPointer(up)
        var i = 0
        while i + 8 <= count {
            let x = g.loadUnaligned(fromByteOffset: 4 * i, as: SIMD8<Float>.self)
            let y = u.loadUnaligned(fromByteOffset: 4 * i, as: SIMD8<Float>.self)
            g.storeBytes(of: x / (1 + exp8(-x)) * y, toByteOffset: 4 * i, as: SIMD8<Float>.self)
            i += 8
        }
        while i < count {
            gate[i] = gate[i] / (1 + expf(-gate[i])) * up[i]
            i += 1
        }
    }

    /// y[i] += x[i].
    public static func add(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, count: Int) {
        for i in 0..<count { y[i] += x[i] }
    }
}

/// Precomputed RoPE cos/sin for positions 0..<maxPositions (θᵢ = base^(−2i/headDim)).
public final class RopeTable: @unchecked Sendable {
    public let cos: UnsafeMutablePointer<Float>
    public let sin: UnsafeMutablePointer<Float>
    public let maxPositions: Int
    public let headDim: Int

    public init(headDim: Int, maxPositions: Int, base: Float) {
        self.headDim = headDim
        self.maxPositions = maxPositions
        let half = headDim / 2
        cos = .allocate(capacity: maxPositions * half)
        sin = .allocate(capacity: maxPositions * half)
        for p in 0..<maxPositions {
            for i in 0..<half {
                let theta = Double(p) * pow(Double(base), -2 * Double(i) / Double(headDim))
                cos[p * half + i] = Float(Foundation.cos(theta))
                sin[p * half + i] = Float(Foundation.sin(theta))
            }
        }
    }

    deinit {
        cos.deallocate()
        sin.deallocate()
    }
}
