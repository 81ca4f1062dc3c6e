import CBLAS

/// Row-major single-precision GEMM on OpenBLAS: C = alpha·op(A)·op(B) + beta·C.
public enum Blas {
    public static func sgemm(transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int,
                             alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
                             b: UnsafePointer<Float>, ldb: Int,
                             beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int) {
        configure
        cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                    blasint(m), blasint(n), blasint(k), alpha, a, blasint(lda), b, blasint(ldb),
                    beta, c, blasint(ldc))
    }

    /// Y[m, out] = X[m, in] · Wᵀ for a row-major weight W[out, in]. The output features are
    /// split across `Parallel`'s workers, each running single-threaded OpenBLAS on its slice.
    public static func linear(x: UnsafePointer<Float>, m: Int, inFeatures: Int,
                              weight: UnsafePointer<Float>, outFeatures: Int,
                              y: UnsafeMutablePointer<Float>, ldy: Int? = nil, accumulate: Bool = false) {
        let ldc = ldy ?? outFeatures
        let minSlice = max(16, 65536 / max(1, m * inFeatures / 64))
        Parallel.chunks(outFeatures, granule: 16, minPerChunk: minSlice) { cols in
            sgemm(transB: true, m: m, n: cols.count, k: inFeatures, a: x, lda: inFeatures,
                  b: weight + cols.lowerBound * inFeatures, ldb: inFeatures, beta: accumulate ? 1 : 0,
                  c: y + cols.lowerBound, ldc: ldc)
        }
    }

    /// dX[m, in] (+)= dY[m, out] · W[out, in]: the input gradient of `linear`, split across
    /// workers by input feature.
    public static func linearInputGradient(dy: UnsafePointer<Float>, m: Int, outFeatures: Int, ldy: Int? = nil,
                                           weight: UnsafePointer<Float>, inFeatures: Int,
                                           dx: UnsafeMutablePointer<Float>, accumulate: Bool) {
        let lda = ldy ?? outFeatures
        let minSlice = max(16, 65536 / max(1, m * outFeatures / 64))
        Parallel.chunks(inFeatures, granule: 16, minPerChunk: minSlice) { cols in
            sgemm(m: m, n: cols.count, k: outFeatures, a: dy, lda: lda, b: weight + cols.lowerBound, ldb: inFeatures,
                  beta: accumulate ? 1 : 0, c: dx + cols.lowerBound, ldc: inFeatures)
        }
    }

    /// OpenBLAS runs single-threaded inside Attune's own workers, so its threads never compete
    /// with the resident workers.
    public static let configure: Void = {
        openblas_set_num_threads(1)
    }()
}
