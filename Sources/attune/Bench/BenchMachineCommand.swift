import ArgumentParser
import AttuneTensor
import Foundation

/// `attune bench machine`: what the benchmark tables are relative to — the CPU, its vector
/// features, the kernels Attune and OpenBLAS run, the sgemm rate and the memory read rate.
struct BenchMachineCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "machine", abstract: "Show the CPU features, the kernels in use, the sgemm rate and the memory read rate.")

    @Flag(help: "Print only the OpenBLAS kernel set this program runs (for OPENBLAS_CORETYPE in scripts).")
    var blasCore = false

    func run() throws {
        if blasCore {
            print(BlasCore.loaded)
            return
        }
        var result: [String: Any] = [
            "cpu": Self.cpuInfo("model name") ?? "unknown", "cores": ProcessInfo.processInfo.activeProcessorCount,
            "features": Self.cpuInfo("flags").map { flags in
                flags.split(separator: " ").map(String.init).filter { ["avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni"].contains($0) }
            } ?? [],
            "kernel_isa": KernelISA.active.description, "openblas_core": BlasCore.loaded,
            "splits_512_bit_ops": KernelISA.splits512BitOperations,
            "dense_forms": ["direct_max": DenseForms.active.directMax, "broadcast_min": DenseForms.active.broadcastMin],
            "sgemm_gflop_s": BenchTrainCommand.measureSgemm(m: 2048, n: 1536, k: 576),
            "read_gb_s": MemoryBandwidth.readGBs(),
        ]
        if let detected = BlasCore.detectedByOpenBLAS { result["openblas_detected"] = detected }
        print(String(decoding: try JSONSerialization.data(withJSONObject: result, options: [.sortedKeys]), as: UTF8.self))
    }

    /// The first `/proc/cpuinfo` line named `key`, without its name.
    static func cpuInfo(_ key: String) -> String? {
        guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix(key) {
            if let colon = line.firstIndex(of: ":") { return line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces) }
        }
        return nil
    }
}
