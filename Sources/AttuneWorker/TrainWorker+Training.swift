import AttuneEventLog
import AttuneModel
import AttuneTensor
import AttuneTraining
import Foundation

extension TrainWorker {
    /// Trains the pending batch of `name` into a candidate, gates it against its parent and
    /// publishes it when it passes.
    func trainAndPublish(_ name: String, producer: any EventProducer) async throws {
        guard var batch = pending[name] else { return }
        let state = try adapterState(name, batch)
        let c = configuration
        let examples = batch.items.map(\.example)
        let held = examples.count >= 5 ? examples.enumerated().filter { $0.offset % 5 == 4 }.map(\.element) : []
        let fresh = examples.count >= 5 ? examples.enumerated().filter { $0.offset % 5 != 4 }.map(\.element) : examples
        let replayed = state.replay.sample(Int(Double(fresh.count) * c.replayRatio))
        let pad = decoderPad
        let model = try TrainableLlama(base: base, lora: state.lora, frozen: state.domain?.lora, seed: c.seed)
        let replaySet = PackedDataset(examples: state.replay.items, seqLen: c.seqLen, padToken: pad)
        let heldSet = PackedDataset(examples: held, seqLen: c.seqLen, padToken: pad)
        let parentReplay = replaySet.rows.isEmpty ? nil : Trainer.evaluate(model, replaySet).loss
        let parentHeld = heldSet.rows.isEmpty ? nil : Trainer.evaluate(model, heldSet).loss
        let parentParameters = state.lora.parameters.array
        let trainer = try Trainer(model: model, data: PackedDataset(examples: fresh + replayed, seqLen: c.seqLen, padToken: pad),
                                  config: TrainerConfig(steps: c.stepsPerBatch, batchSize: c.batchSize,
                                                        optimizer: AdamWConfig(learningRate: c.learningRate), schedule: .constant,
                                                        warmupSteps: 0, seed: c.seed))
        if let kind = c.regularizer, state.release != nil {
            let r = state.regularizer ?? Regularizer(kind: kind, strength: c.regularizerStrength, anchor: state.lora.parameters)
            state.regularizer = r
            trainer.regularizer = r
        }
        trainer.run()
        let candidateReplay = replaySet.rows.isEmpty ? nil : Trainer.evaluate(model, replaySet).loss
        let heldLoss = heldSet.rows.isEmpty ? nil : Trainer.evaluate(model, heldSet).loss
        let forgets = parentReplay.flatMap { p in candidateReplay.map { $0 > p * (1 + c.gateTolerance) } } ?? false
        let regresses = parentHeld.flatMap { p in heldLoss.map { $0 > p * (1 + c.gateTolerance) } } ?? false
        if forgets || regresses {
            parentParameters.withUnsafeBufferPointer { state.lora.parameters.pointer.update(from: $0.baseAddress!, count: $0.count) }
            stats.rejectedByGate += 1
            batch.rejectedAt = batch.items.count
            pending[name] = batch
            report("gate: \(name) candidate rejected (replay loss \(candidateReplay ?? .nan) vs parent \(parentReplay ?? .nan), held-out \(heldLoss ?? .nan) vs parent \(parentHeld ?? .nan))")
            return
        }
        var metrics: [String: Double] = ["examples": Double(examples.count)]
        metrics["replay_loss_parent"] = parentReplay
        metrics["replay_loss"] = candidateReplay
        metrics["heldout_loss"] = heldLoss
        metrics["heldout_loss_parent"] = parentHeld
        try await publish(name, state: state, items: batch.items, metrics: metrics, producer: producer)
        state.regularizer?.consolidate(at: state.lora.parameters)
        for e in examples { state.replay.offer(e) }
        try await checkpoint(name, state: state, producer: producer)
        stats.examplesTrained += examples.count
        pending[name] = nil
    }

    var decoderPad: Int32 { decoder.builder.tokenizer.eosID }

