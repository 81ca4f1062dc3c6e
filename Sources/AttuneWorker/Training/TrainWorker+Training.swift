import AttuneEventLog
import AttuneRegistry
import AttuneModel
import AttuneTensor
import AttuneTraining
import Foundation
import Logging

extension TrainWorker {
    /// Trains the pending batch of `name` (its oldest records, up to what one pass of the
    /// step cap holds) into a candidate (a copy of the adapter), gates it against its parent and
    /// publishes it when it passes; a rejected candidate is dropped. Every fifth example of a
    /// batch of five or more is held out: the gate measures it unseen, the next batch trains it.
    func trainAndPublish(_ name: AdapterName, producer: any EventProducer) async throws {
        guard let batch = pending[name] else { return }
        var clock = PhaseClock()
        let state = try adapterState(name, batch)
        try enforceTenantMemory(keeping: name)
        let c = configuration
        let items = batch.leading(tokens: c.budget.newTokens(replayRatio: c.replayRatio))
        let examples = items.map(\.example)
        let holdOut = examples.count >= 5
        let held = holdOut ? examples.enumerated().filter { $0.offset % 5 == 4 }.map(\.element) : []
        let fresh = state.heldOutToTrain + (holdOut ? examples.enumerated().filter { $0.offset % 5 != 4 }.map(\.element) : examples)
        let replayed = state.replay.sample(expected: Double(fresh.count) * c.replayRatio)
        let sets = gateSets(state, heldOut: held)
        let gate = PublicationGate(sets: sets.map { ($0.name, fitted($0.examples)) }, tolerance: c.gateTolerance,
                                   minimumRise: c.gateMinimumRise)
        let setsByName = Dictionary(uniqueKeysWithValues: sets.map { ($0.name, $0.examples) })
        var parentLosses = state.gate.parentLosses(version: state.release?.version, sets: setsByName)
        let freshOn = state.release == nil && state.initialization == nil ? state.domain?.release : nil
        if let freshOn { parentLosses.merge(freshTenantLosses.losses(of: freshOn, on: setsByName)) { a, _ in a } }
        let unscored = Set(gate.sets.map(\.name)).subtracting(parentLosses.keys)
        if !unscored.isEmpty {
            let scored = try await candidates.losses(state.weights, frozen: state.domain?.lora, gate: gate, only: unscored)
            parentLosses.merge(scored) { a, _ in a }
            if let freshOn { freshTenantLosses.remember(freshOn, sets: setsByName, losses: scored) }
        }
        clock.lap("gate-parent")
        var weights = state.weights.copy()
        if try grewOnDrift(name, state, &weights, fresh: fresh) {
            weights.regularizer = nil
        }
        if let kind = c.regularizer, state.release != nil, weights.regularizer == nil {
            weights.regularizer = Regularizer(kind: kind, strength: c.regularizerStrength, anchor: weights.lora.parameters)
        }
        let data = fitted(fresh + replayed)
        let trained = try await candidates.train(weights, frozen: state.domain?.lora, data: data, steps: c.budget.steps(rows: data.rows.count),
                                                 rowsPerStep: c.budget.rowsPerStep(data.rows.count))
        clock.lap("train")
        let losses = try await candidates.losses(trained.weights, frozen: state.domain?.lora, gate: gate)
        clock.lap("gate-candidate")
        metrics.trainingTokensPerSecond.record(trained.tokensPerSecond)
        metrics.batchExamples.record(examples.count)
        let regressions = gate.regressions(candidate: losses, parent: parentLosses)
        guard regressions.isEmpty else {
            stats.rejectedByGate += 1
            metrics.gateRejected.increment()
            let reason = "loss rose on \(regressions.joined(separator: ", ")): \(losses) vs parent \(parentLosses)"
            pending.rejected(name, reason: reason, now: .now)
            logger.notice("gate: \(name) candidate rejected; \(reason)", metadata: ["adapter": "\(name)"])
            return
        }
        guard try await stillCurrent(name, state) else { return }
        metrics.gateAccepted.increment()
        var evaluation = PublicationGate.metrics(candidate: losses, parent: parentLosses)
        evaluation["examples"] = Double(examples.count)
        evaluation["steps"] = Double(trained.steps)
        evaluation["trained_tokens"] = Double(trained.tokens)
        evaluation["train_loss"] = trained.loss
        evaluation["batch_tokens"] = Double(data.tokenCount)
        if trained.weights.blocks.count > state.weights.blocks.count { evaluation["grown"] = 1 }
        state.weights = trained.weights
        try await publish(name, state: state, items: items, metrics: evaluation, producer: producer)
        clock.lap("publish")
        stats.examplesTrained += examples.count
        metrics.trainedExamples.increment(by: examples.count)
        state.consolidate()
        state.heldOutToTrain = held
        if let version = state.release?.version { state.gate.published(version: version, sets: setsByName, losses: losses) }
        for e in examples { state.replay.offer(e) }
        try await checkpoint(name, state: state, producer: producer)
        pending.remove(items, of: name, now: .now)
        clock.lap("checkpoint")
        for phase in clock.phases { metrics.phase(phase.name, seconds: phase.seconds) }
        logger.info("\(state.release?.id ?? name.description): \(examples.count) records, \(trained.steps) steps of \(data.seqLen)-token rows; \(clock.summary)",
                    metadata: ["adapter": "\(name)", "version": "\(state.release?.version ?? 0)"])
    }

