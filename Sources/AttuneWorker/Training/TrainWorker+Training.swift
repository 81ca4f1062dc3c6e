import AttuneEventLog
import AttuneRegistry
import AttuneModel
import AttuneTensor
import AttuneTraining
import Foundation
import Logging

extension TrainWorker {
    /// Trains the pending batch of `name` into a candidate (a copy of the adapter), gates it
    /// against its parent and publishes it when it passes; a rejected candidate is dropped.
    func trainAndPublish(_ name: AdapterName, producer: any EventProducer) async throws {
        guard let batch = pending[name] else { return }
        let state = try adapterState(name, batch)
        let c = configuration
        let examples = batch.items.map(\.example)
        let held = examples.count >= 5 ? examples.enumerated().filter { $0.offset % 5 == 4 }.map(\.element) : []
        let fresh = examples.count >= 5 ? examples.enumerated().filter { $0.offset % 5 != 4 }.map(\.element) : examples
        let replayed = state.replay.sample(Int((Double(fresh.count) * c.replayRatio).rounded(.up)))
        let gate = PublicationGate(sets: [("heldout", dataset(held)), ("replay", dataset(state.replay.items)), ("probe", domainProbe(state))],
                                   tolerance: c.gateTolerance)
        let parentLosses = try await candidates.losses(state.weights, frozen: state.domain?.lora, gate: gate)
        let parentModel = try candidates.model(state.weights, frozen: state.domain?.lora)
        var weights = state.weights.copy()
        if try grewOnDrift(name, state, &weights, parent: parentModel, fresh: fresh, replayLoss: parentLosses["replay"]) {
            weights.regularizer = nil
        }
        if let kind = c.regularizer, state.release != nil, weights.regularizer == nil {
            weights.regularizer = Regularizer(kind: kind, strength: c.regularizerStrength, anchor: weights.lora.parameters)
        }
        let candidate = try await candidates.train(weights, frozen: state.domain?.lora, data: dataset(fresh + replayed), gate: gate,
                                             parentLosses: parentLosses)
        metrics.trainingTokensPerSecond.record(candidate.tokensPerSecond)
        metrics.batchExamples.record(examples.count)
        guard candidate.passed else {
            stats.rejectedByGate += 1
            metrics.gateRejected.increment()
            let reason = "loss rose on \(candidate.regressions.joined(separator: ", ")): \(candidate.losses) vs parent \(parentLosses)"
            pending.rejected(name, reason: reason, now: .now)
            logger.notice("gate: \(name) candidate rejected; \(reason)", metadata: ["adapter": "\(name)"])
            return
        }
        guard try await stillCurrent(name, state) else { return }
        metrics.gateAccepted.increment()
        var evaluation = PublicationGate.metrics(candidate: candidate.losses, parent: parentLosses)
        evaluation["examples"] = Double(examples.count)
        if candidate.weights.blocks.count > state.weights.blocks.count { evaluation["grown"] = 1 }
        state.weights = candidate.weights
        try await publish(name, state: state, items: batch.items, metrics: evaluation, producer: producer)
        stats.examplesTrained += examples.count
        metrics.trainedExamples.increment(by: examples.count)
        state.weights.regularizer?.consolidate(at: state.lora.parameters)
        for e in examples { state.replay.offer(e) }
        try await checkpoint(name, state: state, producer: producer)
        pending.remove(name)
    }

