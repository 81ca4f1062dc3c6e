import AttuneEventLog
import AttuneRegistry
import AttuneModel
import AttuneTokenizer
import AttuneTraining
import Foundation
import Logging
import Synchronization

/// What a worker has done so far.
public struct WorkerStats: Sendable, Equatable {
    public var published = 0
    public var rejectedByGate = 0
    public var deadLettered = 0
    public var skippedAlreadyTrained = 0
    public var examplesTrained = 0
    public var rebased = 0
    public var reannounced = 0
    /// Candidates dropped because another worker published the adapter meanwhile.
    public var superseded = 0
    /// Tenant states evicted to the tenant cache and restored from it (`tenantMemory`).
    public var evicted = 0
    public var restored = 0
}

/// Consumes `attune.corpora` and `attune.interactions` in the trainers' group, trains one
/// adapter per domain (stage 1) and per tenant on top of its best domain adapter (stage 2) in
/// micro-batches with replay and regularization, gates every candidate against its parent,
/// publishes accepted versions to `attune.adapters` + `attune.adapter-events`, and only then
/// commits the input offsets. It follows `attune.adapters` and `attune.checkpoints`, so the
/// versions and trainer state of partitions it gains (on start or in a rebalance) are current
/// before it trains them, and records a published version already covers are skipped. It
/// holds the weights of every domain adapter but only of the tenants it owns.
public final class TrainWorker: @unchecked Sendable {
    public let configuration: TrainWorkerConfiguration
    public internal(set) var stats = WorkerStats()
    let log: any EventLog
    let base: LlamaModel
    let decoder: InputDecoder
    private let catalog: TopicCatalog
    let logger: Logger
    let metrics: WorkerMetrics
    let candidates: CandidateTrainer
    private let caughtUpOnce = Atomic(false)
    /// The working copy, at its latest version, of every domain adapter and of the tenant
    /// adapters of owned partitions.
    var states: [AdapterName: AdapterState] = [:]
    /// The latest published version of each domain, as a frozen snapshot tenants stand on.
    var domains: [AdapterName: DomainBase] = [:]
    /// The latest meta-initialization of each domain (`meta/<domain>`), keyed by the domain's name:
    /// where a new tenant of that domain starts.
    var metaInitializations: [AdapterName: DomainBase] = [:]
    /// What a new tenant's parent scores on the gate's sets, per domain version.
    var freshTenantLosses = FreshTenantLosses()
    var pending = BatchQueue()
    var lineage: Lineage
    var ownership: PartitionOwnership
    var ledger = CommitLedger()
    /// The newest checkpoint seen for each domain and owned tenant.
    var checkpoints: [AdapterName: TrainerCheckpoint] = [:]
    /// The newest rebase request of each tenant adapter.
    var rebaseRequests: [AdapterName: RebaseCommand] = [:]
    private var deadLetters: (any EventProducer)?
    var follower: PublicationFollower?
    /// Where tenants evicted under `tenantMemory` wait (set while running with a budget).
    var tenantCache: TenantStateCache?

    /// The releases this worker knows of, by adapter (the latest `releasesKept` of each).
    public var releases: [AdapterName: [AdapterRelease]] { lineage.releases }

    public init(configuration: TrainWorkerConfiguration, log: any EventLog, base: LlamaModel, tokenizer: BPETokenizer,
                catalog: TopicCatalog, metrics: WorkerMetrics = .none,
                logger: Logger = Logger(label: "attune.train-worker", factory: { _ in SwiftLogNoOpLogHandler() })) {
        self.configuration = configuration
        self.metrics = metrics
        self.log = log
        self.base = base
        self.catalog = catalog
        self.logger = logger
        decoder = InputDecoder(builder: ExampleBuilder(tokenizer: tokenizer), corporaTopic: configuration.corporaTopic,
                               interactionsTopic: configuration.interactionsTopic)
        candidates = CandidateTrainer(base: base, config: configuration.trainerConfig, seed: configuration.seed)
        lineage = Lineage(kept: configuration.releasesKept)
        ownership = PartitionOwnership(corporaTopic: configuration.corporaTopic, interactionsTopic: configuration.interactionsTopic)
    }

