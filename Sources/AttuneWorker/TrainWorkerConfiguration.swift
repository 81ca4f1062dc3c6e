import AttuneTraining
import Foundation

/// When tenants move onto a new version of their domain.
public enum RebaseMode: String, Sendable, CaseIterable {
    case automatic
    case onCommand = "on-command"
}

/// How a training worker consumes, trains, gates and publishes.
public struct TrainWorkerConfiguration: Sendable {
    public var groupID = "attune-trainers"
    public var corporaTopic = "attune.corpora"
    public var interactionsTopic = "attune.interactions"
    public var adaptersTopic = "attune.adapters"
    public var eventsTopic = "attune.adapter-events"
    public var checkpointsTopic = "attune.checkpoints"
    public var controlTopic = "attune.control"
    /// A micro-batch closes when it holds this many tokens…
    public var batchTokens = 2048
    /// …or when its oldest record is this old…
    public var batchSeconds = 5.0
    /// …or, when the worker has read everything there is, when its oldest record is this old
    /// (0: an idle worker trains a record at once; a busy one reads more while it trains).
    public var batchLingerSeconds = 0.0
    /// Longest training row (shorter batches are packed into shorter rows, without padding).
    public var seqLen = 128
    /// Rows per optimizer step.
    public var batchSize = 4
    /// Optimizer steps per micro-batch; nil: they follow the data (`epochs` passes over its
    /// rows, at least one, capped at `maxSteps`).
    public var stepsPerBatch: Int?
    public var epochs = 1.0
    public var maxSteps = 16
    public var learningRate: Float = 1e-3
    public var lora = LoRAConfig(rank: 8, alpha: 16)
    /// Replay buffer size per adapter, and replayed examples per new example in a batch.
    public var replayCapacity = 256
    public var replayRatio = 0.5
    /// Regularization toward the parent version (nil = none).
    public var regularizer: Regularizer.Kind? = .l2sp
    public var regularizerStrength: Float = 0.1
    /// A candidate whose loss on held-out new data, on the replay sample or on the domain
    /// probe exceeds its parent's by more than this fraction is not published.
    public var gateTolerance = 0.05
    /// …and by more than this many nats (a floor for sets the parent already fits almost perfectly).
    public var gateMinimumRise = 0.05
    /// The replay sample the gate measures (examples), redrawn after this many versions or
    /// when the replay memory has doubled; each gate set holds at most `gateSetTokens` tokens.
    public var gateReplayExamples = 16
    public var gateSampleVersions = 8
    public var gateSetTokens = 256
    /// A rejected batch retries when its adapter gets new data or after this long; after
    /// `gateMaxRejections` rejections its records go to the DLQ with the reason.
    public var gateRetrySeconds = 300.0
    public var gateMaxRejections = 3
    /// Group session: a member silent this long (training between polls counts) loses its partitions.
    public var sessionTimeout = Duration.seconds(45)
    /// How often the worker reads the adapters, checkpoints and control topics when idle.
    public var followSeconds = 2.0
    /// Releases remembered per adapter (the newest carries its predecessors' uncommitted inputs).
    public var releasesKept = 32
    /// Dynamic architecture: when a tenant's new data drifts — the parent's loss on it exceeds
    /// its loss on the replay memory by more than `driftThreshold` (a fraction) — the tenant
    /// grows a new adapter block of the configured rank and only that block trains, so the
    /// old blocks keep what they learned. At most `maxBlocks` blocks.
    public var growOnDrift = false
    public var driftThreshold = 0.5
    public var maxBlocks = 4
    /// Bytes of tenant state (weights, EWC state, replay and gate memory) kept in memory; beyond
    /// it the least recently trained tenants are evicted to files under `tenantCacheDirectory`
    /// (nil: a fresh temporary folder) and restored when they train again. nil: no limit.
    public var tenantMemory: Int?
    public var tenantCacheDirectory: String?
    /// Tenants pinned to a domain; others get the domain adapter with the lowest loss.
    public var tenantDomains: [String: String] = [:]
    /// A new tenant's first batch waits this long for a domain version to stand on (its pinned
    /// domain, or any) before it trains on the base model alone.
    public var domainWaitSeconds = 60.0
    /// Domain examples a tenant candidate is also evaluated on (the domain probe set).
    public var probeExamples = 16
    /// When a domain publishes a new version, its tenants are retrained onto it from their
    /// replay memory automatically, or only when an operator asks (`attune adapter rebase`,
    /// a `RebaseCommand` on `attune.control`; honoured in both modes).
    public var rebase = RebaseMode.automatic
    /// Recorded as every version's base (name and sha256 of the GGUF).
    public var baseModel: String
    public var baseModelSHA256: String
    /// CloudEvents `source`.
    public var source = "attune/train-worker"
    public var seed: UInt64 = 0

    /// How much each micro-batch trains.
    /// The optimizer settings every candidate trains with (steps and rows are set per batch).
    var trainerConfig: TrainerConfig {
        TrainerConfig(steps: 1, batchSize: batchSize, optimizer: AdamWConfig(learningRate: learningRate), schedule: .constant,
                      warmupSteps: 0, seed: seed)
    }

    var budget: TrainingBudget {
        TrainingBudget(fixedSteps: stepsPerBatch, epochs: epochs, maxSteps: maxSteps, batchSize: batchSize, seqLen: seqLen)
    }

    public init(baseModel: String, baseModelSHA256: String) {
        self.baseModel = baseModel
        self.baseModelSHA256 = baseModelSHA256
    }

    /// Puts `prefix` before the name of every topic the worker reads or writes (the DLQ keeps
    /// its name), for several deployments on one cluster: `staging.` → `staging.attune.corpora`.
    public mutating func prefixTopics(_ prefix: String) {
        corporaTopic = prefix + corporaTopic
        interactionsTopic = prefix + interactionsTopic
        adaptersTopic = prefix + adaptersTopic
        eventsTopic = prefix + eventsTopic
        checkpointsTopic = prefix + checkpointsTopic
        controlTopic = prefix + controlTopic
    }
}
