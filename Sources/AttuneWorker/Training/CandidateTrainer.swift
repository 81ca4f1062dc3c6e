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

/// A trained candidate and how it and its parent did on the gate's sets.
struct Candidate {
    let weights: AdapterWeights
    let losses: [String: Double]
    let parentLosses: [String: Double]
    let regressions: [String]
    let tokensPerSecond: Double

    var passed: Bool { regressions.isEmpty }
}

/// Trains a copy of an adapter on a dataset over the frozen base (and a frozen domain adapter)
/// and gates it against the parent. It never touches the event log or the parent's weights,
/// so a rejected candidate is simply dropped. Training and gate evaluations run on a queue of
/// their own, off Swift's cooperative pool: they take seconds of CPU, which would otherwise
/// hold one of the pool's few threads away from the consumer, the follower and the HTTP server.
struct CandidateTrainer {
    let base: LlamaModel
    let config: TrainerConfig
    let seed: UInt64

    private static let queue = DispatchQueue(label: "attune.training", qos: .userInitiated)

    private static func offPool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            queue.async { continuation.resume(with: Result { try body() }) }
        }
    }

    /// The losses of `weights` standing on `frozen` on the gate's sets.
    func losses(_ weights: AdapterWeights, frozen: LoRAAdapter?, gate: PublicationGate) async throws -> [String: Double] {
        try await Self.offPool { gate.losses(try model(weights, frozen: frozen)) }
    }

    /// The model of `weights` standing on `frozen`, for evaluation or training.
    func model(_ weights: AdapterWeights, frozen: LoRAAdapter?) throws -> TrainableLlama {
        try TrainableLlama(base: base, lora: weights.lora, frozen: frozen, seed: seed)
    }

    /// Trains `candidate` (already a copy) on `data` over `frozen`; `parentLosses` are the
    /// parent's losses on the gate's sets, measured by the caller on the parent's own stack.
    func train(_ candidate: AdapterWeights, frozen: LoRAAdapter?, data: PackedDataset, gate: PublicationGate,
               parentLosses: [String: Double]) async throws -> Candidate {
        try await Self.offPool { try trainNow(candidate, frozen: frozen, data: data, gate: gate, parentLosses: parentLosses) }
    }

    private func trainNow(_ candidate: AdapterWeights, frozen: LoRAAdapter?, data: PackedDataset, gate: PublicationGate,
                          parentLosses: [String: Double]) throws -> Candidate {
        let model = try model(candidate, frozen: frozen)
        let trainer = try Trainer(model: model, data: data, config: config)
        if let frozenRank = candidate.frozenRank { trainer.trainableMask = candidate.lora.trainableMask(frozenRank: frozenRank) }
        trainer.regularizer = candidate.regularizer
        let started = ContinuousClock.now
        trainer.run()
        let tokens = Double(config.steps * config.batchSize * data.seqLen)
        let rate = tokens / max(1e-9, (ContinuousClock.now - started).seconds)
        let losses = gate.losses(model)
        return Candidate(weights: candidate, losses: losses, parentLosses: parentLosses,
                         regressions: gate.regressions(candidate: losses, parent: parentLosses), tokensPerSecond: rate)
    }
}