    /// Runs until it has read to the end of every owned partition, no record has arrived for
    /// `idle` since then and nothing is pending (or `stop` says so), closing micro-batches by
    /// size or age as it goes. The idle window never replaces reading: a slow fetch on a busy
    /// machine delays the stop instead of skipping records.
    /// It trains one batch (or rebase) between polls, so the group hears from it regularly.
    public func run(idle: Duration = .seconds(2), stop: @Sendable () -> Bool = { false }) async throws {
        let c = configuration
        let follower = try await PublicationFollower(log: log, configuration: c, logger: logger)
        self.follower = follower
        if c.tenantMemory != nil {
            let directory = c.tenantCacheDirectory.map { URL(fileURLWithPath: $0) }
                ?? FileManager.default.temporaryDirectory.appendingPathComponent("attune-tenant-cache-\(UUID().uuidString)")
            tenantCache = try TenantStateCache(directory: directory)
        }
        defer {
            if let tenantCache, c.tenantCacheDirectory == nil { try? FileManager.default.removeItem(at: tenantCache.directory) }
        }
        ownership.partitionCounts = try await partitionCounts(log, [c.corporaTopic, c.interactionsTopic])
        try await catchUp()
        caughtUpOnce.store(true, ordering: .releasing)
        let producer = try log.makeProducer()
        deadLetters = producer
        let validator = ConsumedRecordValidator(catalog: catalog, deadLetters: producer)
        let inbox = RebalanceInbox()
        var consumerConfig = ConsumerConfiguration(groupID: c.groupID)
        consumerConfig.autoOffsetStore = false
        consumerConfig.sessionTimeout = c.sessionTimeout
        consumerConfig.heartbeatInterval = c.sessionTimeout / 15
        consumerConfig.rebalanceHandler = { inbox.append($0) }
        let consumer = try log.makeConsumer(consumerConfig)
        do {
            try await consumer.subscribe([c.corporaTopic, c.interactionsTopic])
            try await consume(consumer, producer: producer, validator: validator, inbox: inbox, idle: idle, stop: stop)
        } catch {
            // The log failed under the worker (a broker outage): let go of the group and the
            // handles without waiting on the log, and report; nothing uncommitted is lost.
            caughtUpOnce.store(false, ordering: .releasing)
            self.follower = nil
            Task { [follower] in
                await consumer.close()
                await follower.close()
                await producer.close()
            }
            throw error
        }
        await consumer.close()
        await follower.close()
        self.follower = nil
        try await producer.flush()
        await producer.close()
    }

    private var window: BatchWindow {
        let c = configuration
        return BatchWindow(tokens: c.batchTokens, seconds: c.batchSeconds, lingerSeconds: c.batchLingerSeconds,
                           domainWaitSeconds: c.domainWaitSeconds, gateRetrySeconds: c.gateRetrySeconds)
    }

    private func consume(_ consumer: any EventConsumer, producer: any EventProducer, validator: ConsumedRecordValidator,
                         inbox: RebalanceInbox, idle: Duration, stop: @Sendable () -> Bool) async throws {
        let c = configuration
        var quietSince = ContinuousClock.now, lastFollow = ContinuousClock.now
        while !stop() {
            let records = try await consumer.poll(maxRecords: 256, timeout: .milliseconds(200))
            if try await rebalance(inbox.take(), producer: producer) { quietSince = .now }
            if !records.isEmpty || ownership.owned.isEmpty { quietSince = .now }
            for r in records where ownership.owns(r.topicPartition) { try await accept(r, validator: validator) }
            if ContinuousClock.now - lastFollow >= .seconds(c.followSeconds) {
                try await catchUp()
                try await recordLag(consumer)
                lastFollow = .now
            }
            let idleNow = ContinuousClock.now - quietSince >= idle
            let caughtUp = records.isEmpty
            var worked = false
            if let name = pending.next(window, now: .now, flush: idleNow, caughtUp: caughtUp, waitingForDomain: waitsForDomain,
                                       domainPending: domainBatchQueued) {
                try await trainAndPublish(name, producer: producer)
                worked = true
            } else {
                worked = try await rebaseOneTenant(producer: producer)
            }
            try await deadLetterExhaustedBatches()
            try await commit(consumer)
            try enforceTenantMemory()
            if idleNow && !worked && pending.allRejected {
                if try await readToEnd(consumer) { break }
                quietSince = .now
            }
        }
        try await commit(consumer)
    }

    /// Whether a new tenant's batch should wait for a domain adapter to stand on.
    private func waitsForDomain(_ name: AdapterName) -> Bool {
        name.kind == .tenant && states[name] == nil && !domainAvailable(forNewTenant: name.id)
    }

    /// Whether a queued batch will publish the domain a new tenant waits for (its pinned one, else any).
    private func domainBatchQueued(_ name: AdapterName) -> Bool {
        if let pinned = configuration.tenantDomains[name.id] { return AdapterName.domain(pinned).map { pending[$0] != nil } ?? false }
        return pending.batches.keys.contains { $0.kind == .domain }
    }

    /// Whether the worker has read the published state and its log has not failed under it (its `/readyz`).
    public var isReady: Bool { caughtUpOnce.load(ordering: .acquiring) }

    /// Consumer lag of each owned partition, and the replay memory held.
    /// Lag is measured from the consumer's position, else the last record read, else the group's
    /// committed offset (a partition resumed with nothing new read yet).
    private func recordLag(_ consumer: any EventConsumer) async throws {
        let owned = ownership.owned
        var next: [TopicPartition: Int64] = [:]
        for tp in owned {
            if let position = try await consumer.position(tp) ?? ledger.nextToRead(tp) { next[tp] = position }
        }
        let unread = owned.filter { next[$0] == nil }
        if !unread.isEmpty { next.merge(try await consumer.committed(Array(unread))) { a, _ in a } }
        for tp in owned {
            let marks = try await consumer.watermarks(tp)
            metrics.lag(tp, max(0, marks.high - (next[tp] ?? marks.low)))
        }
        metrics.replayItems.record(states.values.reduce(0) { $0 + ($1.memory?.replay.items.count ?? 0) })
    }

