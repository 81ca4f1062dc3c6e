import AttuneEventLog
import AttuneModel
import AttuneRegistry
import AttuneTraining
import Foundation
import Logging

extension TrainWorker {
    /// Writes the version to `attune.adapters` (safetensors, headers with version, sha256,
    /// parent and the covered offsets), then announces it on `attune.adapter-events`.
    func publish(_ name: AdapterName, state: AdapterState, items: [WorkItem], metrics: [String: Double],
                 producer: any EventProducer) async throws {
        let c = configuration
        let started = ContinuousClock.now
        let bytes = try Self.publishedBytes(state.lora, baseModel: c.baseModel)
        let release = AdapterRelease(adapter: name.description, version: (state.release?.version ?? 0) + 1, sha256: AdapterRelease.digest(bytes),
                                     parent: state.release?.id, domain: state.domain?.release.id, baseModel: c.baseModel,
                                     baseModelSHA256: c.baseModelSHA256, covers: OffsetCoverage(positions: items.map { ($0.source, $0.offset) }),
                                     metrics: metrics, blocks: state.weights.blocks.count > 1 ? state.weights.blocks : nil,
                                     carried: state.release.map { $0.uncommitted(ledger.committed) }.flatMap { $0.isEmpty ? nil : $0 },
                                     initialization: state.release == nil ? state.initialization : nil)
        try await publisher.publish(release, weights: bytes, producer: producer)
        state.release = release
        lineage.remember(release)
        if name.kind == .domain { domains[name] = DomainBase(release: release, lora: try decodeLoRA(bytes)) }
        stats.published += 1
        self.metrics.publishedVersions.increment()
        self.metrics.publishLatency.recordNanoseconds((ContinuousClock.now - started).nanoseconds)
        let now = currentTimestampMs()
        for item in items { self.metrics.freshness.recordMilliseconds(max(0, now - item.timestamp)) }
        logger.info("published \(release.id) sha256 \(release.sha256.prefix(12)) covering \(items.count) records",
                    metadata: ["adapter": "\(name)", "version": "\(release.version)",
                               "partition": "\(Set(items.map(\.source.description)).sorted().joined(separator: ","))"])
    }

    /// A version's bytes on `attune.adapters`: the PEFT safetensors with its adapter config in the metadata.
    static func publishedBytes(_ lora: LoRAAdapter, baseModel: String) throws -> [UInt8] {
        let config = try PEFTAdapterFile.configJSON(lora, baseModel: baseModel)
        let (_, weights) = try PEFTAdapterFile.encode(lora, baseModel: baseModel, metadata: ["adapter_config": String(decoding: config, as: UTF8.self)])
        return Array(weights)
    }

    /// Where this worker's versions are written and announced.
    var publisher: ReleasePublisher {
        ReleasePublisher(adaptersTopic: configuration.adaptersTopic, eventsTopic: configuration.eventsTopic, source: configuration.source)
    }

    /// Announces the latest version of every owned adapter that has no checkpoint (the last
    /// step of a publication, after the event): its publisher died after the adapters record,
    /// maybe before the event. The event id is the release's, so a subscriber that saw an
    /// earlier copy can drop the repeat. The version's inputs, read back from their topics,
    /// join the replay memory restored from the previous checkpoint, and a checkpoint closes
    /// the publication.
    func announceMissing(producer: any EventProducer) async throws {
        for (name, state) in states.sorted(by: { $0.key < $1.key }) where ownership.owns(name) {
            guard let release = state.release, (checkpoints[name]?.version ?? 0) < release.version else { continue }
            try restore(name, state)
            try await publisher.announce(release, producer: producer)
            for example in try await inputs(of: release) { state.replay.offer(example) }
            try await checkpoint(name, state: state, producer: producer)
            stats.reannounced += 1
            logger.notice("announced \(release.id), whose publication had not finished",
                          metadata: ["adapter": "\(release.adapter)", "version": "\(release.version)"])
        }
    }

