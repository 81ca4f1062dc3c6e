import AttuneModel
import AttuneRegistry
import AttuneTraining

extension TrainWorker {
    /// A published domain version: its release and a frozen copy of its weights.
    struct DomainBase {
        let release: AdapterRelease
        let lora: LoRAAdapter
    }

    /// What an adapter keeps between its versions besides its lineage: its weights (and EWC
    /// state), its replay memory and what its gate remembers. A tenant's can be evicted to the
    /// tenant cache under `--tenant-memory` and restored bit for bit.
    struct AdapterMemory {
        var weights: AdapterWeights
        var replay: ReplayBuffer
        /// What the gate keeps between versions (its replay sample, the current version's losses).
        var gate = GateMemory()
        /// The previous batch's held-out examples: the gate measured them unseen, the next batch trains them.
        var heldOutToTrain: [TrainingExample] = []

        /// Bytes held: the weights, the regularizer's tensors and the examples (4-byte tokens, 1-byte flags).
        var bytes: Int {
            let parameters = weights.lora.parameterCount
            let regularizer = weights.regularizer.map { $0.kind == .ewc ? 3 * parameters : 0 } ?? 0
            let examples = replay.items + gate.replaySample + heldOutToTrain
            return 4 * (parameters + regularizer) + examples.reduce(0) { $0 + 5 * $1.tokens.count }
        }
    }

    /// The working copy of one adapter at its latest version.
    final class AdapterState {
        var release: AdapterRelease?
        /// For a tenant: the domain version it is trained on top of.
        var domain: DomainBase?
        /// For a new tenant started from its domain's meta-initialization: that version (`meta/<domain>@<v>`).
        var initialization: String?
        /// The domain version a rebase onto was rejected by the gate (not retried).
        var rebaseRejected: String?
        /// Set when the domain version this tenant was trained on is no longer stored and it
        /// stands on a newer one until a gated rebase makes that official.
        var onSubstituteDomain = false
        /// When it last trained or was restored (the tenant cache evicts the least recent first).
        var lastUsed = ContinuousClock.now
        /// Its memory; nil while it is evicted to the tenant cache (the worker restores it before any use).
        var memory: AdapterMemory?

        init(lora: LoRAAdapter, blocks: [Int]? = nil, replay: ReplayBuffer, domain: DomainBase?) {
            memory = AdapterMemory(weights: AdapterWeights(lora: lora, blocks: blocks ?? [lora.config.rank], regularizer: nil), replay: replay)
            self.domain = domain
        }

        var isResident: Bool { memory != nil }

        private var resident: AdapterMemory {
            get {
                guard let memory else { preconditionFailure("\(release?.id ?? "adapter") used while evicted") }
                return memory
            }
            set { memory = newValue }
        }

        var weights: AdapterWeights {
            get { resident.weights }
            set { resident.weights = newValue }
        }

        var replay: ReplayBuffer {
            get { resident.replay }
            set { resident.replay = newValue }
        }

        var gate: GateMemory {
            get { resident.gate }
            set { resident.gate = newValue }
        }

        var heldOutToTrain: [TrainingExample] {
            get { resident.heldOutToTrain }
            set { resident.heldOutToTrain = newValue }
        }

        var lora: LoRAAdapter { weights.lora }

        /// After a version is published: online EWC folds what it observed into its Fisher and
        /// anchors at the new weights; L2-SP keeps nothing resident (its anchor is the parent's
        /// weights, copied when the next candidate is made).
        func consolidate() {
            guard let regularizer = weights.regularizer else { return }
            if regularizer.kind == .ewc {
                regularizer.consolidate(at: lora.parameters)
            } else {
                weights.regularizer = nil
            }
        }
    }
}
