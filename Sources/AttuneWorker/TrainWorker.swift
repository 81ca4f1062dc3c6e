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
    /// The releases this worker knows of, by adapter name (the latest `releasesKept` of each).
    public internal(set) var releases: [String: [AdapterRelease]] = [:]
    let log: any EventLog
    let base: LlamaModel
    let decoder: InputDecoder
    private let catalog: TopicCatalog
    let logger: Logger
    let metrics: WorkerMetrics
    private let caughtUpOnce = Atomic(false)
    /// The working copy, at its latest version, of every domain adapter and of the tenant
    /// adapters of owned partitions.
    var states: [String: AdapterState] = [:]
    /// The latest published version of each domain, as a frozen snapshot tenants stand on.
    var domains: [String: DomainBase] = [:]
    var pending: [String: PendingBatch] = [:]
    /// The newest checkpoint seen for each domain and owned tenant.
    var checkpoints: [String: TrainerCheckpoint] = [:]
    /// The newest rebase request of each tenant adapter.
    var rebaseRequests: [String: RebaseCommand] = [:]
    /// Partitions this member owns, and the partition counts of the input topics.
    var owned: Set<TopicPartition> = []
    var inputPartitions: [String: Int] = [:]
    private var lastSeen: [TopicPartition: Int64] = [:]
    /// The offsets this worker last committed, by "topic[partition]".
    var committed: [String: Int64] = [:]
    private var deadLetters: (any EventProducer)?
    var follower: ReleaseFollower?

    /// A published domain version: its release and a frozen copy of its weights.
    struct DomainBase {
        let release: AdapterRelease
        let lora: LoRAAdapter
    }

    final class AdapterState {
        var lora: LoRAAdapter
        /// Ranks of the adapter's blocks; only the last one trains.
        var blocks: [Int]
        var replay: ReplayBuffer
        var release: AdapterRelease?
        /// For a tenant: the domain version it is trained on top of.
        var domain: DomainBase?
        var regularizer: Regularizer?
        /// The domain version a rebase onto was rejected by the gate (not retried).
        var rebaseRejected: String?
        /// Set when the domain version this tenant was trained on is no longer stored and it
        /// stands on a newer one until a gated rebase makes that official.
        var onSubstituteDomain = false

        init(lora: LoRAAdapter, blocks: [Int]? = nil, replay: ReplayBuffer, domain: DomainBase?) {
            self.lora = lora
            self.blocks = blocks ?? [lora.config.rank]
            self.replay = replay
            self.domain = domain
        }
    }

    struct PendingBatch {
        var items: [WorkItem] = []
        var opened = ContinuousClock.now
        /// Set when the gate rejected this batch: the item count then; it retries when new data
        /// arrives or `gateRetrySeconds` have passed.
        var rejectedAt: Int?
        var rejections = 0
        var lastReason = ""

        var tokens: Int { items.reduce(0) { $0 + $1.example.tokens.count } }

        /// Removes items (lost partitions, inputs another version covers); a rejection mark
        /// stays within the remaining count.
        mutating func removeItems(where drop: (WorkItem) -> Bool) {
            items.removeAll(where: drop)
            rejectedAt = rejectedAt.map { min($0, items.count) }
        }
    }

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
    }

    /// Runs until it has read to the end of every owned partition, no record has arrived for
    /// `idle` since then and nothing is pending (or `stop` says so), closing micro-batches by
    /// size or age as it goes. The idle window never replaces reading: a slow fetch on a busy
    /// machine delays the stop instead of skipping records.
    /// It trains one batch (or rebase) between polls, so the group hears from it regularly.
    public func run(idle: Duration = .seconds(2), stop: @Sendable () -> Bool = { false }) async throws {
        let c = configuration
        let follower = try await ReleaseFollower(log: log, adapters: c.adaptersTopic, checkpoints: c.checkpointsTopic,
                                                 control: c.controlTopic, logger: logger)
        self.follower = follower
        inputPartitions = try await partitionCounts(log, [c.corporaTopic, c.interactionsTopic])
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

    private func consume(_ consumer: any EventConsumer, producer: any EventProducer, validator: ConsumedRecordValidator,
                         inbox: RebalanceInbox, idle: Duration, stop: @Sendable () -> Bool) async throws {
        let c = configuration
        var quietSince = ContinuousClock.now, lastFollow = ContinuousClock.now
        while !stop() {
            let records = try await consumer.poll(maxRecords: 256, timeout: .milliseconds(200))
            if try await rebalance(inbox.take(), producer: producer) { quietSince = .now }
            if !records.isEmpty || owned.isEmpty { quietSince = .now }
            for r in records where owned.contains(r.topicPartition) { try await accept(r, validator: validator) }
            if ContinuousClock.now - lastFollow >= .seconds(c.followSeconds) {
                try await catchUp()
                try await recordLag(consumer)
                lastFollow = .now
            }
            let idleNow = ContinuousClock.now - quietSince >= idle
            var worked = false
            if let name = pending.keys.sorted().first(where: { ready($0, flush: idleNow) }) {
                try await trainAndPublish(name, producer: producer)
                worked = true
            } else {
                worked = try await rebaseOneTenant(producer: producer)
            }
            try await deadLetterExhaustedBatches()
            try await commit(consumer)
            if idleNow && !worked && pending.values.allSatisfy({ $0.rejectedAt != nil }) {
                if try await readToEnd(consumer) { break }
                quietSince = .now
            }
        }
        try await commit(consumer)
    }

    /// Whether the worker has read the published state and its log has not failed under it (its `/readyz`).
    public var isReady: Bool { caughtUpOnce.load(ordering: .acquiring) }

    /// Consumer lag of each owned partition, and the replay memory held.
    /// Lag is measured from the consumer's position, else the last record seen, else the group's
    /// committed offset (a partition resumed with nothing new read yet).
    private func recordLag(_ consumer: any EventConsumer) async throws {
        var next: [TopicPartition: Int64] = [:]
        for tp in owned {
            if let position = try await consumer.position(tp) ?? lastSeen[tp].map({ $0 + 1 }) { next[tp] = position }
        }
        let unread = owned.filter { next[$0] == nil }
        if !unread.isEmpty { next.merge(try await consumer.committed(Array(unread))) { a, _ in a } }
        for tp in owned {
            let marks = try await consumer.watermarks(tp)
            metrics.lag(tp, max(0, marks.high - (next[tp] ?? marks.low)))
        }
        metrics.replayItems.record(states.values.reduce(0) { $0 + $1.replay.items.count })
    }

    /// Reads what the followed topics gained (weights only of domains and owned tenants) and absorbs it.
    func catchUp() async throws {
        guard let follower else { return }
        absorb(try await follower.catchUp(keepingWeightsOf: { $0.hasPrefix("domain/") || owns($0) }))
    }

    /// Applies the partition changes a poll delivered: lost partitions drop their pending
    /// (uncommitted) records for the next owner; gained ones first bring the published state up
    /// to date and announce any version its previous owner published but never announced.
    /// Returns whether anything changed.
    private func rebalance(_ events: [RebalanceEvent], producer: any EventProducer) async throws -> Bool {
        guard !events.isEmpty else { return false }
        var gained = false
        for event in events {
            switch event {
            case .assigned(let ps):
                owned.formUnion(ps)
                gained = true
            case .revoked(let ps):
                owned.subtract(ps)
            }
        }
        for tp in lastSeen.keys where !owned.contains(tp) { lastSeen[tp] = nil }
        for name in states.keys where name.hasPrefix("tenant/") && !owns(name) { states[name] = nil }
        for (name, var b) in pending {
            b.removeItems { !owned.contains($0.source) }
            pending[name] = b.items.isEmpty ? nil : b
        }
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

    /// Whether this member owns the input partition that `name` (`domain/…` or `tenant/…`) is keyed to.
    func owns(_ name: String) -> Bool {
        inputPartition(of: name).map(owned.contains) ?? false
    }

    /// The input partition an adapter's records are keyed to: the murmur2 partition of its
    /// tenant or domain name on `attune.interactions` or `attune.corpora`.
    private func inputPartition(of name: String) -> TopicPartition? {
        let topic = name.hasPrefix("tenant/") ? configuration.interactionsTopic : configuration.corporaTopic
        guard let count = inputPartitions[topic] else { return nil }
        return TopicPartition(topic, Murmur2.partition(forKey: Self.key(of: name), partitionCount: count))
    }

    /// The record key of an adapter's inputs: its name without the `domain/` or `tenant/` kind.
    private static func key(of name: String) -> [UInt8] { Array(name.drop { $0 != "/" }.dropFirst().utf8) }

    private func ready(_ name: String, flush: Bool) -> Bool {
        guard let b = pending[name], !b.items.isEmpty else { return false }
        let age = (ContinuousClock.now - b.opened).seconds
        if let rejectedAt = b.rejectedAt {
            return rejectedAt < b.items.count || age >= configuration.gateRetrySeconds
        }
        if states[name] == nil, name.hasPrefix("tenant/"), !domainAvailable(forNewTenant: String(name.dropFirst(7))),
           !flush, age < configuration.domainWaitSeconds {
            return false
        }
        return flush || b.tokens >= configuration.batchTokens || age >= configuration.batchSeconds
    }

    /// Sends the records of batches the gate rejected `gateMaxRejections` times to the DLQ with
    /// the reason, so a tenant that went quiet does not hold its partition's commit forever.
    private func deadLetterExhaustedBatches() async throws {
        for (name, b) in pending where b.rejections >= configuration.gateMaxRejections {
            for item in b.items {
                _ = try await deadLetters?.send(DeadLetter.record(
                    topic: item.source.topic, key: item.key, value: item.value, headers: [],
                    reason: "\(name): rejected by the publication gate \(b.rejections) times (\(b.lastReason))",
                    partition: item.source.partition, offset: item.offset))
            }
            stats.deadLettered += b.items.count
            for (tp, items) in Dictionary(grouping: b.items, by: \.source) { metrics.deadLettered(tp.topic, count: items.count) }
            pending[name] = nil
            logger.warning("gate: \(name) gave up after \(b.rejections) rejections; \(b.items.count) records sent to \(DeadLetter.topic)",
                           metadata: ["adapter": "\(name)"])
        }
    }

    private func accept(_ record: ConsumerRecord, validator: ConsumedRecordValidator) async throws {
        lastSeen[record.topicPartition] = record.offset
        metrics.consumed(record.topic)
        guard let valid = try await validator.check(record) else {
            stats.deadLettered += 1
            metrics.deadLettered(record.topic)
            return
        }
        let item: WorkItem?
        do {
            item = try decoder.decode(valid)
        } catch {
            _ = try await deadLetters?.send(DeadLetter.record(topic: record.topic, key: record.key, value: record.value,
                                                                    headers: record.headers, reason: "\(error)",
                                                                    partition: record.partition, offset: record.offset))
            stats.deadLettered += 1
            metrics.deadLettered(record.topic)
            return
        }
        guard let item else { return }
        if let problem = misrouted(record, item) {
            _ = try await deadLetters?.send(DeadLetter.record(topic: record.topic, key: record.key, value: record.value,
                                                                    headers: record.headers, reason: problem,
                                                                    partition: record.partition, offset: record.offset))
            stats.deadLettered += 1
            metrics.deadLettered(record.topic)
            return
        }
        if (releases[item.adapter] ?? []).contains(where: { $0.accountsFor(item.source, item.offset) }) {
            stats.skippedAlreadyTrained += 1
            return
        }
        var b = pending[item.adapter] ?? PendingBatch()
        guard !b.items.contains(where: { $0.source == item.source && $0.offset == item.offset }) else { return }
        if b.items.isEmpty { b.opened = .now }
        b.items.append(item)
        pending[item.adapter] = b
    }

    /// Why a record is on the wrong partition for the adapter it names (its key must be the
    /// tenant or domain, so that exactly one worker owns each adapter), or nil.
    private func misrouted(_ record: ConsumerRecord, _ item: WorkItem) -> String? {
        let key = Self.key(of: item.adapter), name = String(decoding: key, as: UTF8.self)
        guard record.key == key else { return "record key must be the \(item.adapter.prefix { $0 != "/" }) it names (\(name))" }
        guard inputPartition(of: item.adapter) == record.topicPartition else {
            return "record is on partition \(record.partition), not the one its key \(name) hashes to"
        }
        return nil
    }

    /// Commits, per owned partition, the first offset not yet covered by a published version.
    /// A commit the group refuses (this member lost partitions it has not heard about yet) is
    /// skipped: the next owner starts from the last accepted commit.
    /// Whether every owned partition has been read up to its high watermark.
    private func readToEnd(_ consumer: any EventConsumer) async throws -> Bool {
        for tp in owned {
            let marks = try await consumer.watermarks(tp)
            let next: Int64
            if let last = lastSeen[tp] {
                next = last + 1
            } else if let position = try await consumer.position(tp) {
                next = position
            } else {
                next = max(try await consumer.committed([tp])[tp] ?? marks.low, marks.low)
            }
            if next < marks.high { return false }
        }
        return true
    }

    private func commit(_ consumer: any EventConsumer) async throws {
        var offsets: [TopicPartition: Int64] = [:]
        for (tp, last) in lastSeen { offsets[tp] = last + 1 }
        for b in pending.values {
            for item in b.items { offsets[item.source] = min(offsets[item.source] ?? item.offset, item.offset) }
        }
        guard !offsets.isEmpty else { return }
        do {
            try await consumer.commit(offsets, mode: .sync)
        } catch let error as EventLogError where error.kind == .notAssigned {
            logger.notice("commit refused, partitions are moving: \(error); the next poll hands them over")
            return
        }
        for (tp, offset) in offsets { committed[tp.description] = offset }
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