    /// Dynamic architecture: grows a published tenant adapter's candidate by a new block when
    /// the parent does much worse on the new examples than on its replay memory. Returns whether it grew.
    private func grewOnDrift(_ name: AdapterName, _ state: AdapterState, _ weights: inout AdapterWeights, parent: TrainableLlama,
                             fresh: [TrainingExample], replayLoss: Double?) throws -> Bool {
        let c = configuration
        guard c.growOnDrift, name.kind == .tenant, state.release != nil, weights.blocks.count < c.maxBlocks,
              let replayLoss else { return false }
        let newLoss = Trainer.evaluate(parent, dataset(fresh)).loss
        guard newLoss > replayLoss * (1 + c.driftThreshold) else { return false }
        weights.lora = try weights.lora.grown(by: c.lora.rank, seed: c.seed &+ UInt64(weights.blocks.count))
        weights.blocks.append(c.lora.rank)
        logger.info("drift: \(name) loss \(newLoss) on new data vs \(replayLoss) on its replay memory; grew block \(weights.blocks.count) (rank \(weights.lora.config.rank))",
                    metadata: ["adapter": "\(name)"])
        return true
    }

    /// Retrains a tenant adapter from its replay memory on top of a newer domain version and
    /// publishes it (covering no new input) when it does at least as well on that memory as
    /// the tenant did on its old domain, within the gate's tolerance.
    func rebase(_ name: AdapterName, onto target: DomainBase, producer: any EventProducer) async throws {
        guard let state = states[name], let parent = state.release else { return }
        guard !state.replay.items.isEmpty else {
            logger.notice("rebase: \(name) has no replay memory to retrain from; it stays on \(parent.domain ?? "the base model")",
                          metadata: ["adapter": "\(name)"])
            state.rebaseRejected = target.release.id
            return
        }
        let memory = dataset(state.replay.items)
        let gate = PublicationGate(sets: [("replay", memory)], tolerance: configuration.gateTolerance)
        let parentLosses = try await candidates.losses(state.weights, frozen: state.domain?.lora, gate: gate)
        var weights = state.weights.copy()
        weights.regularizer = nil
        let candidate = try await candidates.train(weights, frozen: target.lora, data: memory, gate: gate, parentLosses: parentLosses)
        guard try await stillCurrent(name, state) else { return }
        guard candidate.passed else {
            state.rebaseRejected = target.release.id
            stats.rejectedByGate += 1
            logger.notice("gate: rebase of \(name) onto \(target.release.id) rejected: \(candidate.losses) vs parent \(parentLosses)",
                          metadata: ["adapter": "\(name)"])
            return
        }
        state.weights.lora = candidate.weights.lora
        state.domain = target
        state.onSubstituteDomain = false
        var metrics = PublicationGate.metrics(candidate: candidate.losses, parent: parentLosses)
        metrics["rebase"] = 1
        try await publish(name, state: state, items: [], metrics: metrics, producer: producer)
        state.weights.regularizer?.consolidate(at: state.lora.parameters)
        try await checkpoint(name, state: state, producer: producer)
        stats.rebased += 1
        self.metrics.rebases.increment()
    }

    /// Rebases the first owned tenant (by name) that an operator asked to move, that stands on
    /// a substitute for a domain version no longer stored, or (automatic mode) whose domain has
    /// a newer version. Returns whether it trained one. A tenant rebases between its batches.
    func rebaseOneTenant(producer: any EventProducer) async throws -> Bool {
        for (name, state) in states.sorted(by: { $0.key < $1.key }) where name.kind == .tenant && ownership.owns(name) {
            guard state.release != nil, pending[name] == nil else { continue }
            let target: DomainBase?
            if let requested = rebaseRequests[name].flatMap(\.target), !stands(state, on: requested) {
                target = domains[requested.name].flatMap { $0.release.version >= requested.version ? $0 : nil }
            } else if state.onSubstituteDomain {
                target = state.domain
            } else if configuration.rebase == .automatic {
                target = try rebaseTarget(name, state)
            } else {
                target = nil
            }
            guard let target, state.rebaseRejected != target.release.id else { continue }
            try await rebase(name, onto: target, producer: producer)
            return true
        }
        return false
    }

