import ArgumentParser
import AttuneModel
import AttuneTraining
import Foundation

/// `attune bench forgetting`: a two-phase stream (phase-1 texts, then different phase-2 texts)
/// trained naively in sequence and with replay + regularization; prints the held-out losses.
struct BenchForgettingCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "forgetting",
        abstract: "Measure forgetting: naive sequential fine-tuning vs replay + L2-SP/EWC on a two-phase stream.")

    @Option(help: "GGUF base model (default: $ATTUNE_MODEL, else the fetched base model).") var model: String?
    @Option(help: "Phase-1 data (.jsonl, text file or folder).") var phase1: String
    @Option(help: "Phase-2 data (.jsonl, text file or folder).") var phase2: String
    @Option(help: "Optimizer steps per phase.") var steps = 20
    @Option var seqLen = 128
    @Option var batchSize = 4
    @Option var lr: Float = 1e-3
    @Option(help: "Replayed phase-1 examples per phase-2 example.") var replayRatio = 1.0
    @Option(help: "Regularizer in phase 2: l2sp or ewc.") var regularizer: String = "l2sp"
    @Option(help: "Regularization strength.") var strength: Float = 1.0

    func run() throws {
        guard let kind = Regularizer.Kind(rawValue: regularizer) else { throw ValidationError("--regularizer must be l2sp or ewc") }
        let stages = try StagedTraining(model: model, steps: steps, seqLen: seqLen, batchSize: batchSize, lr: lr)
        let base = stages.base
        let (p1, h1) = try stages.split(phase1), (p2, h2) = try stages.split(phase2)
        let held1 = stages.dataset(h1), held2 = stages.dataset(h2)
        func loss(_ m: TrainableLlama, _ d: PackedDataset) -> Double { Trainer.evaluate(m, d).loss }

        var rows: [(String, Double, Double, Double, Double)] = []
        for continual in [false, true] {
            let lora = try LoRAAdapter(config: LoRAConfig(rank: 8, alpha: 16), model: base.config, seed: 1)
            let m = try TrainableLlama(base: base, lora: lora)
            let start1 = loss(m, held1)
            var phase1Regularizer: Regularizer?
            if continual {
                phase1Regularizer = Regularizer(kind: kind, strength: strength, anchor: lora.parameters)
            }
            try stages.train(m, p1, regularizer: kind == .ewc ? phase1Regularizer : nil)
            let after1 = loss(m, held1)
            var phase2 = p2
            var reg: Regularizer?
            if continual {
                var replay = ReplayBuffer(capacity: 256, seed: 1)
                for e in p1 { replay.offer(e) }
                phase2 += replay.sample(Int(Double(p2.count) * replayRatio))
                reg = phase1Regularizer ?? Regularizer(kind: kind, strength: strength, anchor: lora.parameters)
                reg!.consolidate(at: lora.parameters)
            }
            try stages.train(m, phase2, regularizer: reg)
            rows.append((continual ? "replay + \(kind.rawValue)" : "naive sequential", start1, after1, loss(m, held1), loss(m, held2)))
        }
        print("method              phase-1 loss: base  after phase 1  after phase 2  forgetting   phase-2 loss")
        for r in rows {
            print(r.0.padding(toLength: 18, withPad: " ", startingAt: 0)
                  + String(format: " %18.4f %14.4f %14.4f %+11.4f %14.4f", r.1, r.2, r.3, r.3 - r.2, r.4))
        }
        let naive = rows[0], cont = rows[1]
        print(String(format: "forgetting ratio (continual / naive) = %.2f (target < 0.33); phase-2 loss ratio = %.3f (target ≤ 1.10)",
                     (cont.3 - cont.2) / max(naive.3 - naive.2, 1e-9), cont.4 / naive.4))
    }
}
