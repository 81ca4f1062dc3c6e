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
        let candidate = try await trainer.train(parent.copy(), frozen: nil, data: data, gate: gate, parentLosses: parentLosses)

        #expect(candidate.weights.lora.parameters.array != before, "the candidate trained")
        #expect(parent.lora.parameters.array == before, "the parent's weights are bit-identical")
        #expect(parent.regularizer!.anchor.array == anchor && parent.regularizer!.fisher.array == fisher)
        #expect(candidate.weights.lora !== parent.lora && candidate.weights.regularizer !== parent.regularizer)
        #expect(candidate.losses["heldout"]! < parentLosses["heldout"]!, "trained on the held-out data itself, its loss falls")
        #expect(candidate.passed && candidate.tokensPerSecond > 0)
        #expect(gate.regressions(candidate: ["heldout": 1.2], parent: ["heldout": 1.0]) == ["heldout"])
        #expect(PublicationGate(sets: [("heldout", data)], tolerance: 0.25).regressions(candidate: ["heldout": 1.2], parent: ["heldout": 1.0]).isEmpty)
    }
}