    /// The gate's sets for a candidate of `state`: the batch's held-out examples, the kept
    /// replay sample and the domain probe, each cut to `gateSetTokens` tokens.
    private func gateSets(_ state: AdapterState, heldOut: [TrainingExample]) -> [(name: String, examples: [TrainingExample])] {
        let c = configuration
        let replay = state.gate.replaySet(from: &state.replay, size: c.gateReplayExamples, redrawAfter: c.gateSampleVersions)
        return [("heldout", heldOut), ("replay", replay), ("probe", domainProbe(state))].map { ($0.0, capped($0.1, tokens: c.gateSetTokens)) }
    }

    /// The leading examples holding at most `tokens` tokens (at least one, when there is one).
    func capped(_ examples: [TrainingExample], tokens: Int) -> [TrainingExample] {
        var taken = 0, count = 0
        for e in examples {
            if count > 0 && taken + e.tokens.count > tokens { break }
            taken += e.tokens.count
            count += 1
        }
        return Array(examples.prefix(count))
    }

    /// Dynamic architecture: grows a published tenant adapter's candidate by a new block when
    /// the parent does much worse on the new examples than on its replay memory. Returns whether it grew.
    private func grewOnDrift(_ name: AdapterName, _ state: AdapterState, _ weights: inout AdapterWeights,
                             fresh: [TrainingExample]) throws -> Bool {
        let c = configuration
        guard c.growOnDrift, name.kind == .tenant, state.release != nil, weights.blocks.count < c.maxBlocks,
              !state.replay.items.isEmpty else { return false }
        let parent = try candidates.model(state.weights, frozen: state.domain?.lora)
        let replayLoss = Trainer.evaluate(parent, fitted(state.replay.items)).loss
        let newLoss = Trainer.evaluate(parent, fitted(fresh)).loss
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
        try restore(name, state)
        guard !state.replay.items.isEmpty else {
            logger.notice("rebase: \(name) has no replay memory to retrain from; it stays on \(parent.domain ?? "the base model")",
                          metadata: ["adapter": "\(name)"])
            state.rebaseRejected = target.release.id
            return
        }
        let c = configuration
        let gate = PublicationGate(sets: [("replay", fitted(state.replay.items))], tolerance: c.gateTolerance, minimumRise: c.gateMinimumRise)
        let parentLosses = try await candidates.losses(state.weights, frozen: state.domain?.lora, gate: gate)
        var weights = state.weights.copy()
        weights.regularizer = nil
        let memory = fitted(capped(state.replay.items, tokens: c.budget.passTokens))
        let trained = try await candidates.train(weights, frozen: target.lora, data: memory, steps: c.budget.steps(rows: memory.rows.count),
                                                 rowsPerStep: c.budget.rowsPerStep(memory.rows.count))
        let losses = try await candidates.losses(trained.weights, frozen: target.lora, gate: gate)
        guard try await stillCurrent(name, state) else { return }
        guard gate.regressions(candidate: losses, parent: parentLosses).isEmpty else {
            state.rebaseRejected = target.release.id
            stats.rejectedByGate += 1
            logger.notice("gate: rebase of \(name) onto \(target.release.id) rejected: \(losses) vs parent \(parentLosses)",
                          metadata: ["adapter": "\(name)"])
            return
        }
        state.weights.lora = trained.weights.lora
        state.domain = target
        state.onSubstituteDomain = false
        var metrics = PublicationGate.metrics(candidate: losses, parent: parentLosses)
        metrics["rebase"] = 1
        try await publish(name, state: state, items: [], metrics: metrics, producer: producer)
        state.consolidate()
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
        } else if state.rebaseRejected == nil, try restore(name, state), !state.replay.items.isEmpty {
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
        if domains.count <= 1 { return domains.values.first }
        let probe = fitted(examples)
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
        if let s = states[name] {
            try restore(name, s)
            return s
        }
        let c = configuration
        let domain = name.kind == .tenant ? try chooseDomain(name.id, examples: batch.items.map(\.example)) : nil
        let nameSeed = UInt64(UInt32(bitPattern: Murmur2.hash(Array(name.description.utf8))))
        var lora = try LoRAAdapter(config: c.lora, model: base.config, seed: c.seed &+ nameSeed)
        let meta = domain?.release.name.flatMap { metaInitializations[$0] }.flatMap { m -> DomainBase? in
            let a = m.lora.config, b = c.lora
            guard a.rank == b.rank && a.alpha == b.alpha && a.useRSLoRA == b.useRSLoRA && Set(a.targets) == Set(b.targets) else {
                logger.warning("\(name) starts from a fresh adapter: \(m.release.id) has another LoRA shape (rank \(a.rank), alpha \(a.alpha))",
                               metadata: ["adapter": "\(name)"])
                return nil
            }
            return m
        }
        if let meta { lora = meta.lora.copy() }
        let s = AdapterState(lora: lora, replay: ReplayBuffer(capacity: c.replayCapacity, seed: c.seed), domain: domain)
        s.initialization = meta?.release.id
        states[name] = s
        return s
    }

    /// A sample of the domain's own memory a tenant stands on, so a tenant candidate that
    /// breaks its domain's knowledge is caught.
    func domainProbe(_ state: AdapterState) -> [TrainingExample] {
        guard let d = state.domain?.release.name, let memory = states[d]?.replay.items else { return [] }
        return Array(memory.prefix(configuration.probeExamples))
    }

    /// Examples packed without padding into rows of at most `seqLen` tokens.
    func fitted(_ examples: [TrainingExample]) -> PackedDataset {
        PackedDataset.fitted(examples, maxSeqLen: configuration.seqLen)
    }
}
