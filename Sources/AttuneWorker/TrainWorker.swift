import AttuneEventLog
import AttuneModel
import AttuneTokenizer
import AttuneTraining
import Foundation

/// What a worker has done so far.
public struct WorkerStats: Sendable, Equatable {
    public var published = 0
    public var rejectedByGate = 0
    public var deadLettered = 0
    public var skippedAlreadyTrained = 0
    public var examplesTrained = 0
    public var rebased = 0
    public var reannounced = 0
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
    /// Every release this worker knows of, by adapter name.
    public internal(set) var releases: [String: [AdapterRelease]] = [:]
    let log: any EventLog
    let base: LlamaModel
    let decoder: InputDecoder
    private let catalog: TopicCatalog
    let report: @Sendable (String) -> Void
    /// The working copy, at its latest version, of every domain adapter and of the tenant
    /// adapters of owned partitions.
    var states: [String: AdapterState] = [:]
    /// The latest published version of each domain, as a frozen snapshot tenants stand on.
    var domains: [String: DomainBase] = [:]
    var pending: [String: PendingBatch] = [:]
    /// The newest checkpoint seen for each adapter.
    var checkpoints: [String: TrainerCheckpoint] = [:]
    /// Release ids announced on `attune.adapter-events`.
    var announced: Set<String> = []
    /// The newest rebase request of each tenant adapter.
    var rebaseRequests: [String: RebaseCommand] = [:]
    /// Partitions this member owns, and the partition counts of the input topics.
    var owned: Set<TopicPartition> = []
    var inputPartitions: [String: Int] = [:]
    private var lastSeen: [TopicPartition: Int64] = [:]
    /// The offsets this worker last committed, by "topic[partition]".
    var committed: [String: Int64] = [:]
    private var deadLetters: (any EventProducer)?

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