    /// The state of `name`, creating it on first use: a tenant adapter stands on its pinned
    /// domain or on the published domain adapter with the lowest loss on its first examples.
    func adapterState(_ name: String, _ batch: PendingBatch) throws -> AdapterState {
        if let s = states[name] { return s }
        let c = configuration
        var domain: (String, LoRAAdapter, AdapterRelease)?
        if name.hasPrefix("tenant/") {
            let candidates = states.filter { $0.key.hasPrefix("domain/") && $0.value.release != nil }
            let tenant = String(name.dropFirst(7))
            if let pinned = c.tenantDomains[tenant], let s = candidates["domain/" + pinned] {
                domain = (s.release!.adapter, s.lora, s.release!)
            } else if !candidates.isEmpty {
                let probe = PackedDataset(examples: batch.items.map(\.example), seqLen: c.seqLen, padToken: decoderPad)
                let scored = try candidates.map { key, s -> (String, Double) in
                    let zero = try LoRAAdapter(config: c.lora, model: base.config, zeroed: ())
                    return (key, Trainer.evaluate(try TrainableLlama(base: base, lora: zero, frozen: s.lora), probe).loss)
                }
                let best = scored.min { $0.1 < $1.1 }!.0
                domain = (best, candidates[best]!.lora, candidates[best]!.release!)
            }
        }
        let lora = try LoRAAdapter(config: c.lora, model: base.config, seed: c.seed &+ UInt64(abs(name.hashValue % 1000)))
        let s = AdapterState(lora: lora, replay: ReplayBuffer(capacity: c.replayCapacity, seed: c.seed), domain: domain)
        states[name] = s
        return s
    }

    /// Writes the version to `attune.adapters` (safetensors, headers with version, sha256,
    /// parent and the covered offsets), then announces it on `attune.adapter-events`.
    func publish(_ name: String, state: AdapterState, items: [WorkItem], metrics: [String: Double],
                 producer: any EventProducer) async throws {
        let c = configuration
        let (config, _) = try PEFTAdapterFile.encode(state.lora, baseModel: c.baseModel)
        let (_, weights) = try PEFTAdapterFile.encode(state.lora, baseModel: c.baseModel,
                                                      metadata: ["adapter_config": String(decoding: config, as: UTF8.self)])
        let bytes = Array(weights)
        var covers: [String: [[Int64]]] = [:]
        for (tp, group) in Dictionary(grouping: items, by: \.source) {
            var ranges: [[Int64]] = []
            for o in group.map(\.offset).sorted() {
                if let last = ranges.last, last[1] + 1 == o { ranges[ranges.count - 1][1] = o } else { ranges.append([o, o]) }
            }
            covers[tp.description] = ranges
        }
        let release = AdapterRelease(adapter: name, version: (state.release?.version ?? 0) + 1, sha256: AdapterRelease.digest(bytes),
                                     parent: state.release?.id, domain: state.domain?.release.id, baseModel: c.baseModel,
                                     baseModelSHA256: c.baseModelSHA256, covers: covers, metrics: metrics)
        _ = try await producer.send(ProducerRecord(topic: c.adaptersTopic, key: Array(name.utf8), value: bytes, headers: try release.headers()))
        _ = try await producer.send(ProducerRecord(topic: c.eventsTopic, key: Array(name.utf8), value: try release.cloudEvent(source: c.source),
                                                   headers: [EventHeader("content-type", "application/cloudevents+json")]))
        state.release = release
        releases[name, default: []].append(release)
        stats.published += 1
        report("published \(release.id) sha256 \(release.sha256.prefix(12)) covering \(items.count) records")
    }

