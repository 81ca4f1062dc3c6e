import ArgumentParser
import AttuneModel
import AttuneTokenizer
import AttuneTraining
import Foundation

/// `attune finetune`: train a LoRA / QLoRA adapter on a corpus or interaction log.
struct FinetuneCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "finetune",
        abstract: "Fine-tune a LoRA (fp32 base), QLoRA (4-bit base) or bottleneck adapter and save it in PEFT layout.",
        discussion: """
        --data takes a .jsonl file ({"text": …} corpus lines, or {"prompt", "response", "correction"?, "feedback"?} \
        interactions), a .txt/.md file, or a folder of them. Corpus text trains on every token; interactions on the \
        response (or the correction). A share of the examples is held out and evaluated before and after training.
        """)

    enum Method: String, ExpressibleByArgument, CaseIterable {
        case lora, qlora, adapter
    }

    @Option(help: "GGUF base model (default: $ATTUNE_MODEL, else the fetched base model).")
    var model: String?

    @Option(help: "Training data: .jsonl, .txt/.md, or a folder.")
    var data: String

    @Option(help: "lora (fp32 base), qlora (base kept 4-bit, dequantized per layer) or adapter (bottleneck modules, 4-bit base).")
    var method: Method = .qlora

    @Option(help: "Output folder for the PEFT adapter.")
    var out: String

    @Option(help: "A frozen adapter (PEFT folder) to train on top of, e.g. a domain adapter.")
    var baseAdapter: String?

    @Option(help: "LoRA rank.") var rank = 8
    @Option(help: "LoRA alpha.") var alpha: Float = 16
    @Option(help: "LoRA dropout.") var dropout: Float = 0
    @Flag(help: "rsLoRA scaling (alpha/√rank).") var rslora = false
    @Option(help: "Target projections, comma-separated (q,k,v,o,gate,up,down or PEFT names).")
    var targets = "q,k,v,o,gate,up,down"

    @Option(help: "Bottleneck size (--method adapter).") var bottleneckSize = 64
    @Option(help: "Bottleneck placements, comma-separated: attention,mlp.") var placements = "attention,mlp"
    @Option(help: "Bottleneck activation: silu or relu.") var activation = "silu"

    @Option(help: "Optimizer steps.") var steps = 100
    @Option(help: "Sequences per micro-batch.") var batchSize = 8
    @Option(help: "Tokens per sequence.") var seqLen = 256
    @Option(help: "Micro-batches per step.") var gradAccum = 1
    @Option(help: "Peak learning rate.") var lr: Float = 2e-4
    @Option(help: "Warmup steps.") var warmup = 10
    @Option(help: "Schedule after warmup: cosine or constant.") var schedule: LRSchedule.Kind = .cosine
    @Option(help: "AdamW weight decay.") var weightDecay: Float = 0
    @Option(help: "Clip the gradient norm (0 = off).") var clip: Float = 1
    @Option(help: "Random seed (initialization, data order, dropout).") var seed: UInt64 = 0
    @Option(help: "Fraction of examples held out for evaluation.") var evalFraction = 0.1
    @Option(help: "Save a resumable checkpoint every N steps (0 = only at the end).") var checkpointEvery = 0
    @Flag(help: "Resume from OUT/checkpoint.safetensors.") var resume = false
    @Flag(help: "Recompute activations in backward (less memory, ~30% more compute).") var recompute = false

    func validate() throws {
        guard rank > 0 else { throw ValidationError("--rank must be positive") }
        guard seqLen >= 8 else { throw ValidationError("--seq-len must be at least 8") }
        guard (0..<0.9).contains(evalFraction) else { throw ValidationError("--eval-fraction must be in [0, 0.9)") }
    }

    func run() throws {
        let path = try BaseModelStore().resolve(model)
        let base = try LlamaModel(path: path, mode: method == .lora ? .dense : .quantized)
        let tokenizer = try BPETokenizer(gguf: base.file)
        let targetList = try targets.split(separator: ",").map { name -> LinearTarget in
            guard let t = LinearTarget(peftName: String(name).trimmingCharacters(in: .whitespaces)) else {
                throw ValidationError("unknown target \(name) (use q,k,v,o,gate,up,down)")
            }
            return t
        }
        let loraConfig = LoRAConfig(rank: rank, alpha: alpha, dropout: dropout, useRSLoRA: rslora, targets: targetList)
        let frozen = try baseAdapter.map { try PEFTAdapterFile.load(from: URL(fileURLWithPath: $0), model: base.config) }
        let trainable: TrainableLlama
        let description: String
        if method == .adapter {
            let places = try placements.split(separator: ",").map { name -> BottleneckConfig.Placement in
                guard let p = BottleneckConfig.Placement(rawValue: String(name)) else { throw ValidationError("unknown placement \(name)") }
                return p
            }
            guard let act = BottleneckConfig.Activation(rawValue: activation) else { throw ValidationError("--activation must be silu or relu") }
            let b = try BottleneckAdapter(config: BottleneckConfig(size: bottleneckSize, placements: places, activation: act), model: base.config, seed: seed)
            trainable = try TrainableLlama(base: base, bottleneck: b, frozen: frozen, recompute: recompute, seed: seed)
            description = "bottleneck size \(bottleneckSize) after \(placements) (\(activation)) — \(b.parameterCount) parameters"
        } else {
            let lora = try LoRAAdapter(config: loraConfig, model: base.config, seed: seed)
            trainable = try TrainableLlama(base: base, lora: lora, frozen: frozen, recompute: recompute, seed: seed)
            description = "LoRA r=\(rank) α=\(alpha) on \(targetList.map(\.rawValue).joined(separator: ",")) — \(lora.parameterCount) parameters"
        }

        let examples = try ExampleBuilder(tokenizer: tokenizer).load(path: data)
        guard examples.count >= 1 else { throw ValidationError("\(data) holds no usable examples") }
        let every = evalFraction > 0 && examples.count >= 2 ? max(2, Int((1 / evalFraction).rounded())) : Int.max
        let held = examples.enumerated().filter { ($0.offset + 1) % every == 0 }.map(\.element)
        let train = examples.enumerated().filter { ($0.offset + 1) % every != 0 }.map(\.element)
        let trainSet = PackedDataset(examples: train, seqLen: seqLen, padToken: tokenizer.eosID)
        let evalSet = PackedDataset(examples: held, seqLen: seqLen, padToken: tokenizer.eosID)
        log("data: \(examples.count) examples → \(trainSet.rows.count) training rows (\(trainSet.targetCount) target tokens), \(held.count) held out (\(evalSet.targetCount) target tokens)")
        log("adapter: \(description); base \(method == .lora ? "fp32" : "4-bit")\(frozen == nil ? "" : " + frozen \(baseAdapter!)")")

        let config = TrainerConfig(steps: steps, batchSize: batchSize, gradientAccumulation: gradAccum,
                                   optimizer: AdamWConfig(learningRate: lr, weightDecay: weightDecay, clipNorm: clip > 0 ? clip : nil),
                                   schedule: schedule, warmupSteps: warmup, seed: seed)
        let trainer = try Trainer(model: trainable, data: trainSet, config: config)
        let outURL = URL(fileURLWithPath: out)
        try FileManager.default.createDirectory(at: outURL, withIntermediateDirectories: true)
        let checkpoint = outURL.appendingPathComponent("checkpoint.safetensors")
        if resume {
            try trainer.loadCheckpoint(from: checkpoint)
            log("resumed at step \(trainer.step)")
        }
        let before = evalSet.rows.isEmpty ? nil : Trainer.evaluate(trainable, evalSet)
        if let before { log(String(format: "held-out before: loss %.4f  perplexity %.3f", before.loss, before.perplexity)) }

        let progress = ProgressBar(total: steps)
        var tokens = 0, seconds = 0.0
        trainer.run { r in
            tokens += r.tokens
            seconds += r.seconds
            progress.update(step: r.step, loss: r.loss, lr: r.learningRate, tokensPerSecond: Double(tokens) / seconds)
            if checkpointEvery > 0 && r.step % checkpointEvery == 0 { try? trainer.saveCheckpoint(to: checkpoint) }
        }
        progress.finish()
        try trainer.saveCheckpoint(to: checkpoint)
        if let lora = trainable.lora {
            try PEFTAdapterFile.save(lora, to: outURL, baseModel: BaseModelStore.fileName)
        } else if let b = trainable.bottleneck {
            try BottleneckAdapterFile.save(b, to: outURL, baseModel: BaseModelStore.fileName)
        }
        if let before {
            let after = Trainer.evaluate(trainable, evalSet)
            log(String(format: "held-out after:  loss %.4f  perplexity %.3f  (before %.3f)", after.loss, after.perplexity, before.perplexity))
        }
        log(String(format: "trained %d tokens at %.0f tokens/s; peak RSS %.0f MB; adapter saved to %@",
                    tokens, Double(tokens) / max(seconds, 1e-9), PeakMemory.megabytes(), out))
    }

    private func log(_ s: String) {
        FileHandle.standardError.write(Data((s + "\n").utf8))
    }
}

/// A one-line progress bar on stderr: step, loss, learning rate, tokens/s and ETA.
final class ProgressBar {
    let total: Int
    private let start = ContinuousClock.now
    private var startStep: Int?

    init(total: Int) { self.total = total }

    func update(step: Int, loss: Double, lr: Float, tokensPerSecond: Double) {
        if startStep == nil { startStep = step - 1 }
        let done = Double(step) / Double(total)
        let width = 24
        let filled = Int(done * Double(width))
        let elapsed = (ContinuousClock.now - start).seconds
        let perStep = elapsed / Double(max(step - startStep!, 1))
        let eta = Int(perStep * Double(total - step))
        let bar = String(repeating: "█", count: filled) + String(repeating: "·", count: width - filled)
        let line = String(format: "\r%@ %d/%d  loss %.4f  lr %.2e  %.0f tok/s  ETA %dm%02ds ", bar, step, total, loss, lr,
                          tokensPerSecond, eta / 60, eta % 60)
        FileHandle.standardError.write(Data(line.utf8))
    }

    func finish() { FileHandle.standardError.write(Data("\n".utf8)) }
}

extension LRSchedule.Kind: ExpressibleByArgument {}
