import AttuneEventLog
import AttuneModel
import AttuneRegistry
import AttuneTokenizer
import AttuneTraining
import Foundation
import Logging

/// What `attune replay` rebuilds: one adapter's inputs read back from the topics (a time range,
/// minus excluded records), retrained with today's code and settings into a side lineage that
/// never touches the live one.
public struct ReplayPlan: Sendable {
    /// The live adapter whose inputs are replayed (`tenant/acme`, `domain/legal`).
    public var source: AdapterName
    /// The side lineage the versions are published under (`tenant/acme~replay-2026-12-03`).
    public var target: AdapterName
    public var from: TimestampMs?
    public var to: TimestampMs?
    /// Records left out: by the interaction's `user`, by its `id`, or by position.
    public var excludedUsers: Set<String> = []
    public var excludedIDs: Set<String> = []
    public var excludedPositions: Set<RecordPosition> = []
    /// For a tenant: the domain version to stand on (default: the live tenant's domain at its latest version).
    public var domain: AdapterReference?

    public init(source: AdapterName, target: AdapterName) {
        self.source = source
        self.target = target
    }
}

/// One record's place: `topic[partition]@offset`.
public struct RecordPosition: Hashable, Sendable, CustomStringConvertible {
    public let partition: TopicPartition
    public let offset: Int64

    public init(_ partition: TopicPartition, _ offset: Int64) {
        self.partition = partition
        self.offset = offset
    }

    /// Parses `topic[partition]@offset`.
    public init?(parsing text: String) {
        guard let at = text.lastIndex(of: "@"), let offset = Int64(text[text.index(after: at)...]), offset >= 0,
              let partition = TopicPartition(parsing: String(text[..<at])) else { return nil }
        self.init(partition, offset)
    }

    public var description: String { "\(partition)@\(offset)" }
}

/// What a replay did.
public struct ReplaySummary: Sendable {
    /// Versions published by this run (a resumed run publishes only what was missing).
    public var published: [AdapterRelease] = []
    /// Every record the replay lineage now covers, in training order.
    public var covered: [ConsumerRecord] = []
    public var excluded = 0
    /// Records already covered by an earlier (interrupted) run of the same replay.
    public var resumed = 0
}

/// Rebuilds an adapter from its inputs on the topics. It reads them without a consumer group
/// (the live group's offsets are never touched), trains them in the order they were produced in
/// micro-batches of the worker's budget — replay share, L2-SP toward the previous version, the
/// same packing and steps — and publishes each batch as the next version of the side lineage,
/// covering exactly its records. A replay has no gate: its lineage is reviewed (`attune eval`)
/// before `attune adapter promote` makes it live. Stopped and started again, it resumes after
/// the last published version: the records a version covers are never trained twice.
public final class Replayer {
    public let configuration: TrainWorkerConfiguration
    let log: any EventLog
    let base: LlamaModel
    let builder: ExampleBuilder
    let registry: AdapterRegistry
    let candidates: CandidateTrainer
    let logger: Logger

    public init(configuration: TrainWorkerConfiguration, log: any EventLog, base: LlamaModel, tokenizer: BPETokenizer,
                registry: AdapterRegistry, logger: Logger = Logger(label: "attune.replay", factory: { _ in SwiftLogNoOpLogHandler() })) {
        self.configuration = configuration
        self.log = log
        self.base = base
        self.builder = ExampleBuilder(tokenizer: tokenizer)
        self.registry = registry
        self.logger = logger
        candidates = CandidateTrainer(base: base, config: configuration.trainerConfig, seed: configuration.seed)
    }

