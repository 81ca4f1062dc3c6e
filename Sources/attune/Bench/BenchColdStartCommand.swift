import ArgumentParser
import AttuneModel
import AttuneTokenizer
import AttuneTraining
import AttuneWorker
import Foundation

/// `attune bench cold-start`: a new tenant's held-out response loss after k of its interactions,
/// started from zero on the base model, from zero on the domain adapter (what a worker does
/// without a meta-initialization) and from the meta-initialization Reptile learned over the
/// domain's other tenants (what `attune meta-init` publishes).
struct BenchColdStartCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cold-start",
        abstract: "Measure cold start: a new tenant after k interactions from zero, from the domain adapter and from the meta-initialization.")

    @Option(help: "GGUF base model (default: $ATTUNE_MODEL, else the fetched base model).") var model: String?
    @Option(help: "Domain corpus (.jsonl, text file or folder).") var domain: String
    @Option(parsing: .upToNextOption, help: "The domain's existing tenants: one interactions file (.jsonl) each.") var tenants: [String]
    @Option(help: "The new tenant's interactions: the first max(k) train, the rest are held out.") var newcomer: String
    @Option(help: "Numbers of the new tenant's interactions to adapt on (comma-separated).") var k = "0,5,10,20"
    @Option(help: "Optimizer steps of the domain adapter on the corpus.") var domainSteps = 20
    @Option(help: "Passes over the new tenant's k interactions in each adaptation (the worker's --epochs).") var epochs = 4.0
    @Option(help: "Most optimizer steps of one adaptation (the worker's --max-steps).") var maxSteps = 16
    @Option(help: "Reptile outer iterations.") var iterations = 24
    @Option(help: "Reptile inner steps (one tenant's fine-tune).") var innerSteps = 3
    @Option(help: "Most tokens of one training row.") var seqLen = 128
    @Option(help: "Rows per optimizer step.") var batchSize = 2
    @Option(help: "AdamW learning rate of every stage.") var lr: Float = 1e-3
    @Option(help: "LoRA rank of every adapter (alpha = 2 × rank).") var rank = 8

    var counts: [Int] { k.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) } }

    func validate() throws {
        guard tenants.count >= 2 else { throw ValidationError("--tenants needs at least two interactions files, got \(tenants.count)") }
        let parts = k.split(separator: ",")
        guard !parts.isEmpty, counts.count == parts.count, counts.allSatisfy({ $0 >= 0 }) else {
            throw ValidationError("--k must be comma-separated counts ≥ 0, got \(k)")
        }
        guard epochs > 0 else { throw ValidationError("--epochs must be positive, got \(epochs)") }
        for (name, value) in [("--domain-steps", domainSteps), ("--max-steps", maxSteps), ("--iterations", iterations),
                              ("--inner-steps", innerSteps), ("--batch-size", batchSize)] where value <= 0 {
            throw ValidationError("\(name) must be positive, got \(value)")
        }
        guard seqLen > 1 else { throw ValidationError("--seq-len must be at least 2, got \(seqLen)") }
        guard lr > 0, lr < 1 else { throw ValidationError("--lr must be in (0, 1), got \(lr)") }
        guard (1...1024).contains(rank) else { throw ValidationError("--rank must be in 1…1024, got \(rank)") }
    }

    func run() async throws {
        let path = try BaseModelStore().resolve(model)
        let base = try LlamaModel(path: path, mode: .quantized)
        let builder = ExampleBuilder(tokenizer: try BPETokenizer(gguf: base.file))
        var config = TrainWorkerConfiguration(baseModel: (path as NSString).lastPathComponent, baseModelSHA256: "")
        config.seqLen = seqLen
        config.batchSize = batchSize
        config.learningRate = lr
        config.lora = LoRAConfig(rank: rank, alpha: Float(2 * rank))
        config.epochs = epochs
        config.maxSteps = maxSteps
        let reptile = Reptile(configuration: config, base: base)

        func interactions(_ file: String) throws -> [TrainingExample] {
            let examples = try builder.load(path: file)
            guard examples.allSatisfy({ $0.learn.contains(false) }) else {
                throw ValidationError("\(file) must hold interactions ({\"prompt\", \"response\"} lines), not corpus text")
            }
            return examples
        }
        let corpus = try builder.load(path: domain)
        let tasks = try tenants.map(interactions)
        let stream = try interactions(newcomer), most = counts.max() ?? 0
        guard stream.count >= most + 5 else {
            throw ValidationError("--newcomer needs at least \(most + 5) interactions (max k = \(most), and 5 held out); it has \(stream.count)")
        }
        let heldOut = Array(stream[most...])
        let started = ContinuousClock.now
        func elapsed() -> String { String(format: "%.0f s", (ContinuousClock.now - started).seconds) }

        let fresh = { (seed: UInt64) in try LoRAAdapter(config: config.lora, model: base.config, seed: seed) }
        let (domainAdapter, domainLoss, _) = try await reptile.adapt(try fresh(1), frozen: nil, on: corpus, steps: domainSteps)
        say(String(format: "domain adapter: %d steps on %d documents, training loss %.4f (%@)", domainSteps, corpus.count, domainLoss, elapsed()))
        var settings = MetaLearningSettings()
        settings.iterations = iterations
        settings.innerSteps = innerSteps
        let (meta, innerLoss) = try await reptile.learn(tasks, from: try fresh(2), frozen: domainAdapter, settings: settings)
        say(String(format: "meta-initialization: Reptile, %d iterations × %d steps over %d tenants (%d interactions), late inner loss %.4f (%@)",
                     iterations, innerSteps, tasks.count, tasks.map(\.count).reduce(0, +), innerLoss, elapsed()))
        say("new tenant: \(stream.count) interactions, the first k train (\(epochs) passes, at most \(maxSteps) steps), \(heldOut.count) held out")

        let starts: [(name: String, adapter: LoRAAdapter, frozen: LoRAAdapter?)] = [
            ("zero on base", try fresh(3), nil), ("zero on domain", try fresh(3), domainAdapter), ("meta on domain", meta, domainAdapter),
        ]
        var losses: [[Double]] = [], steps: [Int] = []
        for start in starts {
            var row: [Double] = []
            steps = []
            for count in counts {
                var adapted = start.adapter
                if count > 0 {
                    let trained = try await reptile.adapt(start.adapter, frozen: start.frozen, on: Array(stream.prefix(count)))
                    adapted = trained.adapter
                    steps.append(trained.steps)
                } else {
                    steps.append(0)
                }
                row.append(try reptile.evaluate(adapted, frozen: start.frozen, on: heldOut).loss)
            }
            losses.append(row)
        }
        func cells(_ values: [String]) -> String { values.map { String(repeating: " ", count: max(1, 9 - $0.count)) + $0 }.joined() }
        say("held-out response loss of the new tenant after k interactions (\(elapsed()) in all):")
        say("start".padding(toLength: 16, withPad: " ", startingAt: 0) + cells(counts.map { "k=\($0)" }))
        say("(steps)".padding(toLength: 16, withPad: " ", startingAt: 0) + cells(steps.map(String.init)))
        for (start, row) in zip(starts, losses) {
            say(start.name.padding(toLength: 16, withPad: " ", startingAt: 0) + cells(row.map { String(format: "%.4f", $0) }))
        }
        let holds = zip(losses[2], losses[1]).allSatisfy { $0 < $1 }
        say("meta < zero on domain at every k: \(holds ? "holds" : "does NOT hold")")
    }

    /// One line to standard output at once (unbuffered: a stage's line shows as it ends, also in a pipe).
    private func say(_ line: String) { FileHandle.standardOutput.write(Data((line + "\n").utf8)) }
}
