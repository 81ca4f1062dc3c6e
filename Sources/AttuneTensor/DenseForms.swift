import CAttuneKernels

/// The batch sizes at which a dense-mode decode step's products change form, per CPU: the
/// stored 4-bit blocks widened to fp32 in registers for the smallest batches
/// (`MatVec.multiply` with fp32 activations), dot-form panels along the rows above
/// (`attune_panel_gemm_rows`), and broadcast-form panels on column-major packed input
/// (`attune_panel_gemm`) from `broadcastMin` rows. Measured with `ops/bench/panels.sh` (the
/// forms on one thread over the model's matrix shapes).
public struct DenseForms: Sendable, Equatable {
    /// The largest batch widened in registers.
    public let directMax: Int
    /// The smallest batch multiplied by broadcast-form panels.
    public let broadcastMin: Int

    public init(directMax: Int, broadcastMin: Int) {
        self.directMax = directMax
        self.broadcastMin = broadcastMin
    }

    /// Full-width AVX-512 (Sapphire Rapids): broadcast tiles of 16 sequences reach 110–140
    /// GFLOP/s on one core against 60–100 for the dot form at 32–64 rows, and register widening
    /// keeps up with the panels to 4 rows (`attune bench serve`, 4 streams: 141 vs 138 tok/s).
    /// AVX2 (an AVX2-only AMD EPYC), and AVX-512 executed as two 256-bit halves (Zen 4): the dot
    /// form is as fast or faster up to 96 rows (Zen 4, AVX-512 path: 86.5 vs 66.9 GFLOP/s at 24
    /// rows, 90.5 vs 85.4 at 32, 98.6 vs 98.7 at 128), and the panels overtake register widening
    /// from 3–4 rows (Zen 4: 47.6 vs 34.8 at 4).
    public static func forCPU(_ isa: KernelISA, splits512: Bool = KernelISA.splits512BitOperations) -> DenseForms {
        isa == .avx512vnni && !splits512
            ? DenseForms(directMax: 4, broadcastMin: 24) : DenseForms(directMax: 2, broadcastMin: 128)
    }

    /// The forms for the kernels in use (`KernelISA.active`) on this CPU.
    public static let active = forCPU(.active)
}
