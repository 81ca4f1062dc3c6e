import CBLAS

/// Row-major single-precision GEMM on OpenBLAS: C = alpha·op(A)·op(B) + beta·C.
public enum Blas {
    public static func sgemm(transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int,
                             alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
                             b: UnsafePointer<Float>, ldb: Int,
                             beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int) {
        cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                    blasint(m), blasint(n), blasint(k), alpha, a, blasint(lda), b, blasint(ldb),
                    beta, c, blasint(ldc))
    }

    /// Y[m, out] = X[m, in] · Wᵀ for a row-major weight W[out, in].
    public static func linear(x: UnsafePointer<Float>, m: Int, inFeatures: Int,
                              weight: UnsafePointer<Float>, outFeatures: Int,
                              y: UnsafeMutablePointer<Float>, accumulate: Bool = false) {
        sgemm(transB: true, m: m, n: outFeatures, k: inFeatures, a: x, lda: inFeatures,
              b: weight, ldb: inFeatures, beta: accumulate ? 1 : 0, c: y, ldc: outFeatures)
    }

    /// Sets the number of OpenBLAS threads.
    public static func setThreads(_ n: Int) {
        openblas_set_num_threads(Int32(n))
    }
}
