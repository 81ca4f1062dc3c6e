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
    /// …or when its oldest record is this old.
    public var batchSeconds = 5.0
    public var seqLen = 128
    public var batchSize = 4
    /// Optimizer steps per micro-batch.
    public var stepsPerBatch = 4
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