    /// Whether `state` is still this worker's latest copy of `name` after reading what other
    /// workers published: if one of them published the adapter meanwhile (this worker lost the
    /// partition without noticing yet), the candidate is dropped instead of forking the lineage.
    func stillCurrent(_ name: AdapterName, _ state: AdapterState) async throws -> Bool {
        try await catchUp()
        guard states[name] === state else {
            stats.superseded += 1
            metrics.supersededCandidates.increment()
            logger.notice("\(name): another worker published \(states[name]?.release?.id ?? "it") meanwhile; candidate dropped",
                          metadata: ["adapter": "\(name)"])
            return false
        }
        return true
    }

    /// Whether the tenant's current version stands on that domain at that version or newer.
    private func stands(_ state: AdapterState, on target: (name: AdapterName, version: Int)) -> Bool {
        guard let current = state.release?.domainReference, let version = current.version else { return false }
        return current.name == target.name && version >= target.version
    }

    /// The domain version a published tenant should stand on when it is not already there:
    /// the latest version of its domain (or of its pinned or best domain, if it has none yet).
    func rebaseTarget(_ name: AdapterName, _ state: AdapterState) throws -> DomainBase? {
        guard let release = state.release else { return nil }
        let target: DomainBase?
        if let current = release.domainReference {
            target = domains[current.name]
        } else if state.rebaseRejected == nil, !state.replay.items.isEmpty {
            target = try chooseDomain(name.id, examples: state.replay.items)
        } else {
            target = nil
        }
        return target?.release.id == release.domain ? nil : target
    }

    /// Whether a domain version a new tenant can start on is published: its pinned domain's,
    /// or (when it is not pinned) any.
    func domainAvailable(forNewTenant tenant: String) -> Bool {
        if let pinned = configuration.tenantDomains[tenant] { return AdapterName.domain(pinned).flatMap { domains[$0] } != nil }
        return !domains.isEmpty
    }

    /// The pinned domain, else the published domain version with the lowest loss on `examples`.
    func chooseDomain(_ tenant: String, examples: [TrainingExample]) throws -> DomainBase? {
        if let pinned = configuration.tenantDomains[tenant] { return AdapterName.domain(pinned).flatMap { domains[$0] } }
        let probe = dataset(examples)
        let zero = try LoRAAdapter(config: configuration.lora, model: base.config, zeroed: ())
        var best: (domain: DomainBase, loss: Double)?
        for name in domains.keys.sorted() {
            let d = domains[name]!
            let loss = Trainer.evaluate(try TrainableLlama(base: base, lora: zero, frozen: d.lora), probe).loss
            if loss < best?.loss ?? .infinity { best = (d, loss) }
        }
        return best?.domain
    }

    /// The state of `name`, creating it on first use (initialized from the seed and the name,
    /// the same in every process): a tenant adapter stands on its pinned domain or on the
    /// published domain adapter with the lowest loss on its first examples.
    func adapterState(_ name: AdapterName, _ batch: PendingBatch) throws -> AdapterState {
        if let s = states[name] { return s }
        let c = configuration
        let domain = name.kind == .tenant ? try chooseDomain(name.id, examples: batch.items.map(\.example)) : nil
        let nameSeed = UInt64(UInt32(bitPattern: Murmur2.hash(Array(name.description.utf8))))
        let lora = try LoRAAdapter(config: c.lora, model: base.config, seed: c.seed &+ nameSeed)
        let s = AdapterState(lora: lora, replay: ReplayBuffer(capacity: c.replayCapacity, seed: c.seed), domain: domain)
        states[name] = s
        return s
    }

    /// A sample of the domain's own memory a tenant stands on, so a tenant candidate that
    /// breaks its domain's knowledge is caught.
    func domainProbe(_ state: AdapterState) -> PackedDataset {
        guard let d = state.domain?.release.name, let memory = states[d]?.replay.items else { return dataset([]) }
        return dataset(Array(memory.prefix(configuration.probeExamples)))
    }

    func dataset(_ examples: [TrainingExample]) -> PackedDataset {
        PackedDataset(examples: examples, seqLen: configuration.seqLen, padToken: decoder.builder.tokenizer.eosID)
    }
}