    /// The trainer state a version leaves behind (its replay buffer), on `attune.checkpoints`
    /// keyed by adapter, so a worker that takes the adapter over continues with the same memory.
    func checkpoint(_ name: String, state: AdapterState, producer: any EventProducer) async throws {
        guard let release = state.release else { return }
        let value = Array(try JSONEncoder.sorted.encode(TrainerCheckpoint(adapter: name, version: release.version, replay: state.replay)))
        let covers = String(decoding: try JSONEncoder.sorted.encode(release.covers), as: UTF8.self)
        _ = try await producer.send(ProducerRecord(topic: configuration.checkpointsTopic, key: Array(name.utf8), value: value, headers: [
            EventHeader("adapter", name), EventHeader("offsets", covers), EventHeader("sha256", AdapterRelease.digest(value)),
            EventHeader("kind", name.hasPrefix("tenant/") ? "tenant" : "domain"),
        ]))
    }

    /// Restores each adapter's replay buffer from the newest checkpoint written for its current version.
    func restoreCheckpoints() async throws {
        let admin = try log.makeAdmin()
        let topic = try await admin.describeTopic(configuration.checkpointsTopic)
        await admin.close()
        guard let topic else { return }
        for r in try await readAll(configuration.checkpointsTopic, partitions: topic.partitions) {
            guard let value = r.value, let c = try? JSONDecoder().decode(TrainerCheckpoint.self, from: Data(value)),
                  let s = states[c.adapter], s.release?.version == c.version else { continue }
            s.replay = c.replay
        }
    }

    /// Every record of a topic, from the beginning to its current end.
    func readAll(_ name: String, partitions: Int) async throws -> [ConsumerRecord] {
        let consumer = try log.makeConsumer(ConsumerConfiguration())
        let parts = (0..<partitions).map { TopicPartition(name, $0) }
        try await consumer.assign(parts)
        try await consumer.seekToBeginning(parts)
        var ends: [TopicPartition: Int64] = [:]
        for p in parts { ends[p] = try await consumer.watermarks(p).high }
        var read: [TopicPartition: Int64] = [:]
        var out: [ConsumerRecord] = []
        while parts.contains(where: { (read[$0] ?? 0) < ends[$0]! }) {
            let records = try await consumer.poll(maxRecords: 64, timeout: .milliseconds(500))
            if records.isEmpty { break }
            for r in records { read[r.topicPartition] = r.offset + 1 }
            out += records
        }
        await consumer.close()
        return out
    }

    /// Reads `attune.adapters` from the beginning: the latest version of each adapter becomes
    /// its state, and every release's covered offsets are remembered.
    func restore() async throws {
        let admin = try log.makeAdmin()
        let topic = try await admin.describeTopic(configuration.adaptersTopic)
        await admin.close()
        guard let topic else { return }
        var latest: [String: (AdapterRelease, [UInt8])] = [:]
        for r in try await readAll(configuration.adaptersTopic, partitions: topic.partitions) {
            guard let release = AdapterRelease.from(r), let value = r.value,
                  AdapterRelease.digest(value) == release.sha256 else { continue }
            releases[release.adapter, default: []].append(release)
            if (latest[release.adapter]?.0.version ?? 0) < release.version { latest[release.adapter] = (release, value) }
        }
        for (name, (release, bytes)) in latest.sorted(by: { $0.key < $1.key }) {
            let (_, meta) = try Safetensors.decode(Data(bytes))
            guard let config = meta["adapter_config"] else { continue }
            let lora = try PEFTAdapterFile.decode(config: Data(config.utf8), weights: Data(bytes), model: base.config)
            var domain: (String, LoRAAdapter, AdapterRelease)?
            if let d = release.domain, let parent = states[String(d.split(separator: "@")[0])], let r = parent.release {
                domain = (r.adapter, parent.lora, r)
            }
            let s = AdapterState(lora: lora, replay: ReplayBuffer(capacity: configuration.replayCapacity, seed: configuration.seed), domain: domain)
            s.release = release
            states[name] = s
        }
        try await restoreCheckpoints()
        if !latest.isEmpty { report("restored \(latest.count) adapters from \(configuration.adaptersTopic)") }
    }
}

/// The replay memory of one adapter version, as stored on `attune.checkpoints`.
struct TrainerCheckpoint: Codable {
    var adapter: String
    var version: Int
    var replay: ReplayBuffer
}