    /// Runs the replay until every selected record is covered (or `stop` says so between versions).
    public func run(_ plan: ReplayPlan, stop: @Sendable () -> Bool = { false },
                    progress: (String) -> Void = { _ in }) async throws -> ReplaySummary {
        let c = configuration
        guard plan.source.kind != .meta, plan.target.kind == plan.source.kind, plan.target.isSideLineage, !plan.source.isSideLineage else {
            throw TrainingError.invalid("a replay of \(plan.source) publishes a side lineage of the same kind, e.g. \(plan.source)~replay-1")
        }
        var summary = ReplaySummary()
        let records = try await selectedRecords(plan, excluded: &summary.excluded)
        let existing = await registry.history(plan.target).map(\.release)
        let previous = existing.last
        let done = Set(existing.flatMap { r in r.covers.flatMap { tp, ranges in ranges.flatMap { ($0.first...$0.last).map { RecordPosition(tp, $0) } } } })

        let domain = try await domainBase(plan, resuming: previous)
        var weights: AdapterWeights
        if let previous {
            weights = AdapterWeights(lora: try PEFTAdapterFile.decode(published: Data(try await registry.weights(of: previous)), model: base.config),
                                     blocks: previous.blocks ?? [c.lora.rank], regularizer: nil)
        } else {
            let nameSeed = UInt64(UInt32(bitPattern: Murmur2.hash(Array(plan.source.description.utf8))))
            let lora = try LoRAAdapter(config: c.lora, model: base.config, seed: c.seed &+ nameSeed)
            weights = AdapterWeights(lora: lora, blocks: [lora.config.rank], regularizer: nil)
        }
        var replay = ReplayBuffer(capacity: c.replayCapacity, seed: c.seed)
        var todo: [(ConsumerRecord, TrainingExample)] = []
        for r in records {
            guard let example = try example(r) else { continue }
            if done.contains(RecordPosition(r.topicPartition, r.offset)) {
                replay.offer(example)
                summary.covered.append(r)
                summary.resumed += 1
            } else {
                todo.append((r, example))
            }
        }
        let total = summary.resumed + todo.count
        progress("\(plan.target): \(records.count + summary.excluded) records of \(plan.source), \(summary.excluded) excluded, "
                 + "\(summary.resumed) already covered, \(todo.count) to train")
        var release = previous
        var start = 0
        let budget = c.budget.newTokens(replayRatio: c.replayRatio)
        while start < todo.count, !stop() {
            var end = start, tokens = 0
            while end < todo.count, end == start || tokens + todo[end].1.tokens.count <= budget {
                tokens += todo[end].1.tokens.count
                end += 1
            }
            let batch = Array(todo[start..<end])
            let fresh = batch.map(\.1)
            var candidate = weights.copy()
            if let kind = c.regularizer, release != nil {
                candidate.regularizer = Regularizer(kind: kind, strength: c.regularizerStrength, anchor: candidate.lora.parameters)
            }
            let data = PackedDataset.fitted(fresh + replay.sample(expected: Double(fresh.count) * c.replayRatio), maxSeqLen: c.seqLen)
            let trained = try await candidates.train(candidate, frozen: domain?.lora, data: data, steps: c.budget.steps(rows: data.rows.count),
                                                     rowsPerStep: c.budget.rowsPerStep(data.rows.count))
            weights = AdapterWeights(lora: trained.weights.lora, blocks: trained.weights.blocks, regularizer: nil)
            let bytes = try TrainWorker.publishedBytes(weights.lora, baseModel: c.baseModel)
            let next = AdapterRelease(
                adapter: plan.target.description, version: (release?.version ?? 0) + 1, sha256: AdapterRelease.digest(bytes),
                parent: release?.id, domain: domain?.release.id, baseModel: c.baseModel, baseModelSHA256: c.baseModelSHA256,
                covers: OffsetCoverage(positions: batch.map { ($0.0.topicPartition, $0.0.offset) }),
                metrics: ["examples": Double(fresh.count), "steps": Double(trained.steps), "trained_tokens": Double(trained.tokens),
                          "batch_tokens": Double(data.tokenCount), "train_loss": trained.loss])
            try await ReleasePublisher(adaptersTopic: c.adaptersTopic, eventsTopic: c.eventsTopic, source: c.source + "/replay")
                .publish(next, weights: bytes, on: log)
            for e in fresh { replay.offer(e) }
            release = next
            summary.published.append(next)
            summary.covered += batch.map(\.0)
            start = end
            progress("\(next.id): \(fresh.count) records, \(trained.steps) steps, train loss \(String(format: "%.4f", trained.loss)); "
                     + "\(summary.covered.count)/\(total) covered")
            logger.info("published \(next.id) covering \(fresh.count) replayed records", metadata: ["adapter": "\(plan.target)", "version": "\(next.version)"])
        }
        return summary
    }

    /// The source's records in the time range, in the order they were produced, minus the excluded ones.
    private func selectedRecords(_ plan: ReplayPlan, excluded: inout Int) async throws -> [ConsumerRecord] {
        let c = configuration
        let topic = plan.source.kind == .tenant ? c.interactionsTopic : c.corporaTopic
        let all = try await TopicSlice(log: log).records(of: topic, from: plan.from, to: plan.to)
        var kept: [ConsumerRecord] = []
        for r in all {
            guard let value = r.value else { continue }
            switch plan.source.kind {
            case .tenant:
                guard let i = try? JSONDecoder().decode(Interaction.self, from: Data(value)), i.tenant == plan.source.id else { continue }
                if plan.excludedUsers.contains(i.user) || i.id.map(plan.excludedIDs.contains) == true
                    || plan.excludedPositions.contains(RecordPosition(r.topicPartition, r.offset)) {
                    excluded += 1
                    continue
                }
            case .domain:
                guard let d = try? JSONDecoder().decode(CorpusDocument.self, from: Data(value)), d.domain == plan.source.id else { continue }
                if plan.excludedIDs.contains(d.doc_id) || plan.excludedPositions.contains(RecordPosition(r.topicPartition, r.offset)) {
                    excluded += 1
                    continue
                }
            case .meta:
                continue
            }
            kept.append(r)
        }
        return kept.sorted { ($0.timestamp, $0.partition, $0.offset) < ($1.timestamp, $1.partition, $1.offset) }
    }

    /// The training example of a record (nil for a rejected answer without a correction).
    private func example(_ r: ConsumerRecord) throws -> TrainingExample? {
        let decoder = InputDecoder(builder: builder, corporaTopic: configuration.corporaTopic, interactionsTopic: configuration.interactionsTopic)
        return try decoder.decode(r)?.example
    }

    /// The domain version a tenant replay stands on: the one a resumed replay already stands on,
    /// else the plan's, else the live tenant's domain at its latest version.
    private func domainBase(_ plan: ReplayPlan, resuming previous: AdapterRelease?) async throws -> TrainWorker.DomainBase? {
        guard plan.source.kind == .tenant else { return nil }
        let reference: AdapterReference?
        if let previous {
            reference = previous.domainReference
        } else if let wanted = plan.domain {
            reference = wanted
        } else {
            reference = await registry.latest(plan.source)?.domainReference.map { AdapterReference($0.name) }
        }
        guard let reference else { return nil }
        let release = try await registry.resolve(reference)
        return TrainWorker.DomainBase(release: release, lora: try PEFTAdapterFile.decode(published: Data(try await registry.weights(of: release)), model: base.config))
    }
}
