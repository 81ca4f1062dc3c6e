import AttuneTestSupport
import Foundation
import Testing
@testable import AttuneTensor

@Suite struct BlasCoreTests {
    @Test func onlyAnUnrecognizedCPUGetsItsKernelsReplaced() {
        #expect(BlasCore.replacement(loaded: "Prescott", cpu: "SkylakeX", environment: [:]) == "SkylakeX")
        #expect(BlasCore.replacement(loaded: "Prescott", cpu: "Haswell", environment: [:]) == "Haswell")
        #expect(BlasCore.replacement(loaded: "Haswell", cpu: "SkylakeX", environment: [:]) == nil)
        #expect(BlasCore.replacement(loaded: "Zen", cpu: "Haswell", environment: [:]) == nil)
        #expect(BlasCore.replacement(loaded: "Prescott", cpu: nil, environment: [:]) == nil)
        #expect(BlasCore.replacement(loaded: "Prescott", cpu: "SkylakeX", environment: ["OPENBLAS_CORETYPE": "Prescott"]) == nil)
    }

    @Test func theCPUsKernelSetFollowsItsVectorFeatures() {
        switch KernelISA.detected {
        case .scalar: #expect(BlasCore.forThisCPU == nil)
        case .avx2, .avx512vnni: #expect(["Haswell", "SkylakeX"].contains(BlasCore.forThisCPU ?? "none"))
        }
    }

    /// The attune program, started without a pin, runs AVX2/AVX-512 kernels wherever the CPU has
    /// them (re-executed if OpenBLAS did not recognize the CPU), and keeps a pin it is given.
    @Test func theProgramRunsTheVectorKernelsTheCPUAllowsAndKeepsAPin() throws {
        func blasCore(pin: String?) throws -> String {
            let run = try runAttune(["bench", "machine", "--blas-core"], environment: pin.map { ["OPENBLAS_CORETYPE": $0] } ?? [:],
                                    unset: pin == nil ? ["OPENBLAS_CORETYPE", "ATTUNE_OPENBLAS_DETECTED"] : ["ATTUNE_OPENBLAS_DETECTED"])
            #expect(run.status == 0, "\(run.err)")
            return run.out.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        let unpinned = try blasCore(pin: nil)
        if BlasCore.forThisCPU != nil {
            #expect(BlasCore.vectorCores.contains(unpinned.lowercased()), "OpenBLAS runs \(unpinned) on a CPU with AVX2")
        }
        #expect(try blasCore(pin: "Prescott") == "Prescott")
    }
}
