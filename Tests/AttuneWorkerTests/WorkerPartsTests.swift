@testable import AttuneWorker
import AttuneEventLog
import AttuneModel
import AttuneRegistry
import AttuneTestSupport
import AttuneTraining
import Foundation
import Testing

/// Each part of the training worker alone: input decoding, partition ownership, batch windows,
/// the commit ledger, the lineage, offset coverage and the candidate trainer.
@Suite struct WorkerPartsTests {
    static let start = ContinuousClock.now

    static func record(_ topic: String, _ json: String, partition: Int = 0, offset: Int64 = 0, key: String? = nil) -> ConsumerRecord {
        ConsumerRecord(topic: topic, partition: partition, offset: offset, timestamp: 0, key: key.map { Array($0.utf8) },
                       value: Array(json.utf8), headers: [])
    }

    static func item(_ adapter: AdapterName, _ tp: TopicPartition, _ offset: Int64, tokens: Int = 10) -> WorkItem {
        WorkItem(adapter: adapter, example: TrainingExample(tokens: Array(repeating: 1, count: tokens), learn: Array(repeating: true, count: tokens)),
                 source: tp, offset: offset, timestamp: 0, key: nil, value: nil)
    }

    // MARK: input decoding

    @Test func inputsDecodeIntoTypedItemsAndBadOnesSayWhy() throws {
        let decoder = InputDecoder(builder: ExampleBuilder(tokenizer: try testTokenizer()), corporaTopic: "attune.corpora",
                                   interactionsTopic: "attune.interactions")
        let chat = try #require(try decoder.decode(Self.record("attune.interactions",
            #"{"tenant":"acme","user":"u","time":"2026-12-01T00:00:00Z","prompt":"the cat","response":"sat"}"#, partition: 2, offset: 7)))
        #expect(chat.adapter == "tenant/acme" && chat.source == TopicPartition("attune.interactions", 2) && chat.offset == 7)
        let doc = try #require(try decoder.decode(Self.record("attune.corpora",
            #"{"domain":"law","doc_id":"a","text":"the cat sat","source":"s"}"#)))
        #expect(doc.adapter == "domain/law" && !doc.example.tokens.isEmpty)
        #expect(try decoder.decode(Self.record("attune.interactions",
            #"{"tenant":"acme","user":"u","time":"t","prompt":"p","response":"r","feedback":"rejected"}"#)) == nil,
                "a rejected answer without a correction teaches nothing")

