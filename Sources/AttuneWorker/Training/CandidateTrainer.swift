import AttuneModel
import AttuneTraining
import Dispatch

/// An adapter's trainable state: its weights, its blocks (only the last one trains) and its
/// regularizer. A candidate is a copy of its parent's; the parent is never touched.
struct AdapterWeights {
    var lora: LoRAAdapter
    var blocks: [Int]
    var regularizer: Regularizer?

    func copy() -> AdapterWeights { AdapterWeights(lora: lora.copy(), blocks: blocks, regularizer: regularizer?.copy()) }

    /// The mask that freezes every block but the last (nil with one block).
    var frozenRank: Int? { blocks.count > 1 ? blocks.dropLast().reduce(0, +) : nil }
}

/// A trained candidate: its weights and what its training computed.
struct TrainedCandidate {
    let weights: AdapterWeights
    let steps: Int
    /// Tokens the optimizer steps computed on (rows per step × sequence length × steps).
    let tokens: Int
    let seconds: Double
    /// Mean training loss over the steps (data loss, before regularization).
    let loss: Double

    var tokensPerSecond: Double { Double(tokens) / max(1e-9, seconds) }
}

/// Trains a copy of an adapter on a dataset over the frozen base (and a frozen domain adapter)
/// and measures it on the gate's sets. It never touches the event log or the parent's weights,
/// so a rejected candidate is simply dropped. Training and gate evaluations run on a queue of
/// their own, off Swift's cooperative pool: they take seconds of CPU, which would otherwise
/// hold one of the pool's few threads away from the consumer, the follower and the HTTP server.
struct CandidateTrainer {
    let base: LlamaModel
    let config: TrainerConfig
    let seed: UInt64

    /// This trainer's own serial queue (one per worker, so workers in one process do not wait on each other).
    private let queue = DispatchQueue(label: "attune.training", qos: .userInitiated)

    private func offPool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            queue.async { continuation.resume(with: Result { try body() }) }
        }
    }

    /// The losses of `weights` standing on `frozen` on the gate's sets (or on those of `names`).
    func losses(_ weights: AdapterWeights, frozen: LoRAAdapter?, gate: PublicationGate,
                only names: Set<String>? = nil) async throws -> [String: Double] {
        try await offPool { gate.losses(try model(weights, frozen: frozen), only: names) }
    }

    /// The model of `weights` standing on `frozen`, for evaluation or training.
    func model(_ weights: AdapterWeights, frozen: LoRAAdapter?) throws -> TrainableLlama {
        try TrainableLlama(base: base, lora: weights.lora, frozen: frozen, seed: seed)
    }

    /// Trains `candidate` (already a copy) on `data` over `frozen` for `steps` optimizer steps
    /// of `rowsPerStep` rows.
    func train(_ candidate: AdapterWeights, frozen: LoRAAdapter?, data: PackedDataset, steps: Int,
               rowsPerStep: Int) async throws -> TrainedCandidate {
        try await offPool {
            var config = self.config
            config.steps = steps
            config.batchSize = rowsPerStep
            let trainer = try Trainer(model: try model(candidate, frozen: frozen), data: data, config: config)
            if let frozenRank = candidate.frozenRank { trainer.trainableMask = candidate.lora.trainableMask(frozenRank: frozenRank) }
            trainer.regularizer = candidate.regularizer
            let started = ContinuousClock.now
            var lossSum = 0.0
            trainer.run { lossSum += $0.loss }
            let seconds = (ContinuousClock.now - started).seconds
            // A copy without the gradient buffer training allocated: only the weights are kept.
            let weights = AdapterWeights(lora: candidate.lora.copy(), blocks: candidate.blocks, regularizer: candidate.regularizer)
            return TrainedCandidate(weights: weights, steps: steps, tokens: steps * rowsPerStep * data.seqLen, seconds: seconds,
                                    loss: lossSum / Double(max(steps, 1)))
        }
    }
}