        init(lora: LoRAAdapter, blocks: [Int]? = nil, replay: ReplayBuffer, domain: DomainBase?) {
            self.lora = lora
            self.blocks = blocks ?? [lora.config.rank]
            self.replay = replay
            self.domain = domain
        }
    }

    struct PendingBatch {
        var items: [WorkItem] = []
        var tokens = 0
        var opened = ContinuousClock.now
        /// Set when the gate rejected this batch: it waits for new data before retrying.
        var rejectedAt: Int?
    }

    public init(configuration: TrainWorkerConfiguration, log: any EventLog, base: LlamaModel, tokenizer: BPETokenizer,
                catalog: TopicCatalog, report: @escaping @Sendable (String) -> Void = { _ in }) {
        self.configuration = configuration
        self.log = log
        self.base = base
        self.catalog = catalog
        self.report = report
        decoder = InputDecoder(builder: ExampleBuilder(tokenizer: tokenizer), corporaTopic: configuration.corporaTopic,
                               interactionsTopic: configuration.interactionsTopic)
    }

    /// Runs until no record has arrived for `idle` since the group assigned partitions and
    /// nothing is pending (or `stop` says so), closing micro-batches by size or age as it goes.
    public func run(idle: Duration = .seconds(2), stop: @Sendable () -> Bool = { false }) async throws {
        let c = configuration
        let follower = try await ReleaseFollower(log: log, adapters: c.adaptersTopic, checkpoints: c.checkpointsTopic,
                                                 events: c.eventsTopic, control: c.controlTopic, report: report)
        try await inputPartitionCounts()
        absorb(try await follower.catchUp())
        if !states.isEmpty { report("restored \(states.count) adapters from \(c.adaptersTopic)") }
        let producer = try log.makeProducer()
        deadLetters = producer
        let validator = ConsumedRecordValidator(catalog: catalog, deadLetters: producer)
        let inbox = RebalanceInbox()
        var consumerConfig = ConsumerConfiguration(groupID: c.groupID)
        consumerConfig.autoOffsetStore = false
        consumerConfig.rebalanceHandler = { inbox.append($0) }
        let consumer = try log.makeConsumer(consumerConfig)
        try await consumer.subscribe([c.corporaTopic, c.interactionsTopic])
        var quietSince = ContinuousClock.now
        while !stop() {
            let records = try await consumer.poll(maxRecords: 256, timeout: .milliseconds(200))
            if try await rebalance(inbox.take(), follower: follower, producer: producer) { quietSince = .now }
            if !records.isEmpty || owned.isEmpty { quietSince = .now }
            for r in records where owned.contains(r.topicPartition) { try await accept(r, validator: validator) }
            let idleNow = ContinuousClock.now - quietSince >= idle
            for name in pending.keys.sorted() where ready(name, flush: idleNow) {
                absorb(try await follower.catchUp())
                try await trainAndPublish(name, producer: producer)
            }
            try await rebaseTenants(producer: producer)
            try await commit(consumer)
            if idleNow && pending.values.allSatisfy({ $0.rejectedAt != nil }) { break }
        }
        try await commit(consumer)
        await consumer.close()
        await follower.close()
        try await producer.flush()
        await producer.close()
    }

    private func inputPartitionCounts() async throws {
        let admin = try log.makeAdmin()
        do {
            for topic in [configuration.corporaTopic, configuration.interactionsTopic] {
                guard let d = try await admin.describeTopic(topic) else {
                    throw EventLogError(.unknownTopic, "topic \(topic) does not exist (create it with `attune topics apply`)")
                }
                inputPartitions[topic] = d.partitions
            }
        } catch {
            await admin.close()
            throw error
        }
        await admin.close()
    }

    /// Applies the partition changes a poll delivered: lost partitions drop their pending
    /// (uncommitted) records for the next owner; gained ones first bring the published state up
    /// to date and announce any version its previous owner published but never announced.
    /// Returns whether anything changed.
    private func rebalance(_ events: [RebalanceEvent], follower: ReleaseFollower, producer: any EventProducer) async throws -> Bool {
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
        for (name, b) in pending {
            var kept = b
            kept.items.removeAll { !owned.contains($0.source) }
            kept.tokens = kept.items.reduce(0) { $0 + $1.example.tokens.count }
            kept.rejectedAt = kept.rejectedAt.map { min($0, kept.items.count) }
            pending[name] = kept.items.isEmpty ? nil : kept
        }
        if gained {
            try await follower.rewind()
            absorb(try await follower.catchUp())
            try await announceMissing(producer: producer)
        }
        report("partitions now owned: \(owned.sorted().map(\.description).joined(separator: " "))")
        return true
    }

    /// Whether this member owns the input partition that `name` (`domain/…` or `tenant/…`) is keyed to.
    func owns(_ name: String) -> Bool {
        let isTenant = name.hasPrefix("tenant/")
        let topic = isTenant ? configuration.interactionsTopic : configuration.corporaTopic
        guard let count = inputPartitions[topic] else { return false }
        let key = Array(name.drop { $0 != "/" }.dropFirst().utf8)
        return owned.contains(TopicPartition(topic, Murmur2.partition(forKey: key, partitionCount: count)))
    }

    private func ready(_ name: String, flush: Bool) -> Bool {
        guard let b = pending[name], !b.items.isEmpty, b.rejectedAt.map({ $0 < b.items.count }) ?? true else { return false }
        let age = (ContinuousClock.now - b.opened).seconds
        if states[name] == nil, name.hasPrefix("tenant/"), !domainAvailable(forNewTenant: String(name.dropFirst(7))),
           !flush, age < configuration.domainWaitSeconds {
            return false
        }
        return flush || b.tokens >= configuration.batchTokens || age >= configuration.batchSeconds
    }

    private func accept(_ record: ConsumerRecord, validator: ConsumedRecordValidator) async throws {
        lastSeen[record.topicPartition] = record.offset
        guard let valid = try await validator.check(record) else {
            stats.deadLettered += 1
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
            return
        }
        guard let item else { return }
        if (releases[item.adapter] ?? []).contains(where: { $0.accountsFor(item.source, item.offset) }) {
            stats.skippedAlreadyTrained += 1
            return
        }
        var b = pending[item.adapter] ?? PendingBatch()
        guard !b.items.contains(where: { $0.source == item.source && $0.offset == item.offset }) else { return }
        if b.items.isEmpty { b.opened = .now }
        b.items.append(item)
        b.tokens += item.example.tokens.count
        pending[item.adapter] = b
    }

    /// Commits, per owned partition, the first offset not yet covered by a published version.
    private func commit(_ consumer: any EventConsumer) async throws {
        var offsets: [TopicPartition: Int64] = [:]
        for (tp, last) in lastSeen { offsets[tp] = last + 1 }
        for b in pending.values {
            for item in b.items { offsets[item.source] = min(offsets[item.source] ?? item.offset, item.offset) }
        }
        guard !offsets.isEmpty else { return }
        try await consumer.commit(offsets, mode: .sync)
        for (tp, offset) in offsets { committed[tp.description] = offset }
    }
}

/// Rebalance events as the consumer delivers them during a poll, for the worker to apply after it.
final class RebalanceInbox: @unchecked Sendable {
    private let lock = NSLock()
    private var events: [RebalanceEvent] = []

    func append(_ event: RebalanceEvent) { lock.withLock { events.append(event) } }

    func take() -> [RebalanceEvent] {
        lock.withLock {
            defer { events = [] }
            return events
        }
    }
}
