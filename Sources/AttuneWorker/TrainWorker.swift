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
}

/// Consumes `attune.corpora` and `attune.interactions` in the trainers' group, trains one
/// adapter per domain (stage 1) and per tenant on top of its best domain adapter (stage 2) in
/// micro-batches with replay and regularization, gates every candidate against its parent,
/// publishes accepted versions to `attune.adapters` + `attune.adapter-events`, and only then
/// commits the input offsets. On start it restores the latest versions from `attune.adapters`
/// and skips records that a published version already covers.
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
    var states: [String: AdapterState] = [:]
    var pending: [String: PendingBatch] = [:]
    private var lastSeen: [TopicPartition: Int64] = [:]
    private var deadLetters: (any EventProducer)?

    final class AdapterState {
        let lora: LoRAAdapter
        var replay: ReplayBuffer
        var release: AdapterRelease?
        let domain: (name: String, lora: LoRAAdapter, release: AdapterRelease)?
        var regularizer: Regularizer?

        init(lora: LoRAAdapter, replay: ReplayBuffer, domain: (String, LoRAAdapter, AdapterRelease)?) {
            self.lora = lora
            self.replay = replay
            self.domain = domain.map { (name: $0.0, lora: $0.1, release: $0.2) }
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
        try await restore()
        let producer = try log.makeProducer()
        deadLetters = producer
        let validator = ConsumedRecordValidator(catalog: catalog, deadLetters: producer)
        var consumerConfig = ConsumerConfiguration(groupID: configuration.groupID)
        consumerConfig.autoOffsetStore = false
        let consumer = try log.makeConsumer(consumerConfig)
        try await consumer.subscribe([configuration.corporaTopic, configuration.interactionsTopic])
        var quietSince = ContinuousClock.now
        var assigned = false
        while !stop() {
            let records = try await consumer.poll(maxRecords: 256, timeout: .milliseconds(200))
            if !assigned { assigned = try await !consumer.assignment().isEmpty }
            if !records.isEmpty || !assigned { quietSince = .now }
            for r in records { try await accept(r, validator: validator) }
            let idleNow = ContinuousClock.now - quietSince >= idle
            for name in pending.keys.sorted() where ready(name, flush: idleNow) {
                try await trainAndPublish(name, producer: producer)
            }
            try await commit(consumer)
            if idleNow && pending.values.allSatisfy({ $0.rejectedAt != nil }) { break }
        }
        try await commit(consumer)
        await consumer.close()
        try await producer.flush()
        await producer.close()
    }

    private func ready(_ name: String, flush: Bool) -> Bool {
        guard let b = pending[name], !b.items.isEmpty, b.rejectedAt.map({ $0 < b.items.count }) ?? true else { return false }
        return flush || b.tokens >= configuration.batchTokens || (ContinuousClock.now - b.opened).seconds >= configuration.batchSeconds
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
        if (releases[item.adapter] ?? []).contains(where: { $0.covers(item.source, item.offset) }) {
            stats.skippedAlreadyTrained += 1
            return
        }
        var b = pending[item.adapter] ?? PendingBatch()
        if b.items.isEmpty { b.opened = .now }
        b.items.append(item)
        b.tokens += item.example.tokens.count
        pending[item.adapter] = b
    }

    /// Commits, per partition, the first offset not yet covered by a published version.
    private func commit(_ consumer: any EventConsumer) async throws {
        var offsets: [TopicPartition: Int64] = [:]
        for (tp, last) in lastSeen { offsets[tp] = last + 1 }
        for b in pending.values {
            for item in b.items { offsets[item.source] = min(offsets[item.source] ?? item.offset, item.offset) }
        }
        if !offsets.isEmpty { try await consumer.commit(offsets, mode: .sync) }
    }
}
