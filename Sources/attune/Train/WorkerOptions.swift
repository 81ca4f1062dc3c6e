import ArgumentParser
import AttuneTraining
import AttuneWorker

/// How a training worker batches, trains, gates and grows: shared by `train-worker` and `up`.
struct WorkerOptions: ParsableArguments {
    @Option(help: "Consumer group.") var group = "attune-trainers"
    @Option(help: "Close a micro-batch at this many tokens.") var batchTokens = 2048
    @Option(help: "…or when its oldest record is this many seconds old.") var batchSeconds = 10.0
    @Option(help: "…or, once the worker has read all there is, when its oldest record is this many seconds old (0: at once).")
    var batchLinger = 0.0
    @Option(help: "Fixed optimizer steps per micro-batch (default: they follow the data, see --epochs and --max-steps).")
    var steps: Int?
    @Option(help: "Passes over a micro-batch's rows (new examples and their replay share).") var epochs = 1.0
    @Option(help: "Most optimizer steps per micro-batch; a batch takes at most the records one pass of them trains.")
    var maxSteps = 16
    @Option(help: "Longest training row in tokens (shorter batches are packed into shorter rows).") var seqLen = 128
    @Option(help: "Rows per optimizer step.") var batchSize = 4
    @Option(help: "LoRA rank.") var rank = 8
    @Option(help: "Learning rate.") var lr: Float = 1e-3
    @Option(help: "Replay buffer size per adapter.") var replayCapacity = 256
    @Option(help: "Replayed examples per new example.") var replayRatio = 0.5
    @Option(help: "Regularization toward the parent: l2sp, ewc or none.") var regularizer = "l2sp"
    @Option(help: "Regularization strength.") var regularizerStrength: Float = 0.1
    @Option(help: "Reject a candidate whose loss on held-out new data, replay or domain probe exceeds its parent's by this fraction.")
    var gateTolerance = 0.05
    @Option(help: "…and by more than this many nats.") var gateMinRise = 0.05
    @Option(help: "Retry a rejected batch after this many seconds without new data.") var gateRetry = 300.0
    @Option(help: "Send a batch's records to the DLQ after this many gate rejections.") var gateMaxRejections = 3
    @Option(help: "Group session timeout in seconds (longer than one micro-batch's training).") var sessionTimeout = 45.0
    @Option(help: "Pin a tenant to a domain: TENANT=DOMAIN (repeatable).") var tenantDomain: [String] = []
    @Flag(help: "Grow a new adapter block for a tenant whose new data drifts, instead of overwriting the old one.")
    var growOnDrift = false
    @Option(help: "Drift: the parent's loss on new data exceeds its replay loss by this fraction.") var driftThreshold = 0.5
    @Option(help: "Most adapter blocks a tenant grows to.") var maxBlocks = 4
    @Option(help: "Rebase tenants onto new domain versions: automatic or on-command (attune adapter rebase).")
    var rebase: RebaseMode = .automatic
    @Option(help: "A new tenant waits this many seconds for its domain's first version before training on the base alone.")
    var domainWait = 60.0
    @Option(help: "Memory for tenant state (e.g. 512MiB); beyond it the least recently trained tenants wait in the tenant cache (default: no limit).")
    var tenantMemory: String?
    @Option(help: "Folder of the tenant cache, emptied at start and used by this worker alone (default: a temporary folder).")
    var tenantCache: String?

    func validate() throws {
        guard batchTokens > 0, batchSeconds > 0 else { throw ValidationError("--batch-tokens and --batch-seconds must be positive") }
        guard batchLinger >= 0 else { throw ValidationError("--batch-linger must be ≥ 0") }
        guard (steps ?? 1) > 0, maxSteps > 0, epochs > 0, seqLen > 1, batchSize > 0 else {
            throw ValidationError("--steps, --max-steps, --epochs and --batch-size must be positive, --seq-len at least 2")
        }
        guard gateTolerance >= 0, gateMinRise >= 0 else { throw ValidationError("--gate-tolerance and --gate-min-rise must be ≥ 0") }
        guard (1...1024).contains(rank) else { throw ValidationError("--rank must be in 1…1024, got \(rank)") }
        guard lr > 0, lr < 1 else { throw ValidationError("--lr must be in (0, 1), got \(lr)") }
        guard replayCapacity > 0, replayRatio >= 0 else { throw ValidationError("--replay-capacity must be positive and --replay-ratio ≥ 0") }
        guard regularizer == "none" || Regularizer.Kind(rawValue: regularizer) != nil else {
            throw ValidationError("--regularizer must be l2sp, ewc or none")
        }
        guard gateRetry >= 0, gateMaxRejections > 0 else { throw ValidationError("--gate-retry must be ≥ 0 and --gate-max-rejections positive") }
        guard driftThreshold >= 0, maxBlocks > 0 else { throw ValidationError("--drift-threshold must be ≥ 0 and --max-blocks positive") }
        guard domainWait >= 0 else { throw ValidationError("--domain-wait must be ≥ 0") }
        if let tenantMemory { _ = try ByteSize.parse(tenantMemory, option: "--tenant-memory") }
        guard sessionTimeout >= 1 else { throw ValidationError("--session-timeout must be at least 1 second") }
        for pin in tenantDomain where pin.split(separator: "=", maxSplits: 1).count != 2 {
            throw ValidationError("--tenant-domain takes TENANT=DOMAIN, got \(pin)")
        }
    }

    /// The worker configuration these options describe, for a base model and topic prefix.
    func configuration(baseModel: String, baseModelSHA256: String, topicPrefix: String) throws -> TrainWorkerConfiguration {
        var c = TrainWorkerConfiguration(baseModel: baseModel, baseModelSHA256: baseModelSHA256)
        c.groupID = group
        c.prefixTopics(topicPrefix)
        c.batchTokens = batchTokens
        c.batchSeconds = batchSeconds
        c.batchLingerSeconds = batchLinger
        c.stepsPerBatch = steps
        c.epochs = epochs
        c.maxSteps = maxSteps
        c.seqLen = seqLen
        c.batchSize = batchSize
        c.lora = LoRAConfig(rank: rank, alpha: Float(2 * rank))
        c.learningRate = lr
        c.replayCapacity = replayCapacity
        c.replayRatio = replayRatio
        c.regularizer = Regularizer.Kind(rawValue: regularizer)
        c.regularizerStrength = regularizerStrength
        c.gateTolerance = gateTolerance
        c.gateMinimumRise = gateMinRise
        c.gateRetrySeconds = gateRetry
        c.gateMaxRejections = gateMaxRejections
        c.sessionTimeout = .milliseconds(Int(sessionTimeout * 1000))
        c.domainWaitSeconds = domainWait
        c.tenantMemory = try tenantMemory.map { try ByteSize.parse($0, option: "--tenant-memory") }
        c.tenantCacheDirectory = tenantCache
        c.rebase = rebase
        c.growOnDrift = growOnDrift
        c.driftThreshold = driftThreshold
        c.maxBlocks = maxBlocks
        for pin in tenantDomain {
            let parts = pin.split(separator: "=", maxSplits: 1).map(String.init)
            c.tenantDomains[parts[0]] = parts[1]
        }
        return c
    }
}

extension RebaseMode: ExpressibleByArgument {}
