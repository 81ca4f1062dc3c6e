import AttuneModel
import AttuneTokenizer
import AttuneTraining

/// First-order meta-learning (Reptile, Nichol, Achiam & Schulman 2018) with the workers' own
/// trainer, packing, learning rate and row budget: each iteration fine-tunes a copy of the
/// current initialization φ on one task (one tenant's examples) for a few steps over the frozen
/// base and domain adapter, and moves φ toward the result, φ ← φ + ε(θ − φ), ε annealed
/// linearly to 0. φ is then a point from which a few steps on any of these tasks go far.
public struct Reptile {
    public let configuration: TrainWorkerConfiguration
    let candidates: CandidateTrainer

    public init(configuration: TrainWorkerConfiguration, base: LlamaModel) {
        self.configuration = configuration
        candidates = CandidateTrainer(base: base, config: configuration.trainerConfig, seed: configuration.seed)
    }

    /// φ learned from `start` over `tasks`, and the mean training loss of the last quarter of
    /// the inner fine-tunes. `stop` is checked between iterations: once it says so, learning is
    /// abandoned with `CancellationError`.
    public func learn(_ tasks: [[TrainingExample]], from start: LoRAAdapter, frozen: LoRAAdapter?, settings: MetaLearningSettings,
                      stop: () -> Bool = { false }, progress: (String) -> Void = { _ in }) async throws -> (LoRAAdapter, Double) {
        guard tasks.contains(where: { !$0.isEmpty }) else { throw TrainingError.badData("meta-learning needs at least one task with examples") }
        let tasks = tasks.filter { !$0.isEmpty }
        let phi = start.copy()
        var rng = SeededGenerator(seed: configuration.seed &+ 0x6d657461)
        var order: [Int] = []
        var lateLosses: [Double] = []
        for i in 0..<settings.iterations {
            if stop() { throw CancellationError() }
            if order.isEmpty { order = Array(tasks.indices).shuffled(using: &rng) }
            let task = tasks[order.removeLast()]
            let sample = task.count > settings.examplesPerTask ? Array(task.shuffled(using: &rng).prefix(settings.examplesPerTask)) : task
            let (theta, loss, _) = try await adapt(phi, frozen: frozen, on: sample, steps: settings.innerSteps)
            let epsilon = Float(settings.metaStep * (1 - Double(i) / Double(settings.iterations)))
            let p = phi.parameters.pointer, t = theta.parameters.pointer
            for k in 0..<phi.parameters.count { p[k] += epsilon * (t[k] - p[k]) }
            if i >= settings.iterations * 3 / 4 { lateLosses.append(loss) }
            if (i + 1) % max(1, settings.iterations / 8) == 0 {
                progress("iteration \(i + 1)/\(settings.iterations): inner loss \(String(format: "%.4f", loss))")
            }
        }
        return (phi, lateLosses.isEmpty ? 0 : lateLosses.reduce(0, +) / Double(lateLosses.count))
    }

    /// A copy of `start` trained on `examples` over `frozen` (the inner fine-tune, and what a
    /// worker does with a new tenant's first batch), with its mean training loss and its number
    /// of optimizer steps: `steps`, or by default as many as the workers' budget gives the data
    /// (`epochs` passes, at most `maxSteps`).
    public func adapt(_ start: LoRAAdapter, frozen: LoRAAdapter?, on examples: [TrainingExample],
                      steps: Int? = nil) async throws -> (adapter: LoRAAdapter, loss: Double, steps: Int) {
        let data = PackedDataset.fitted(examples, maxSeqLen: configuration.seqLen)
        let budget = configuration.budget
        let trained = try await candidates.train(AdapterWeights(lora: start.copy(), blocks: [start.config.rank], regularizer: nil),
                                                 frozen: frozen, data: data, steps: steps ?? budget.steps(rows: data.rows.count),
                                                 rowsPerStep: budget.rowsPerStep(data.rows.count))
        return (trained.weights.lora, trained.loss, trained.steps)
    }

    /// The held-out loss and perplexity of `adapter` over `frozen` on `examples` (the learned
    /// tokens only: for interactions, the responses).
    public func evaluate(_ adapter: LoRAAdapter, frozen: LoRAAdapter?, on examples: [TrainingExample]) throws -> (loss: Double, perplexity: Double) {
        let model = try candidates.model(AdapterWeights(lora: adapter, blocks: [adapter.config.rank], regularizer: nil), frozen: frozen)
        return Trainer.evaluate(model, PackedDataset.fitted(examples, maxSeqLen: configuration.seqLen))
    }
}
