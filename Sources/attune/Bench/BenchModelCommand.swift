import ArgumentParser
import AttuneModel
import AttuneTensor
import Foundation

/// `attune bench model`: prefill and decode throughput and peak memory of the base model,
/// as one JSON line (ops/bench/model.sh runs it side by side with llama.cpp), with the
/// machine's limits measured in the same run: memory read bandwidth (decode streams every
/// weight once per token, so weight bytes × tokens/s ÷ bandwidth is decode's share of its
/// bound) and the kernel level the CPU selected.
struct BenchModelCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "model", abstract: "Measure prefill/decode tokens per second and peak RSS.")

    @OptionGroup var modelOptions: ModelOptions

    @Option(help: "Prompt length in tokens.")
    var promptTokens = 256

    @Option(help: "New tokens decoded one at a time (batch 1).")
    var newTokens = 128

    @Option(help: "Timed repetitions (the best is reported).")
    var repeats = 3

    func run() throws {
        let (model, _) = try modelOptions.load()
        let prompt = BenchPrompt.tokens(promptTokens, vocab: model.config.vocabSize)
        var prefill: [Double] = []
        var decode: [Double] = []
        for _ in 0..<repeats {
            let cache = model.makeCache(capacity: promptTokens + newTokens)
            let t0 = ContinuousClock.now
            var logits = try model.forward(tokens: [prompt], caches: [cache], logits: .last)
            let t1 = ContinuousClock.now
            for _ in 0..<newTokens {
                var best = 0
                for i in 1..<logits.count where logits[i] > logits[best] { best = i }
                logits = try model.forward(tokens: [[Int32(best)]], caches: [cache], logits: .last)
            }
            let t2 = ContinuousClock.now
            prefill.append(Double(promptTokens) / (t1 - t0).seconds)
            decode.append(Double(newTokens) / (t2 - t1).seconds)
        }
        let peak = PeakMemory.megabytes()
        let read = MemoryBandwidth.readGBs(), triad = MemoryBandwidth.triadGBs()
        let bytesPerToken = Double(model.streamedBytesPerToken)
        // A prompt token's useful work: the layers' matrix products (the head runs for the last
        // position only), against sgemm's rate in this process.
        let flopsPerPromptToken = Double(2 * model.config.layerMatrixParameters)
        let sgemm = BenchTrainCommand.measureSgemm(m: 2048, n: 1536, k: 576)
        let result: [String: Any] = [
            "engine": "attune-\((modelOptions.weights ?? .quantized).rawValue)" + (model.prompts == .int8 ? "-int8-prompts" : ""),
            "prefill_tok_s": prefill.max()!, "decode_tok_s": decode.max()!,
            "kernels": KernelISA.active.description, "read_gb_s": read, "triad_gb_s": triad,
            "weight_mb_per_token": bytesPerToken / 1e6, "decode_share_of_bound": decode.max()! * bytesPerToken / 1e9 / read,
            "peak_rss_mb": peak, "sgemm_gflop_s": sgemm,
            "prefill_share_of_sgemm": prefill.max()! * flopsPerPromptToken / 1e9 / sgemm,
            "prompt_tokens": promptTokens, "new_tokens": newTokens,
        ]
        let data = try JSONSerialization.data(withJSONObject: result, options: [.sortedKeys])
        print(String(decoding: data, as: UTF8.self))
    }
}

/// The benchmark prompt: the same deterministic token ids on every engine.
enum BenchPrompt {
    static func tokens(_ n: Int, vocab: Int) -> [Int32] {
        (0..<n).map { Int32(($0 * 7919) % min(40000, vocab - 100) + 100) }
    }
}

/// Peak resident memory of this process (VmHWM).
enum PeakMemory {
    static func megabytes() -> Double {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
        for line in status.split(separator: "\n") where line.hasPrefix("VmHWM:") {
            let kb = line.split(separator: " ").compactMap { Double($0) }.first ?? 0
            return kb / 1024
        }
        return 0
    }
}

/// `attune bench …`: performance measurements.
struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench", abstract: "Benchmarks (see ops/bench for side-by-side runs).",
        subcommands: [BenchModelCommand.self, BenchTrainCommand.self, BenchServeCommand.self, BenchForgettingCommand.self,
                      BenchPersonalizationCommand.self, BenchColdStartCommand.self, BenchWorkersCommand.self, BenchMachineCommand.self])
}