    /// The training examples of the inputs a release covers, read back from their topics
    /// (those retention has removed are gone).
    func inputs(of release: AdapterRelease) async throws -> [TrainingExample] {
        let consumer = try log.makeConsumer(ConsumerConfiguration())
        var examples: [TrainingExample] = []
        do {
            for (tp, ranges) in release.covers {
                guard [configuration.corporaTopic, configuration.interactionsTopic].contains(tp.topic),
                      let first = ranges.map(\.first).min(), let last = ranges.map(\.last).max() else { continue }
                try await consumer.assign([tp])
                let low = try await consumer.watermarks(tp).low
                try await consumer.seek(tp, to: max(low, first))
                var done = false
                while !done {
                    let records = try await consumer.poll(maxRecords: 256, timeout: .seconds(2))
                    if records.isEmpty { break }
                    for r in records where r.topicPartition == tp {
                        done = r.offset >= last
                        guard release.covers(tp, r.offset), let item = try? decoder.decode(r) else { continue }
                        examples.append(item.example)
                    }
                }
            }
        } catch {
            await consumer.close()
            throw error
        }
        await consumer.close()
        return examples
    }

    /// The trainer state a version leaves behind (replay memory, EWC's Fisher) on
    /// `attune.checkpoints` keyed by adapter, so a worker that takes the adapter over
    /// continues with the same memory.
    func checkpoint(_ name: AdapterName, state: AdapterState, producer: any EventProducer) async throws {
        guard let release = state.release else { return }
        let fisher = state.weights.regularizer.flatMap { $0.kind == .ewc ? $0.fisher.array : nil }
        let checkpoint = TrainerCheckpoint(adapter: name.description, version: release.version, replay: state.replay, fisher: fisher)
        let value = try checkpoint.encoded()
        let covers = String(decoding: try JSONEncoder.sorted.encode(release.covers), as: UTF8.self)
        _ = try await producer.send(ProducerRecord(topic: configuration.checkpointsTopic, key: Array(name.description.utf8), value: value, headers: [
            EventHeader("adapter", name.description), EventHeader("offsets", covers), EventHeader("sha256", AdapterRelease.digest(value)),
            EventHeader("kind", name.kind.rawValue),
        ]))
        checkpoints[name] = checkpoint
    }

    /// Takes in what the followed topics gained: every release joins the known lineage, and a
    /// domain or owned tenant adapter whose latest version is newer than this worker's copy
    /// (another worker published it) is replaced by that version with its checkpointed state.
    func absorb(_ news: PublicationFollower.News) async throws {
        for command in news.commands {
            if let name = AdapterName(parsing: command.adapter) { rebaseRequests[name] = command }
        }
        for cp in news.checkpoints {
            guard let name = AdapterName(parsing: cp.adapter), keepsWeights(name), cp.version >= (checkpoints[name]?.version ?? 0) else { continue }
            checkpoints[name] = cp
        }
        var newest: [AdapterName: AdapterRelease] = [:]
        var domainVersions: [String: AdapterRelease] = [:]
        var newestMeta: [AdapterName: AdapterRelease] = [:]
        for r in news.published {
            guard let name = r.name, !name.isSideLineage else { continue }
            if name.kind == .meta {
                if r.version > (newestMeta[name]?.version ?? 0) { newestMeta[name] = r }
                continue
            }
            lineage.remember(r)
            if name.kind == .domain { domainVersions[r.id] = r }
            if r.version > (newest[name]?.version ?? 0) { newest[name] = r }
        }
        for r in newestMeta.values { try await adoptMetaInitialization(r) }
        for (name, r) in newest.sorted(by: { $0.key < $1.key }) where r.version > (states[name]?.release?.version ?? 0) && keepsWeights(name) {
            do {
                try await adopt(r, domainVersions: domainVersions)
            } catch let error as EventLogError {
                throw error
            } catch {
                logger.error("cannot take over \(r.id): \(error)", metadata: ["adapter": "\(r.adapter)"])
            }
        }
        for cp in news.checkpoints {
            // An evicted state was saved after its version's own checkpoint: it already holds it.
            guard let s = AdapterName(parsing: cp.adapter).flatMap({ states[$0] }), s.isResident, s.release?.version == cp.version else { continue }
            restoreTrainerState(s, from: cp)
        }
    }