        func failure(_ record: ConsumerRecord) -> String {
            do {
                _ = try decoder.decode(record)
                return "decoded"
            } catch { return "\(error)" }
        }
        #expect(failure(Self.record("attune.corpora", "not json")).contains("not a valid corpus document"))
        #expect(failure(Self.record("attune.interactions", #"{"tenant":"acme","user":"u","time":"t","response":"r"}"#)).contains("no prompt"))
        #expect(failure(Self.record("attune.interactions", #"{"tenant":7,"user":"u","time":"t","prompt":"p","response":"r"}"#)).contains("tenant"))
        let long = String(repeating: "x", count: 200)
        #expect(failure(Self.record("attune.corpora", #"{"domain":"\#(long)","doc_id":"a","text":"t","source":"s"}"#))
            .contains("not a valid adapter name"))
        #expect(failure(Self.record("attune.interactions", #"{"tenant":"acme~replay-1","user":"u","time":"t","prompt":"p","response":"r"}"#))
            .contains("reserved for side lineages"), "a record cannot train a replay's lineage")
    }

    // MARK: partition ownership

    @Test func ownershipFollowsRebalancesAndTheKeysPartition() {
        var ownership = PartitionOwnership(corporaTopic: "attune.corpora", interactionsTopic: "attune.interactions")
        ownership.partitionCounts = ["attune.corpora": 3, "attune.interactions": 6]
        let acme: AdapterName = "tenant/acme"
        let home = TopicPartition("attune.interactions", Murmur2.partition(forKey: Array("acme".utf8), partitionCount: 6))
        #expect(ownership.inputPartition(of: acme) == home)
        #expect(ownership.inputPartition(of: "domain/law")?.topic == "attune.corpora")
        #expect(!ownership.owns(acme))
        let gained = ownership.apply([.assigned([home])])
        #expect(gained && ownership.owns(acme) && ownership.owns(home))
        let gainedAgain = ownership.apply([.revoked([home])])
        #expect(!gainedAgain, "losing partitions gains none")
        #expect(!ownership.owns(acme))

        let json = #"{"tenant":"acme"}"#
        #expect(ownership.misrouted(Self.record(home.topic, json, partition: home.partition, key: "acme"), adapter: acme) == nil)
        #expect(ownership.misrouted(Self.record(home.topic, json, partition: home.partition, key: "bolt"), adapter: acme)?
            .contains("record key must be the tenant it names (acme)") == true)
        #expect(ownership.misrouted(Self.record(home.topic, json, partition: (home.partition + 1) % 6, key: "acme"), adapter: acme)?
            .contains("not the one its key acme hashes to") == true)
    }

    // MARK: batch windows

    @Test func batchesCloseBySizeAgeOrIdlenessAndRejectedOnesWait() {
        let window = BatchWindow(tokens: 25, seconds: 10, domainWaitSeconds: 30, gateRetrySeconds: 60)
        let tp = TopicPartition("attune.interactions", 0)
        let t0 = Self.start
        var queue = BatchQueue()
        let added = queue.add(Self.item("tenant/a", tp, 5), now: t0)
        let addedTwice = queue.add(Self.item("tenant/a", tp, 5), now: t0)
        #expect(added && !addedTwice, "the same input is queued once")
        let notWaiting: (AdapterName) -> Bool = { _ in false }
        #expect(queue.next(window, now: t0 + .seconds(1), flush: false, waitingForDomain: notWaiting) == nil)
        #expect(queue.next(window, now: t0 + .seconds(1), flush: true, waitingForDomain: notWaiting) == "tenant/a", "an idle worker flushes")
        #expect(queue.next(window, now: t0 + .seconds(10), flush: false, waitingForDomain: notWaiting) == "tenant/a", "by age")
        queue.add(Self.item("tenant/a", tp, 6), now: t0)
        queue.add(Self.item("tenant/a", tp, 7), now: t0)
        #expect(queue.next(window, now: t0, flush: false, waitingForDomain: notWaiting) == "tenant/a", "30 tokens ≥ 25")

        // A new tenant waits for a domain, up to the domain wait (unless the worker is idle).
        #expect(queue.next(window, now: t0, flush: false, waitingForDomain: { _ in true }) == nil)
        #expect(queue.next(window, now: t0 + .seconds(30), flush: false, waitingForDomain: { _ in true }) == "tenant/a")
        #expect(queue.next(window, now: t0, flush: true, waitingForDomain: { _ in true }) == "tenant/a", "an idle worker does not wait")
        #expect(queue.next(window, now: t0, flush: true, waitingForDomain: { _ in true }, domainPending: { _ in true }) == nil,
                "…unless the domain it waits for is queued to train")
        #expect(queue.next(window, now: t0 + .seconds(30), flush: true, waitingForDomain: { _ in true }, domainPending: { _ in true }) == "tenant/a")

        queue.rejected("tenant/a", reason: "loss rose", now: t0)
        #expect(queue.allRejected)
        #expect(queue.next(window, now: t0 + .seconds(59), flush: true, waitingForDomain: notWaiting) == nil, "waits after a rejection")
        #expect(queue.next(window, now: t0 + .seconds(60), flush: false, waitingForDomain: notWaiting) == "tenant/a", "retries in time")
        queue.add(Self.item("tenant/a", tp, 8), now: t0)
        #expect(queue.next(window, now: t0, flush: false, waitingForDomain: notWaiting) == "tenant/a", "or with new data")

        queue.rejected("tenant/a", reason: "again", now: t0)
        #expect(queue.exhausted(after: 2).map(\.name) == ["tenant/a"] && queue.exhausted(after: 3).isEmpty)
        #expect(queue.lowestOffsets == [tp: 5])
        queue.removeItems { $0.offset < 7 }
        #expect(queue["tenant/a"]?.items.map(\.offset) == [7, 8] && queue["tenant/a"]?.rejectedAt == 2)
        #expect(queue.lowestOffsets == [tp: 7])
        queue.removeItems { _ in true }
        #expect(queue.isEmpty, "an emptied batch goes")
    }

    // MARK: commit ledger

    @Test func theCommitStopsBelowTheFirstInputNoVersionCovers() {
        let a = TopicPartition("attune.interactions", 0), b = TopicPartition("attune.interactions", 1)
        var ledger = CommitLedger()
        #expect(ledger.toCommit(waiting: [:]).isEmpty)
        ledger.read(a, 9)
        ledger.read(b, 4)
        #expect(ledger.nextToRead(a) == 10)
        #expect(ledger.toCommit(waiting: [:]) == [a: 10, b: 5])
        #expect(ledger.toCommit(waiting: [a: 7]) == [a: 7, b: 5], "a waiting record holds its partition's commit")
        ledger.didCommit([a: 7, b: 5])
        #expect(ledger.committed == [a: 7, b: 5])
        ledger.keep(only: [b])
        #expect(ledger.toCommit(waiting: [:]) == [b: 5] && ledger.nextToRead(a) == nil, "a lost partition is the next owner's")
    }

    // MARK: lineage and coverage

    static func release(_ adapter: String, _ version: Int, covers: OffsetCoverage, carried: OffsetCoverage? = nil) -> AdapterRelease {
        AdapterRelease(adapter: adapter, version: version, sha256: String(repeating: "0", count: 64), parent: nil, domain: nil,
                       baseModel: "m", baseModelSHA256: "0", covers: covers, metrics: [:], carried: carried)
    }

    @Test func theLineageKnowsWhatItsVersionsTrained() {
        let tp = TopicPartition("attune.interactions", 3)
        var lineage = Lineage(kept: 2)
        lineage.remember(Self.release("tenant/a", 1, covers: [tp: [OffsetRange(0, 4)!]]))
        lineage.remember(Self.release("tenant/a", 1, covers: [tp: [OffsetRange(0, 4)!]]))
        #expect(lineage.releases["tenant/a"]?.count == 1, "a release is remembered once")
        lineage.remember(Self.release("tenant/a", 2, covers: [tp: [OffsetRange(single: 9)]]))
        lineage.remember(Self.release("tenant/a", 3, covers: [tp: [OffsetRange(single: 12)]], carried: [tp: [OffsetRange(0, 4)!]]))
        #expect(lineage.releases["tenant/a"]?.map(\.version) == [2, 3], "the latest two are kept")
        #expect(lineage.trained("tenant/a", tp, 2), "carried by version 3")
        #expect(lineage.trained("tenant/a", tp, 9) && lineage.trained("tenant/a", tp, 12))
        #expect(!lineage.trained("tenant/a", tp, 5) && !lineage.trained("tenant/b", tp, 12))
        lineage.remember(Self.release("nonsense", 1, covers: [:]))
        #expect(lineage.releases.count == 1)
    }

    @Test func coverageMergesOffsetsAndKeepsItsWireFormat() throws {
        let a = TopicPartition("attune.corpora", 0), b = TopicPartition("attune.interactions", 11)
        let positions: [(TopicPartition, Int64)] = [(a, 3), (a, 1), (a, 2), (a, 7), (b, 0), (a, 2)]
        let coverage = OffsetCoverage(positions: positions)
        #expect(coverage == [a: [OffsetRange(1, 3)!, OffsetRange(single: 7)], b: [OffsetRange(single: 0)]])
        #expect(coverage.offsetCount == 5 && coverage.contains(a, 2) && !coverage.contains(a, 4) && !coverage.contains(b, 1))
        let json = String(decoding: try JSONEncoder.sorted.encode(coverage), as: UTF8.self)
        #expect(json == #"{"attune.corpora[0]":[[1,3],[7,7]],"attune.interactions[11]":[[0,0]]}"#)
        #expect(try JSONDecoder().decode(OffsetCoverage.self, from: Data(json.utf8)) == coverage)
        for bad in [#"{"t[0]":[[3,1]]}"#, #"{"t[0]":[[-1,1]]}"#, #"{"t[0]":[[1]]}"#, #"{"t[0]":[[1,2,3]]}"#, #"{"no-partition":[[1,2]]}"#] {
            #expect(throws: DecodingError.self, "\(bad)") { try JSONDecoder().decode(OffsetCoverage.self, from: Data(bad.utf8)) }
        }
        #expect(OffsetRange(5, 4) == nil && OffsetRange(-1, 0) == nil)
    }

    // MARK: candidate trainer

    @Test func aCandidateTrainsACopyAndLeavesItsParentUntouched() async throws {
        let tiny = LlamaConfig(layers: 2, dim: 64, ffnDim: 96, heads: 4, kvHeads: 2, vocabSize: 80, contextLength: 128)
        let base = try RandomModel.load(tiny)
        let lora = try LoRAAdapter(config: LoRAConfig(rank: 2, alpha: 4), model: tiny, seed: 3)
        for i in 0..<lora.parameterCount { lora.parameters[i] += 0.01 }
        let parent = AdapterWeights(lora: lora, blocks: [2],
                                    regularizer: Regularizer(kind: .ewc, strength: 1, anchor: lora.parameters, fisher: Array(repeating: 0.5, count: lora.parameterCount)))
        let before = parent.lora.parameters.array, anchor = parent.regularizer!.anchor.array, fisher = parent.regularizer!.fisher.array
        let builder = ExampleBuilder(tokenizer: try testTokenizer())
        let data = PackedDataset(examples: (0..<4).map { builder.corpus("the cat sat on the mat \($0)") }, seqLen: 16, padToken: 0)
        let trainer = CandidateTrainer(base: base, config: TrainerConfig(steps: 3, batchSize: 2, optimizer: AdamWConfig(learningRate: 1e-2),
                                                                         schedule: .constant, warmupSteps: 0, seed: 1), seed: 1)
        let gate = PublicationGate(sets: [("heldout", data)], tolerance: 0)
        let parentLosses = try await trainer.losses(parent, frozen: nil, gate: gate)
        let candidate = try await trainer.train(parent.copy(), frozen: nil, data: data, steps: 3, rowsPerStep: 2)
        let losses = try await trainer.losses(candidate.weights, frozen: nil, gate: gate)

        #expect(candidate.weights.lora.parameters.array != before, "the candidate trained")
        #expect(parent.lora.parameters.array == before, "the parent's weights are bit-identical")
        #expect(parent.regularizer!.anchor.array == anchor && parent.regularizer!.fisher.array == fisher)
        #expect(candidate.weights.lora !== parent.lora && candidate.weights.regularizer !== parent.regularizer)
        #expect(losses["heldout"]! < parentLosses["heldout"]!, "trained on the held-out data itself, its loss falls")
        #expect(gate.regressions(candidate: losses, parent: parentLosses).isEmpty && candidate.tokensPerSecond > 0)
        #expect(candidate.steps == 3 && candidate.tokens == 3 * 2 * 16)
        #expect(gate.regressions(candidate: ["heldout": 1.2], parent: ["heldout": 1.0]) == ["heldout"])
        #expect(PublicationGate(sets: [("heldout", data)], tolerance: 0.25).regressions(candidate: ["heldout": 1.2], parent: ["heldout": 1.0]).isEmpty)
    }

    @Test func theGateIgnoresRisesBelowItsFloor() {
        let data = PackedDataset.fitted([TrainingExample(tokens: [1, 2, 3], learn: [true, true, true])], maxSeqLen: 8)
        let gate = PublicationGate(sets: [("replay", data)], tolerance: 0.05, minimumRise: 0.05)
        #expect(gate.regressions(candidate: ["replay": 0.06], parent: ["replay": 0.01]).isEmpty,
                "a memorized set: six times the parent's loss, but only 0.05 nats")
        #expect(gate.regressions(candidate: ["replay": 2.2], parent: ["replay": 2.0]) == ["replay"], "0.2 nats and 10% is a regression")
        #expect(gate.regressions(candidate: ["replay": 2.08], parent: ["replay": 2.0]).isEmpty, "4% is within the tolerance")
    }

    // MARK: freshness: packing, budget, windows, gate memory

    @Test func fittedPackingHasNoPaddingAndLearnsEveryTargetOnce() {
        let tokens = (0..<11).map { Int32($0) }
        let learn = (0..<11).map { $0 != 3 }
        let data = PackedDataset.fitted([TrainingExample(tokens: tokens, learn: learn)], maxSeqLen: 4)
        #expect(data.seqLen == 4 && data.rows.count == 3 && data.tokenCount == 12)
        #expect(data.rows.map(\.tokens) == [[0, 1, 2, 3], [4, 5, 6, 7], [6, 7, 8, 9]], "the last row ends at the stream's end")
        #expect(data.rows.map(\.targets) == [[1, 2, -1, 4], [5, 6, 7, 8], [-1, -1, 9, 10]], "the overlap learns nothing twice")
        let even = PackedDataset.fitted([TrainingExample(tokens: (0..<10).map { Int32($0) }, learn: Array(repeating: true, count: 10))],
                                        maxSeqLen: 4)
        #expect(even.seqLen == 3 && even.rows.map(\.tokens) == [[0, 1, 2], [3, 4, 5], [6, 7, 8]], "nine positions: three rows of three")
        let learned = data.rows.flatMap(\.targets).filter { $0 >= 0 }
        #expect(learned.sorted() == tokens.enumerated().filter { $0.offset > 0 && learn[$0.offset] }.map(\.element))

        let short = PackedDataset.fitted([TrainingExample(tokens: [7, 8, 9], learn: [false, true, true])], maxSeqLen: 128)
        #expect(short.seqLen == 2 && short.rows.count == 1 && short.rows[0].targets == [8, 9], "a short batch gets a short row")
        #expect(PackedDataset.fitted([TrainingExample(tokens: [7], learn: [true])], maxSeqLen: 8).rows.isEmpty)
        #expect(PackedDataset.fitted([TrainingExample(tokens: [1, 2, 3], learn: [false, false, false])], maxSeqLen: 8).rows.isEmpty)
    }

    @Test func stepsFollowTheDataUpToTheCap() {
        var budget = TrainingBudget(fixedSteps: nil, epochs: 1, maxSteps: 4, batchSize: 4, seqLen: 128)
        #expect(budget.steps(rows: 1) == 1 && budget.rowsPerStep(1) == 1, "one short interaction: one step of one row")
        #expect(budget.steps(rows: 10) == 3 && budget.rowsPerStep(10) == 4, "one pass")
        #expect(budget.steps(rows: 40) == 10, "one pass even beyond the cap: every row trains")
        #expect(budget.passTokens == 4 * 4 * 128 && budget.newTokens(replayRatio: 0.5) == 1365)
        budget.epochs = 2
        #expect(budget.steps(rows: 10) == 4, "two passes, capped")
        #expect(budget.steps(rows: 3) == 2)
        budget.fixedSteps = 7
        #expect(budget.steps(rows: 1) == 7, "fixed steps win")
    }

    @Test func caughtUpWorkersTrainAtOnceBusyOnesLingerAndTheOldestBatchGoesFirst() throws {
        var window = BatchWindow(tokens: 1000, seconds: 10, lingerSeconds: 0, domainWaitSeconds: 30, gateRetrySeconds: 60)
        let tp = TopicPartition("attune.interactions", 0)
        let t0 = Self.start
        let notWaiting: (AdapterName) -> Bool = { _ in false }
        var queue = BatchQueue()
        queue.add(Self.item("tenant/b", tp, 1), now: t0)
        queue.add(Self.item("tenant/a", tp, 2), now: t0 + .seconds(1))
        #expect(queue.next(window, now: t0 + .seconds(1), flush: false, caughtUp: false, waitingForDomain: notWaiting) == nil,
                "a worker still reading lets batches grow")
        #expect(queue.next(window, now: t0 + .seconds(1), flush: false, caughtUp: true, waitingForDomain: notWaiting) == "tenant/b",
                "caught up, it trains at once, the oldest batch first")
        window.lingerSeconds = 2
        #expect(queue.next(window, now: t0 + .seconds(1), flush: false, caughtUp: true, waitingForDomain: notWaiting) == nil)
        #expect(queue.next(window, now: t0 + .seconds(2), flush: false, caughtUp: true, waitingForDomain: notWaiting) == "tenant/b")

        for offset in Int64(3)...6 { queue.add(Self.item("tenant/a", tp, offset), now: t0) }
        let batch = try #require(queue["tenant/a"])
        #expect(batch.leading(tokens: 25).map(\.offset) == [2, 3], "the oldest records within the budget")
        #expect(batch.leading(tokens: 5).map(\.offset) == [2], "at least one")
        queue.rejected("tenant/a", reason: "loss rose", now: t0)
        queue.add(Self.item("tenant/c", tp, 7), now: t0 + .seconds(3))
        queue.remove(batch.leading(tokens: 25), of: "tenant/a", now: t0 + .seconds(4))
        #expect(queue["tenant/a"]?.items.map(\.offset) == [4, 5, 6] && queue["tenant/a"]?.rejectedAt == nil)
        #expect(queue.next(window, now: t0 + .seconds(6), flush: false, caughtUp: true, waitingForDomain: notWaiting) == "tenant/b")
        queue.remove(queue["tenant/b"]!.items, of: "tenant/b", now: t0 + .seconds(4))
        #expect(queue.next(window, now: t0 + .seconds(6), flush: false, caughtUp: true, waitingForDomain: notWaiting) == "tenant/c",
                "the rest of a split burst waits behind the batches that were waiting")
        queue.remove(queue["tenant/a"]!.items, of: "tenant/a", now: t0)
        #expect(queue["tenant/a"] == nil)
    }

    @Test func replayDrawsKeepTheirShareAndTheGateSampleIsKept() {
        var replay = ReplayBuffer(capacity: 100, seed: 4)
        let examples = (0..<40).map { TrainingExample(tokens: [Int32($0), 1], learn: [true, true]) }
        for e in examples { replay.offer(e) }
        let draws = (0..<2000).map { _ in replay.sample(expected: 0.5).count }
        #expect(Set(draws) == [0, 1])
        #expect(abs(Double(draws.reduce(0, +)) / 2000 - 0.5) < 0.05, "half an example on average")
        #expect(replay.sample(expected: 2).count == 2 && replay.sample(expected: 0).isEmpty)
        let distinct = replay.distinct(16)
        #expect(distinct.count == 16 && Set(distinct.map(\.tokens)).count == 16)

        var memory = GateMemory()
        let first = memory.replaySet(from: &replay, size: 16, redrawAfter: 3)
        #expect(first.count == 16)
        let sets = ["replay": first]
        memory.published(version: 1, sets: sets, losses: ["replay": 1.5, "heldout": 2.0])
        #expect(memory.parentLosses(version: 1, sets: sets) == ["replay": 1.5], "the parent's losses on unchanged sets")
        #expect(memory.parentLosses(version: 2, sets: sets).isEmpty, "another version is measured again")
        #expect(memory.parentLosses(version: 1, sets: ["replay": Array(first.dropFirst())]).isEmpty, "another sample too")
        for e in examples.prefix(10) { replay.offer(e) }
        #expect(memory.replaySet(from: &replay, size: 16, redrawAfter: 3) == first, "kept while the memory grows by less than double")
        memory.published(version: 2, sets: sets, losses: [:])
        memory.published(version: 3, sets: sets, losses: [:])
        #expect(memory.replaySet(from: &replay, size: 16, redrawAfter: 3) != first, "redrawn after three versions")
    }

    // MARK: tenant cache

    @Test func theTenantCacheRestoresAStateBitForBit() throws {
        let tiny = LlamaConfig(layers: 2, dim: 64, ffnDim: 96, heads: 4, kvHeads: 2, vocabSize: 80, contextLength: 128)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("attune-tenant-cache-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let cache = try TenantStateCache(directory: dir)
        let lora = try LoRAAdapter(config: LoRAConfig(rank: 2, alpha: 4), model: tiny, seed: 5)
        for i in 0..<lora.parameterCount { lora.parameters[i] = Float(i % 97) * 1e-3 + .ulpOfOne * Float(i % 3) }
        let fisher = (0..<lora.parameterCount).map { Float($0 % 13) * 0.37 }
        let weights = AdapterWeights(lora: lora, blocks: [1, 1],
                                     regularizer: Regularizer(kind: .ewc, strength: 0.3, anchor: lora.parameters, fisher: fisher, gamma: 0.8))
        var replay = ReplayBuffer(capacity: 4, seed: 9)
        for i in 0..<7 { replay.offer(TrainingExample(tokens: [Int32(i), 2, 3], learn: [false, true, i % 2 == 0])) }
        var memory = TrainWorker.AdapterMemory(weights: weights, replay: replay)
        _ = memory.gate.replaySet(from: &memory.replay, size: 2, redrawAfter: 8)
        memory.gate.published(version: 3, sets: ["replay": memory.gate.replaySample], losses: ["replay": 1.25])
        memory.heldOutToTrain = [TrainingExample(tokens: [4, 5], learn: [true, true])]
        let name: AdapterName = "tenant/acme ünïcode/x"
        try cache.save(memory, of: name)
        let back = try cache.load(name, model: tiny)
        #expect(back.weights.lora.parameters.array == lora.parameters.array && back.weights.blocks == [1, 1])
        #expect(back.weights.lora.config == lora.config)
        let r = try #require(back.weights.regularizer)
        #expect(r.kind == .ewc && r.strength == 0.3 && r.gamma == 0.8 && r.fisher.array == fisher && r.anchor.array == lora.parameters.array)
        #expect(back.replay == memory.replay && back.gate == memory.gate && back.heldOutToTrain == memory.heldOutToTrain)
        #expect(back.bytes == memory.bytes)
        cache.remove(name)
        #expect(throws: TrainingError.self) { try cache.load(name, model: tiny) }
    }
}