    /// Reads what the followed topics gained and absorbs it.
    func catchUp() async throws {
        guard let follower else { return }
        try await absorb(try await follower.catchUp())
    }

    /// Whether this worker holds the weights of `name`: every domain, and the tenants it owns.
    func keepsWeights(_ name: AdapterName) -> Bool { name.kind != .tenant || ownership.owns(name) }

    /// Applies the partition changes a poll delivered: lost partitions drop their pending
    /// (uncommitted) records for the next owner; gained ones first bring the published state up
    /// to date and announce any version its previous owner published but never announced.
    /// Returns whether anything changed.
    private func rebalance(_ events: [RebalanceEvent], producer: any EventProducer) async throws -> Bool {
        guard !events.isEmpty else { return false }
        let gained = ownership.apply(events)
        let owned = ownership.owned
        ledger.keep(only: owned)
        for name in states.keys where !keepsWeights(name) {
            states[name] = nil
            tenantCache?.remove(name)
        }
        pending.removeItems { !owned.contains($0.source) }
        if gained, let follower {
            try await follower.rewind()
            try await catchUp()
            try await announceMissing(producer: producer)
        }
        metrics.rebalances.increment()
        metrics.ownedPartitions.record(owned.count)
        logger.info("partitions now owned: \(owned.sorted().map(\.description).joined(separator: " "))",
                    metadata: ["partitions": "\(owned.count)"])
        return true
    }

    /// Sends the records of batches the gate rejected `gateMaxRejections` times to the DLQ with
    /// the reason, so a tenant that went quiet does not hold its partition's commit forever.
    private func deadLetterExhaustedBatches() async throws {
        for (name, b) in pending.exhausted(after: configuration.gateMaxRejections) {
            for item in b.items {
                _ = try await deadLetters?.send(DeadLetter.record(
                    topic: item.source.topic, key: item.key, value: item.value, headers: [],
                    reason: "\(name): rejected by the publication gate \(b.rejections) times (\(b.lastReason))",
                    partition: item.source.partition, offset: item.offset))
            }
            stats.deadLettered += b.items.count
            for (tp, items) in Dictionary(grouping: b.items, by: \.source) { metrics.deadLettered(tp.topic, count: items.count) }
            pending.remove(name)
            logger.warning("gate: \(name) gave up after \(b.rejections) rejections; \(b.items.count) records sent to \(DeadLetter.topic)",
                           metadata: ["adapter": "\(name)"])
        }
    }

    private func accept(_ record: ConsumerRecord, validator: ConsumedRecordValidator) async throws {
        ledger.read(record.topicPartition, record.offset)
        metrics.consumed(record.topic)
        guard let valid = try await validator.check(record) else {
            stats.deadLettered += 1
            metrics.deadLettered(record.topic)
            return
        }
        let item: WorkItem
        do {
            guard let decoded = try decoder.decode(valid) else { return }
            if let problem = ownership.misrouted(record, adapter: decoded.adapter) { throw TrainingError.badData(problem) }
            item = decoded
        } catch {
            _ = try await deadLetters?.send(DeadLetter.record(topic: record.topic, key: record.key, value: record.value,
                                                              headers: record.headers, reason: "\(error)",
                                                              partition: record.partition, offset: record.offset))
            stats.deadLettered += 1
            metrics.deadLettered(record.topic)
            return
        }
        if lineage.trained(item.adapter, item.source, item.offset) {
            stats.skippedAlreadyTrained += 1
            return
        }
        pending.add(item, now: .now)
    }

    /// Whether every owned partition has been read up to its high watermark.
    private func readToEnd(_ consumer: any EventConsumer) async throws -> Bool {
        for tp in ownership.owned {
            let marks = try await consumer.watermarks(tp)
            let next: Int64
            if let n = ledger.nextToRead(tp) {
                next = n
            } else if let position = try await consumer.position(tp) {
                next = position
            } else {
                next = max(try await consumer.committed([tp])[tp] ?? marks.low, marks.low)
            }
            if next < marks.high { return false }
        }
        return true
    }

    /// Commits, per owned partition, the first offset not yet covered by a published version.
    /// A commit the group refuses (this member lost partitions it has not heard about yet) is
    /// skipped: the next owner starts from the last accepted commit.
    private func commit(_ consumer: any EventConsumer) async throws {
        let offsets = ledger.toCommit(waiting: pending.lowestOffsets)
        guard !offsets.isEmpty else { return }
        do {
            try await consumer.commit(offsets, mode: .sync)
        } catch let error as EventLogError where error.kind == .notAssigned {
            logger.notice("commit refused, partitions are moving: \(error); the next poll hands them over")
            return
        }
        ledger.didCommit(offsets)
    }
}

/// Rebalance events as the consumer delivers them during a poll, for the worker to apply after it.
final class RebalanceInbox: Sendable {
    private let events = Mutex<[RebalanceEvent]>([])

    func append(_ event: RebalanceEvent) { events.withLock { $0.append(event) } }

    func take() -> [RebalanceEvent] {
        events.withLock { events in
            defer { events = [] }
            return events
        }
    }
}
