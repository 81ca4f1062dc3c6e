import ArgumentParser
import AttuneModel
import AttuneTensor
import AttuneTraining
import Foundation

/// `attune bench train`: LoRA training throughput, useful FLOP/s against this machine's
/// measured sgemm rate, and peak memory, as one JSON line (ops/bench/train.sh runs it side by
/// side with PyTorch + PEFT).
struct BenchTrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train", abstract: "Measure LoRA/QLoRA training tokens per second and FLOP utilization.")

    @Option(help: "GGUF base model (default: $ATTUNE_MODEL, else the fetched base model).")
    var model: String?

    @Option(help: "qlora (4-bit base) or lora (fp32 base).")
    var method: FinetuneCommand.Method = .qlora

    @Option var seq = 256
    @Option var batch = 8
    @Option var rank = 8
    @Option(help: "Timed optimizer steps (after one warmup step).") var steps = 3
    @Flag(help: "Recompute activations in backward.") var recompute = false

    func run() throws {
        let base = try LlamaModel(path: try BaseModelStore().resolve(model), mode: method == .qlora ? .quantized : .dense)
        let c = base.config
        let lora = try LoRAAdapter(config: LoRAConfig(rank: rank, alpha: Float(2 * rank)), model: c, seed: 1)
        let trainable = try TrainableLlama(base: base, lora: lora, recompute: recompute)
        var rng = SeededGenerator(seed: 42)
        let tokens = (0..<(seq * batch * (steps + 2) + 1)).map { _ in Int32.random(in: 100..<Int32(c.vocabSize), using: &rng) }
        let data = PackedDataset(examples: [TrainingExample(tokens: tokens, learn: Array(repeating: true, count: tokens.count))],
                                 seqLen: seq, padToken: 0)
        let trainer = try Trainer(model: trainable, data: data, config: TrainerConfig(
            steps: steps + 1, batchSize: batch, optimizer: AdamWConfig(learningRate: 1e-4), warmupSteps: 0))
        _ = trainer.trainStep()
        var seconds = 0.0, trained = 0
        for _ in 0..<steps {
            let r = trainer.trainStep()
            seconds += r.seconds
            trained += r.tokens
        }
        let perToken = Self.usefulFLOPsPerToken(c, seq: seq, rank: rank)
        let tokensPerSecond = Double(trained) / seconds
        let sgemm = Self.measureSgemm(m: seq * batch, n: c.ffnDim, k: c.dim)
        let result: [String: Any] = [
            "engine": "attune-\(method.rawValue)\(recompute ? "-recompute" : "")", "tokens_per_s": tokensPerSecond,
            "useful_gflops": tokensPerSecond * perToken / 1e9, "sgemm_gflops": sgemm,
            "utilization": tokensPerSecond * perToken / 1e9 / sgemm,
            "peak_rss_mb": PeakMemory.megabytes(), "seq": seq, "batch": batch, "rank": rank, "steps": steps,
        ]
        print(String(decoding: try JSONSerialization.data(withJSONObject: result, options: [.sortedKeys]), as: UTF8.self))
    }

    /// FLOPs a training token needs: 4× the base's multiply-adds (forward + input gradient, no
    /// weight gradient), causal attention (forward 2 products, backward 4), the tied head at
    /// every position (forward + input gradient), and LoRA (forward 2, backward 4 products per factor).
    static func usefulFLOPsPerToken(_ c: LlamaConfig, seq: Int, rank: Int) -> Double {
        let kv = Double(c.kvHeads * c.headDim), d = Double(c.dim), f = Double(c.ffnDim)
        let baseMACs = d * d * 2 + d * kv * 2 + 3 * d * f
        let attention = Double(c.heads * c.headDim) * Double(seq + 1) / 2 * 2 * 6
        let loraMACs = LinearTarget.allCases.reduce(0.0) { s, t in
            let (o, i) = t.shape(c)
            return s + Double(rank) * Double(o + i)
        }
        let perLayer = 4 * baseMACs + attention + 6 * loraMACs
        return Double(c.layers) * perLayer + 4 * Double(c.vocabSize) * d
    }

    /// This machine's sgemm rate (GFLOP/s) on a training-sized shape, through the same workers.
    static func measureSgemm(m: Int, n: Int, k: Int) -> Double {
        let a = FloatBuffer(m * k), b = FloatBuffer(n * k), out = FloatBuffer(m * n)
        for i in 0..<a.count { a[i] = Float(i % 7) * 0.1 }
        for i in 0..<b.count { b[i] = Float(i % 5) * 0.1 }
        Blas.linear(x: a.pointer, m: m, inFeatures: k, weight: b.pointer, outFeatures: n, y: out.pointer)
        let reps = 10
        let start = ContinuousClock.now
        for _ in 0..<reps { Blas.linear(x: a.pointer, m: m, inFeatures: k, weight: b.pointer, outFeatures: n, y: out.pointer) }
        return 2 * Double(m * n * k * reps) / (ContinuousClock.now - start).seconds / 1e9
    }
}