    /// Takes `release` over, its weights fetched from the registry and verified, standing on the
    /// domain version it names (else, if that is no longer stored, on the current one until rebased).
    private func adopt(_ release: AdapterRelease, domainVersions: [String: AdapterRelease]) async throws {
        guard let name = release.name, let follower else { return }
        let weights = try await follower.weights(of: release)
        var domain: DomainBase?
        var substitute = false
        if let id = release.domain, let domainName = release.domainReference?.name {
            if let current = domains[domainName], current.release.id == id {
                domain = current
            } else if let held = states.values.compactMap(\.domain).first(where: { $0.release.id == id }) {
                domain = held
            } else if let stored = domainVersions[id] ?? domainVersion(id), await follower.isStored(stored) {
                domain = DomainBase(release: stored, lora: try decodeLoRA(try await follower.weights(of: stored)))
            } else if let current = domains[domainName] {
                domain = current
                substitute = true
                logger.warning("\(release.id) was trained on \(id), no longer stored; it stands on \(current.release.id) until rebased",
                               metadata: ["adapter": "\(release.adapter)", "version": "\(release.version)"])
            }
        }
        if name.kind == .domain { domains[name] = DomainBase(release: release, lora: try decodeLoRA(weights)) }
        let s = AdapterState(lora: try decodeLoRA(weights), blocks: release.blocks, replay: ReplayBuffer(capacity: configuration.replayCapacity, seed: configuration.seed),
                             domain: domain)
        s.release = release
        s.onSubstituteDomain = substitute
        if let cp = checkpoints[name], cp.version <= release.version { restoreTrainerState(s, from: cp) }
        tenantCache?.remove(name)
        states[name] = s
        pending.removeItems(of: [name]) { release.accountsFor($0.source, $0.offset) }
    }

    /// A domain version this worker knows from its lineage, by id (`domain/x@v`).
    private func domainVersion(_ id: String) -> AdapterRelease? {
        guard let reference = AdapterReference(parsing: id) else { return nil }
        return lineage.releases[reference.name]?.first { $0.version == reference.version }
    }

    /// Keeps the newest meta-initialization of a domain for its new tenants.
    private func adoptMetaInitialization(_ release: AdapterRelease) async throws {
        guard let domain = AdapterName.domain(release.name?.id ?? ""), let follower,
              release.version > (metaInitializations[domain]?.release.version ?? 0) else { return }
        do {
            metaInitializations[domain] = DomainBase(release: release, lora: try decodeLoRA(try await follower.weights(of: release)))
        } catch let error as EventLogError {
            throw error
        } catch {
            logger.error("cannot use \(release.id): \(error)", metadata: ["adapter": "\(release.adapter)"])
        }
    }

    /// Replay memory from a checkpoint; the EWC Fisher only from the checkpoint of the same version.
    private func restoreTrainerState(_ s: AdapterState, from cp: TrainerCheckpoint) {
        s.replay = cp.replay
        if let fisher = cp.fisher, cp.version == s.release?.version, configuration.regularizer == .ewc, fisher.count == s.lora.parameterCount {
            s.weights.regularizer = Regularizer(kind: .ewc, strength: configuration.regularizerStrength, anchor: s.lora.parameters, fisher: fisher)
        }
    }

    /// Decodes published weights (safetensors with the PEFT config in the metadata).
    func decodeLoRA(_ bytes: [UInt8]) throws -> LoRAAdapter {
        try PEFTAdapterFile.decode(published: Data(bytes), model: base.config)
    }
}
