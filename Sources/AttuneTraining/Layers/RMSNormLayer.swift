import AttuneTensor

/// RMSNorm with a frozen gain: y = x · rstd · w, rstd = 1/√(mean(x²) + ε). Rows are split
/// across the cores; each row is computed alone.
enum RMSNormLayer {
    /// Writes y and the per-row rstd (kept for backward).
    static func forward(_ x: UnsafePointer<Float>, weight: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>,
                        rstd: UnsafeMutablePointer<Float>, rows: Int, n: Int, eps: Float) {
        Ops.rmsNorm(x, weight: weight, out: y, rows: rows, n: n, eps: eps, rstd: rstd)
    }

    /// dx += rstd · (w⊙dy − x · rstd² · mean(w⊙dy⊙x)).
    static func backward(_ dy: UnsafePointer<Float>, x: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                         rstd: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>, rows: Int, n: Int) {
        Parallel.chunks(rows, minPerChunk: Ops.rowsPerCore) { part in
            for r in part {
                let xr = x + r * n, dyr = dy + r * n, dxr = dx + r * n
                let s = rstd[r]
                var dot: Float = 0
                for i in 0..<n { dot += weight[i] * dyr[i] * xr[i] }
                let c = dot * s * s / Float(n)
                for i in 0..<n { dxr[i] += s * (weight[i] * dyr[i] - xr[i] * c) }
            }
        }
    }
}
