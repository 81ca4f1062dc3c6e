import CAttuneKernels
import CBLAS
import Foundation

/// Which OpenBLAS kernels this process runs. OpenBLAS picks them by CPU model when it loads; a
/// model it does not know gets its generic SSE3 kernels ("Prescott"): 0.3.21 on a Sapphire Rapids
/// Xeon runs sgemm at 38 GFLOP/s there against 213 with its AVX-512 kernels. `selectForThisCPU()`
/// re-executes the program with `OPENBLAS_CORETYPE` naming the kernels the CPU's features allow.
public enum BlasCore {
    /// The kernel set OpenBLAS loaded in this process.
    public static var loaded: String { String(cString: openblas_get_corename()) }

    /// The kernel set OpenBLAS chose by itself before `selectForThisCPU()` replaced it, if it did.
    public static var detectedByOpenBLAS: String? { ProcessInfo.processInfo.environment[detectedVariable] }

    /// The kernel set this CPU's features allow ("SkylakeX", "Haswell"), or nil without AVX2.
    public static var forThisCPU: String? { attune_openblas_core_for_cpu().map { String(cString: $0) } }

    /// OpenBLAS kernel sets built on AVX2 or AVX-512 (lower-cased, as compared).
    static let vectorCores: Set<String> = ["haswell", "zen", "skylakex", "cooperlake", "sapphirerapids", "excavator"]

    static let detectedVariable = "ATTUNE_OPENBLAS_DETECTED"

    /// The kernel set to load instead of `loaded`: nil when OpenBLAS already runs vector
    /// kernels, when `OPENBLAS_CORETYPE` pins a choice, or when the CPU has no AVX2.
    public static func replacement(loaded: String, cpu: String?, environment: [String: String]) -> String? {
        guard environment["OPENBLAS_CORETYPE"] == nil, let cpu, !vectorCores.contains(loaded.lowercased()) else { return nil }
        return cpu
    }

    /// Re-executes this program with the kernels `replacement` names; returns when there is
    /// nothing to replace or the program cannot be re-executed. Call it first in `main`.
    public static func selectForThisCPU() {
        let environment = ProcessInfo.processInfo.environment
        guard let core = replacement(loaded: loaded, cpu: forThisCPU, environment: environment) else { return }
        setenv(detectedVariable, loaded, 1)
        setenv("OPENBLAS_CORETYPE", core, 1)
        execv("/proc/self/exe", CommandLine.unsafeArgv)
        unsetenv("OPENBLAS_CORETYPE")
        unsetenv(detectedVariable)
    }
}
