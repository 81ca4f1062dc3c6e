import AttuneEventLog
import AttuneModel
import AttuneRegistry
import AttuneTokenizer
import AttuneTraining
import Foundation
import Logging
import AttuneTestSupport
import Testing
@testable import AttuneWorker

private let tiny = LlamaConfig(layers: 2, dim: 64, ffnDim: 96, heads: 4, kvHeads: 2, vocabSize: 80, contextLength: 128)
private let repositoryTopics = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("topics").path

private func interaction(_ tenant: String, _ i: Int) -> String {
    #"{"tenant":"\#(tenant)","user":"u\#(i)","time":"2026-11-29T08:00:0\#(i % 10)Z","prompt":"Question \#(i) from \#(tenant)?","response":"Answer \#(i) for \#(tenant)."}"#
}

private func corpus(_ domain: String, _ i: Int) -> String {
    #"{"domain":"\#(domain)","doc_id":"\#(domain)-\#(i)","text":"The \#(domain) rule number \#(i) says to do it well.","source":"test"}"#
}

/// Corpora for two domains and interactions for three tenants go in; domain versions and
/// tenant adapters (on the pinned or best domain) come out, announced as CloudEvents; every
/// valid input offset is covered by exactly one published version; a malformed record goes to
/// the DLQ with its reason and the partition keeps flowing. A second worker run restores the
/// versions and trains nothing twice.
@Test(.sharedBroker, arguments: TestTransport.selected)
func workerTrainsDomainsAndTenantsFromTheTopics(_ transport: TestTransport) async throws {
    let run = String(UUID().uuidString.prefix(8)).lowercased()
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("attune-worker-\(run)").path
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let log: any EventLog
    switch transport {
    case .embedded: log = EmbeddedEventLog(directory: dir)
    case .kafka:
        let servers = try #require(ProcessInfo.processInfo.environment["ATTUNE_KAFKA_BOOTSTRAP"], "ATTUNE_REQUIRE_KAFKA=1 needs a broker")
        log = KafkaEventLog(KafkaConfiguration(bootstrapServers: servers.split(separator: ",").map(String.init)))
    }
    let prefix = "r\(run)."
    let catalog = try TopicCatalog(directory: repositoryTopics, namePrefix: prefix)
    let admin = try log.makeAdmin()
    _ = try await catalog.apply(to: admin, dryRun: false, maxReplicationFactor: try await (admin as? KafkaAdmin)?.brokerCount())
    await admin.close()
    let corpora = prefix + "attune.corpora", interactions = prefix + "attune.interactions"
    let raw = try log.makeProducer()
    let producer = ValidatingProducer(raw, catalog: catalog, policy: .reject)
    var inputs: [(String, RecordMetadata)] = []
    for i in 0..<6 {
        for d in ["law", "cook"] { inputs.append(("domain/" + d, try await producer.send(ProducerRecord(topic: corpora, key: d, value: corpus(d, i))))) }
    }
    for i in 0..<5 {
        for t in ["acme", "bolt", "cove"] {
            inputs.append(("tenant/" + t, try await producer.send(ProducerRecord(topic: interactions, key: t, value: interaction(t, i)))))
        }
    }
    let bad = try await raw.send(ProducerRecord(topic: interactions, key: "acme", value: #"{"tenant":"acme","oops":1}"#))
    let late = try await producer.send(ProducerRecord(topic: interactions, key: "acme", value: interaction("acme", 7)))
    inputs.append(("tenant/acme", late))
    await raw.close()

    var config = TrainWorkerConfiguration(baseModel: "tiny.gguf", baseModelSHA256: String(repeating: "0", count: 64))
    config.groupID = "trainers-\(run)"
    config.prefixTopics(prefix)
    config.batchTokens = 150
    config.batchSeconds = 60
    config.seqLen = 48
    config.batchSize = 2
    config.stepsPerBatch = 2
    config.lora = LoRAConfig(rank: 2, alpha: 4)
    config.tenantDomains = ["acme": "law", "bolt": "cook"]
    config.gateTolerance = 10
    let base = try RandomModel.load(tiny)
    let worker = TrainWorker(configuration: config, log: log, base: base, tokenizer: try testTokenizer(), catalog: catalog)
    try await worker.run(idle: .milliseconds(1500))
    #expect(worker.stats.deadLettered == 1)
    #expect(Set(worker.releases.keys) == ["domain/law", "domain/cook", "tenant/acme", "tenant/bolt", "tenant/cove"])
    #expect(worker.releases["tenant/acme"]?.allSatisfy { $0.domain?.hasPrefix("domain/law@") == true } == true)
    #expect(worker.releases["tenant/bolt"]?.allSatisfy { $0.domain?.hasPrefix("domain/cook@") == true } == true)
    #expect(worker.releases["tenant/cove"]?.first?.domain != nil, "an unpinned tenant stands on the best domain")

    // Exactly-once coverage of every valid input by the published lineage.
    let all = worker.releases.values.flatMap { $0 }
    for (adapter, meta) in inputs {
        let tp = TopicPartition(meta.topic, meta.partition)
        #expect(all.filter { $0.adapter == adapter && $0.covers(tp, meta.offset) }.count == 1, "\(adapter) \(tp)@\(meta.offset)")
    }
    #expect(!all.contains { $0.covers(TopicPartition(bad.topic, bad.partition), bad.offset) })
    for (name, list) in worker.releases { #expect(list.map(\.version) == Array(1...list.count), "\(name) versions are monotonic") }

    // A subscriber sees one adapter.updated CloudEvent per version, carrying its hash.
    let subscriber = try log.makeConsumer(ConsumerConfiguration(groupID: "subscriber-\(run)"))
    try await subscriber.subscribe([config.eventsTopic])
    var events: [[String: Any]] = []
    try await waitUntil(interval: .zero) {
        for r in try await subscriber.poll(maxRecords: 100, timeout: .milliseconds(200)) {
            events.append(try JSONSerialization.jsonObject(with: Data(r.value!)) as! [String: Any])
        }
        return events.count >= all.count
    }
    await subscriber.close()
    #expect(events.count == all.count)
    #expect(events.allSatisfy { $0["type"] as? String == "adapter.updated" && $0["specversion"] as? String == "1.0" })
    let hashes = Set(events.compactMap { ($0["data"] as? [String: Any])?["sha256"] as? String })
    #expect(hashes == Set(all.map(\.sha256)))

    // The DLQ holds the malformed record with its reason.
    let dlq = try log.makeConsumer(ConsumerConfiguration(groupID: "dlq-reader-\(run)"))
    try await dlq.subscribe([DeadLetter.topic])
    var dead: [ConsumerRecord] = []
    try await waitUntil(interval: .zero) {
        dead += try await dlq.poll(maxRecords: 100, timeout: .milliseconds(200))
            .filter { $0.headers.text(named: DeadLetter.topicHeader) == interactions }
        return !dead.isEmpty
    }
    await dlq.close()
    #expect(dead.count == 1 && dead.first?.headers.text(named: DeadLetter.reasonHeader)?.isEmpty == false)

    // Restart: the new worker restores every adapter and trains nothing twice.
    let again = TrainWorker(configuration: config, log: log, base: base, tokenizer: try testTokenizer(), catalog: catalog)
    try await again.run(idle: .milliseconds(1500))
    #expect(again.stats.published == 0 && again.stats.examplesTrained == 0)
    #expect(again.states["domain/law"]?.replay.items.count == 6, "the replay buffer comes back from attune.checkpoints")
    #expect(again.states["tenant/acme"]?.replay == worker.states["tenant/acme"]?.replay)
    #expect(again.releases.values.flatMap { $0 }.count == all.count)

    // A domain update: law gets version 2 and its pinned tenant is rebased onto it from its
    // replay memory, as a new version that covers no input; cook's tenant stays where it is.
    let more = ValidatingProducer(try log.makeProducer(), catalog: catalog, policy: .reject)
    for i in 6..<11 { _ = try await more.send(ProducerRecord(topic: corpora, key: "law", value: corpus("law", i))) }
    await more.close()
    let third = TrainWorker(configuration: config, log: log, base: base, tokenizer: try testTokenizer(), catalog: catalog)
    try await third.run(idle: .milliseconds(1500))
    #expect(third.releases["domain/law"]?.last?.version == 2)
    let acme = try #require(third.releases["tenant/acme"]?.last)
    #expect(acme.domain == "domain/law@2" && acme.covers.isEmpty && acme.metrics["rebase"] == 1)
    #expect(acme.parent == worker.releases["tenant/acme"]?.last?.id)
    #expect(third.releases["tenant/bolt"] == worker.releases["tenant/bolt"])
    #expect(third.stats.rebased >= 1)
}

/// A candidate that does worse than its parent is not published and its inputs are not
/// committed: a stricter-than-possible gate publishes nothing, and a later worker with a sane
/// gate trains and publishes the same records.
@Test func gateHoldsBackCandidatesThatRegress() async throws {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("attune-gate-\(UUID().uuidString)").path
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let log = EmbeddedEventLog(directory: dir)
    let catalog = try TopicCatalog(directory: repositoryTopics)
    let admin = try log.makeAdmin()
    _ = try await catalog.apply(to: admin, dryRun: false)
    await admin.close()
    let producer = ValidatingProducer(try log.makeProducer(), catalog: catalog)
    for i in 0..<10 { _ = try await producer.send(ProducerRecord(topic: "attune.corpora", key: "law", value: corpus("law", i))) }
    await producer.close()
    var config = TrainWorkerConfiguration(baseModel: "tiny.gguf", baseModelSHA256: String(repeating: "0", count: 64))
    config.seqLen = 48
    config.batchSize = 2
    config.stepsPerBatch = 2
    config.lora = LoRAConfig(rank: 2, alpha: 4)
    config.gateTolerance = -0.99
    config.gateMinimumRise = 0
    let base = try RandomModel.load(tiny)
    let strict = TrainWorker(configuration: config, log: log, base: base, tokenizer: try testTokenizer(), catalog: catalog)
    try await strict.run(idle: .milliseconds(500))
    #expect(strict.stats.rejectedByGate >= 1 && strict.stats.published == 0)
    config.gateTolerance = 10
    let sane = TrainWorker(configuration: config, log: log, base: base, tokenizer: try testTokenizer(), catalog: catalog)
    try await sane.run(idle: .milliseconds(500))
    #expect(sane.stats.published == 1 && sane.stats.examplesTrained == 10, "the held-back records were not lost")
}

/// An embedded log with the repository's topics applied.
private func embeddedLog(_ name: String) async throws -> (EmbeddedEventLog, TopicCatalog, String) {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("attune-\(name)-\(UUID().uuidString)").path
    let log = EmbeddedEventLog(directory: dir)
    let catalog = try TopicCatalog(directory: repositoryTopics)
    let admin = try log.makeAdmin()
    _ = try await catalog.apply(to: admin, dryRun: false)
    await admin.close()
    return (log, catalog, dir)
}

private func smallConfiguration() -> TrainWorkerConfiguration {
    var config = TrainWorkerConfiguration(baseModel: "tiny.gguf", baseModelSHA256: String(repeating: "0", count: 64))
    config.seqLen = 48
    config.batchSize = 2
    config.stepsPerBatch = 2
    config.lora = LoRAConfig(rank: 2, alpha: 4)
    config.gateTolerance = 10
    return config
}

/// Interactions of a pinned tenant that arrive before any corpus of its domain wait for the
/// domain's first version instead of training on the bare base model.
@Test func aNewTenantWaitsForItsDomain() async throws {
    let (log, catalog, dir) = try await embeddedLog("wait")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let producer = ValidatingProducer(try log.makeProducer(), catalog: catalog)
    for i in 0..<5 { _ = try await producer.send(ProducerRecord(topic: "attune.interactions", key: "acme", value: interaction("acme", i))) }
    var config = smallConfiguration()
    config.batchTokens = 40
    config.tenantDomains = ["acme": "law"]
    config.domainWaitSeconds = 3600
    let worker = TrainWorker(configuration: config, log: log, base: try RandomModel.load(tiny), tokenizer: try testTokenizer(), catalog: catalog)
    let tenant = AdapterName(parsing: "tenant/acme")!
    // The worker never idles out here (an idle worker flushes a waiting tenant onto the base):
    // it stops once the tenant is published, and what it held before the corpus is seen from
    // its own loop, so a slow or crowded machine changes nothing.
    final class Seen: @unchecked Sendable { var queuedUntrained = 0 }
    let seen = Seen(), deadline = ContinuousClock.now + .seconds(600)
    async let run: Void = worker.run(idle: .seconds(3600)) {
        if worker.releases.isEmpty { seen.queuedUntrained = max(seen.queuedUntrained, worker.pending[tenant]?.items.count ?? 0) }
        return worker.releases[tenant] != nil || ContinuousClock.now > deadline
    }
    while seen.queuedUntrained < 5 && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(50)) }
    #expect(seen.queuedUntrained == 5, "the tenant's records are held, untrained, before the domain exists")
    try await Task.sleep(for: .seconds(1))
    #expect(worker.releases.isEmpty, "nothing trained before the domain exists")
    for i in 0..<5 { _ = try await producer.send(ProducerRecord(topic: "attune.corpora", key: "law", value: corpus("law", i))) }
    await producer.close()
    try await run
    #expect(worker.releases["tenant/acme"]?.map(\.domain) == ["domain/law@1"])
}

/// A version whose publisher died between writing it to `attune.adapters` and announcing it
/// is announced by the worker that next owns its partition, with the release's own event id,
/// and its checkpoint is written with the version's inputs added to the replay memory.
@Test func anUnannouncedVersionIsAnnouncedByTheNextOwner() async throws {
    let (log, catalog, dir) = try await embeddedLog("announce")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let producer = ValidatingProducer(try log.makeProducer(), catalog: catalog)
    for i in 0..<5 { _ = try await producer.send(ProducerRecord(topic: "attune.corpora", key: "law", value: corpus("law", i))) }
    let base = try RandomModel.load(tiny)
    let first = TrainWorker(configuration: smallConfiguration(), log: log, base: base, tokenizer: try testTokenizer(), catalog: catalog)
    try await first.run(idle: .milliseconds(500))
    let v1 = try #require(first.releases["domain/law"]?.first)

    // What a crash after the adapters record and before the event leaves behind: version 2 stored, never announced.
    var v2 = v1
    v2.version = 2
    v2.parent = v1.id
    var late: [RecordMetadata] = []
    for i in 5..<7 { late.append(try await producer.send(ProducerRecord(topic: "attune.corpora", key: "law", value: corpus("law", i)))) }
    v2.covers = [TopicPartition(late[0].topic, late[0].partition): [OffsetRange(late[0].offset, late[1].offset)!]]
    let weights = try #require(try await readTopic(log, "attune.adapters", partitions: 6).first?.value)
    _ = try await producer.send(ProducerRecord(topic: "attune.adapters", key: Array("domain/law".utf8), value: weights, headers: try v2.headers()))
    await producer.close()

    let next = TrainWorker(configuration: smallConfiguration(), log: log, base: base, tokenizer: try testTokenizer(), catalog: catalog)
    try await next.run(idle: .milliseconds(500))
    #expect(next.stats.reannounced == 1 && next.states["domain/law"]?.release?.version == 2)
    #expect(next.stats.examplesTrained == 0 && next.stats.skippedAlreadyTrained == 2, "version 2's inputs are not trained again")
    #expect(next.states["domain/law"]?.replay.items.count == 7, "version 1's memory plus version 2's inputs")
    #expect(next.checkpoints["domain/law"]?.version == 2)
    let events = try await readTopic(log, "attune.adapter-events", partitions: 6)
        .compactMap { try? JSONSerialization.jsonObject(with: Data($0.value ?? [])) as? [String: Any] }
    #expect(events.compactMap { $0["id"] as? String }.sorted() == [v1, v2].map { "\($0.id)#\($0.sha256.prefix(12))" })
}


/// In on-command mode a domain update leaves tenants where they are until an operator asks:
/// `RebaseCommand.request` moves a tenant onto its domain's latest version, or onto another
/// domain; a request that is already satisfied does nothing when read again.
@Test func onCommandRebaseMovesATenantOnlyWhenAsked() async throws {
    let (log, catalog, dir) = try await embeddedLog("rebase")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let producer = ValidatingProducer(try log.makeProducer(), catalog: catalog)
    for i in 0..<5 {
        for d in ["law", "cook"] { _ = try await producer.send(ProducerRecord(topic: "attune.corpora", key: d, value: corpus(d, i))) }
        _ = try await producer.send(ProducerRecord(topic: "attune.interactions", key: "acme", value: interaction("acme", i)))
    }
    var config = smallConfiguration()
    config.rebase = .onCommand
    config.tenantDomains = ["acme": "law"]
    let base = try RandomModel.load(tiny)
    func runWorker() async throws -> TrainWorker {
        let w = TrainWorker(configuration: config, log: log, base: base, tokenizer: try testTokenizer(), catalog: catalog)
        try await w.run(idle: .milliseconds(800))
        return w
    }
    _ = try await runWorker()
    for i in 5..<10 { _ = try await producer.send(ProducerRecord(topic: "attune.corpora", key: "law", value: corpus("law", i))) }
    let updated = try await runWorker()
    #expect(updated.releases["domain/law"]?.last?.version == 2)
    #expect(updated.releases["tenant/acme"]?.map(\.domain) == ["domain/law@1"], "not moved without a command")

    let command = try await RebaseCommand.request(tenant: "acme", domain: nil, log: log, catalog: catalog, configuration: config)
    #expect(command.domain == "domain/law@2")
    let rebased = try await runWorker()
    #expect(rebased.stats.rebased == 1)
    #expect(rebased.releases["tenant/acme"]?.map(\.domain) == ["domain/law@1", "domain/law@2"])

    _ = try await RebaseCommand.request(tenant: "acme", domain: "cook", log: log, catalog: catalog, configuration: config)
    let moved = try await runWorker()
    #expect(moved.stats.rebased == 1, "the satisfied law request is not repeated; the cook one is done")
    #expect(moved.releases["tenant/acme"]?.last?.domain == "domain/cook@1")
    await producer.close()
    await #expect(throws: EventLogError.self) {
        try await RebaseCommand.request(tenant: "nobody", domain: nil, log: log, catalog: catalog, configuration: config)
    }
}

/// Dynamic architecture: a tenant whose new data is unlike what it learned grows a second
/// adapter block, published as one PEFT adapter of twice the rank whose first block is the
/// previous version unchanged; more data like the new one trains that block without growing.
@Test func aDriftingTenantGrowsANewBlock() async throws {
    let (log, catalog, dir) = try await embeddedLog("grow")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let producer = ValidatingProducer(try log.makeProducer(), catalog: catalog)
    func send(_ prompt: String, _ response: String) async throws {
        let value = #"{"tenant":"acme","user":"u","time":"2026-11-29T08:00:00Z","prompt":"\#(prompt)","response":"\#(response)"}"#
        _ = try await producer.send(ProducerRecord(topic: "attune.interactions", key: "acme", value: value))
    }
    var config = smallConfiguration()
    config.growOnDrift = true
    config.driftThreshold = 1.5
    config.stepsPerBatch = 25
    config.learningRate = 1e-2
    config.domainWaitSeconds = 0
    let base = try RandomModel.load(tiny)
    func runWorker() async throws -> TrainWorker {
        let w = TrainWorker(configuration: config, log: log, base: base, tokenizer: try testTokenizer(), catalog: catalog)
        try await w.run(idle: .milliseconds(800))
        return w
    }
    for i in 0..<5 { try await send("Question \(i)?", "Answer \(i) is yes.") }
    let first = try await runWorker()
    let v1 = try #require(first.states["tenant/acme"]?.lora)
    for i in 0..<5 { try await send("zq \(i) vx", "kkkk jjjj \(i) wwww kkkk") }
    let second = try await runWorker()
    let grown = try #require(second.states["tenant/acme"])
    #expect(second.releases["tenant/acme"]?.map(\.blocks) == [nil, [2, 2]])
    #expect(grown.lora.config.rank == 4)
    for l in 0..<tiny.layers {
        #expect(Array(UnsafeBufferPointer(start: grown.lora.a(l, .v), count: 2 * tiny.dim))
                == Array(UnsafeBufferPointer(start: v1.a(l, .v), count: 2 * tiny.dim)), "block 1 is version 1")
    }
    for i in 5..<10 { try await send("zq \(i) vx", "kkkk jjjj \(i) wwww kkkk") }
    let third = try await runWorker()
    #expect(third.releases["tenant/acme"]?.last?.blocks == [2, 2], "similar data does not grow another block")
    await producer.close()
}

/// A version whose predecessor's inputs are still uncommitted (another adapter's waiting batch
/// on the same partition holds the commit back) carries them, so after `attune.adapters` is
/// compacted down to that version a restarted worker still knows every input was trained:
/// nothing is trained twice.
@Test func compactedVersionsStillAccountForUncommittedInputs() async throws {
    let (log, catalog, dir) = try await embeddedLog("carry")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let names = (0..<100).map { "t\($0)" }
    let partition = { (n: String) in Murmur2.partition(forKey: Array(n.utf8), partitionCount: 12) }
    let (a, b) = try #require(names.lazy.flatMap { x in names.lazy.filter { $0 != x && partition($0) == partition(x) }.map { (x, $0) } }.first)
    let producer = ValidatingProducer(try log.makeProducer(), catalog: catalog)
    for i in 0..<3 { _ = try await producer.send(ProducerRecord(topic: "attune.corpora", key: "law", value: corpus("law", i))) }
    _ = try await producer.send(ProducerRecord(topic: "attune.interactions", key: b, value: interaction(b, 0)))
    var firstWave: [Int64] = []
    for i in 0..<5 { firstWave.append(try await producer.send(ProducerRecord(topic: "attune.interactions", key: a, value: interaction(a, i))).offset) }
    // The second wave follows on the same partition; the idle worker may train it as one batch or several.
    let inputs = firstWave + (1...5).map { firstWave.last! + Int64($0) }
    let tp = TopicPartition("attune.interactions", partition(a))
    var config = smallConfiguration()
    config.batchTokens = 20
    config.tenantDomains = [a: "law", b: "never-published"]
    config.domainWaitSeconds = 600
    let base = try RandomModel.load(tiny)
    let first = TrainWorker(configuration: config, log: log, base: base, tokenizer: try testTokenizer(), catalog: catalog)
    nonisolated(unsafe) var secondWave = false
    // An idle worker flushes b's batch onto the bare base: the idle window must outlast the
    // first version's training on a loaded machine, so the run ends by the condition alone.
    try await first.run(idle: .seconds(900)) {
        let versions = first.releases[.tenant(a)!]?.count ?? 0
        if versions == 1 && !secondWave {
            secondWave = true
            Task { for i in 5..<10 { _ = try await producer.send(ProducerRecord(topic: "attune.interactions", key: a, value: interaction(a, i))) } }
        }
        guard versions >= 2, let last = first.releases[.tenant(a)!]?.last else { return false }
        return inputs.allSatisfy { last.accountsFor(tp, $0) }
    }
    let releases = try #require(first.releases[.tenant(a)!])
    let (v1, v2, last) = (releases[0], releases[1], releases[releases.count - 1])
    #expect(v2.version == 2 && v2.carried == v1.covers,
            "b's waiting record holds the commit below version 1's inputs: \(v1.covers) carried as \(String(describing: v2.carried))")

    let admin = try #require(try log.makeAdmin() as? EmbeddedAdmin)
    #expect(try await admin.maintain() > 0)
    await admin.close()
    let next = TrainWorker(configuration: config, log: log, base: base, tokenizer: try testTokenizer(), catalog: catalog)
    try await next.run(idle: .milliseconds(800))
    #expect(next.stats.skippedAlreadyTrained == 10 && next.stats.examplesTrained == 1, "only b's record is trained")
    #expect(next.releases[.tenant(a)!]?.map(\.version) == [last.version], "the adapters topic kept only the latest version")
    await producer.close()
}

/// Records the worker cannot own correctly or that the gate keeps rejecting end in the DLQ with
/// their reason instead of blocking their partition: an interaction keyed to another tenant,
/// and a batch rejected `gateMaxRejections` times.
@Test func misroutedRecordsAndExhaustedBatchesGoToTheDLQ() async throws {
    let (log, catalog, dir) = try await embeddedLog("dlq")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let producer = ValidatingProducer(try log.makeProducer(), catalog: catalog)
    _ = try await producer.send(ProducerRecord(topic: "attune.interactions", key: "bolt", value: interaction("acme", 0)))
    for i in 0..<5 { _ = try await producer.send(ProducerRecord(topic: "attune.corpora", key: "law", value: corpus("law", i))) }
    await producer.close()
    var config = smallConfiguration()
    config.gateTolerance = -0.99
    config.gateMinimumRise = 0
    config.gateRetrySeconds = 0
    config.gateMaxRejections = 2
    let worker = TrainWorker(configuration: config, log: log, base: try RandomModel.load(tiny), tokenizer: try testTokenizer(), catalog: catalog)
    try await worker.run(idle: .milliseconds(800))
    #expect(worker.stats.rejectedByGate == 2 && worker.stats.published == 0 && worker.stats.deadLettered == 6)
    let dead = try await readTopic(log, DeadLetter.topic, partitions: 3)
    let reasons = dead.compactMap { $0.headers.text(named: DeadLetter.reasonHeader) }
    #expect(reasons.filter { $0.contains("record key must be the tenant") }.count == 1)
    #expect(reasons.filter { $0.contains("domain/law: rejected by the publication gate 2 times") }.count == 5)
    #expect(Set(dead.compactMap(\.value)).count == 6, "the original records, as produced")

    // Nothing is left holding the partitions: a second worker has nothing to do.
    let again = TrainWorker(configuration: smallConfiguration(), log: log, base: try RandomModel.load(tiny), tokenizer: try testTokenizer(), catalog: catalog)
    try await again.run(idle: .milliseconds(500))
    #expect(again.stats.examplesTrained == 0 && again.stats.deadLettered == 0)
}

/// A worker whose adapter another worker published meanwhile (it lost the partition without
/// having polled yet) sees that version before it publishes its candidate and drops the
/// candidate, so the lineage does not fork.
@Test func aCandidateIsDroppedWhenAnotherWorkerPublishedFirst() async throws {
    let (log, catalog, dir) = try await embeddedLog("fork")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let producer = ValidatingProducer(try log.makeProducer(), catalog: catalog)
    for i in 0..<3 { _ = try await producer.send(ProducerRecord(topic: "attune.corpora", key: "law", value: corpus("law", i))) }
    let base = try RandomModel.load(tiny)
    let slow = TrainWorker(configuration: smallConfiguration(), log: log, base: base, tokenizer: try testTokenizer(), catalog: catalog)
    try await slow.run(idle: .milliseconds(500))
    let held = try #require(slow.states["domain/law"])
    for i in 3..<6 { _ = try await producer.send(ProducerRecord(topic: "attune.corpora", key: "law", value: corpus("law", i))) }
    await producer.close()
    let other = TrainWorker(configuration: smallConfiguration(), log: log, base: base, tokenizer: try testTokenizer(), catalog: catalog)
    try await other.run(idle: .milliseconds(500))
    #expect(other.releases["domain/law"]?.last?.version == 2)

    let c = slow.configuration
    slow.follower = try await PublicationFollower(log: log, configuration: c, logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }))
    #expect(try await slow.stillCurrent("domain/law", held) == false)
    #expect(slow.stats.superseded == 1 && slow.states["domain/law"]?.release?.version == 2)
    await slow.follower?.close()
}

/// Freshness: with a batch window of ten minutes, a worker that has read everything there is
/// trains a tenant's one interaction at once, alone, into a version that covers exactly that
/// input, in one optimizer step over a row as long as the interaction (no padding).
@Test func anIdleWorkerTrainsOneInteractionAtOnceIntoAVersionOfItsOwn() async throws {
    let (log, catalog, dir) = try await embeddedLog("fresh")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let producer = ValidatingProducer(try log.makeProducer(), catalog: catalog)
    let sent = try await producer.send(ProducerRecord(topic: "attune.interactions", key: "acme", value: interaction("acme", 1)))
    await producer.close()
    var config = smallConfiguration()
    config.stepsPerBatch = nil
    config.seqLen = 128
    config.batchSeconds = 600
    config.batchTokens = 100_000
    config.domainWaitSeconds = 0
    let worker = TrainWorker(configuration: config, log: log, base: try RandomModel.load(tiny), tokenizer: try testTokenizer(), catalog: catalog)
    let started = ContinuousClock.now
    try await worker.run(idle: .seconds(600)) {
        worker.releases["tenant/acme"] != nil || ContinuousClock.now - started > .seconds(300)
    }
    let versions = try #require(worker.releases["tenant/acme"], "trained without waiting for the batch window")
    let example = try #require(ExampleBuilder(tokenizer: try testTokenizer())
        .interaction(prompt: "Question 1 from acme?", response: "Answer 1 for acme."))
    #expect(versions.count == 1)
    #expect(versions[0].covers == [TopicPartition(sent.topic, sent.partition): [OffsetRange(single: sent.offset)]])
    let positions = example.tokens.count - 1
    try #require(positions <= 2 * 128, "the interaction fits the two rows of one step")
    #expect(versions[0].metrics["examples"] == 1 && versions[0].metrics["steps"] == 1)
    let batchTokens = try #require(versions[0].metrics["batch_tokens"])
    #expect(batchTokens > 0 && batchTokens <= Double(positions), "no padding: rows cut from the interaction itself")
    #expect(versions[0].metrics["trained_tokens"] == versions[0].metrics["batch_tokens"])
}

/// New tenants of one domain version share what their parent scores on the gate's sets: a
/// fresh adapter (B = 0) adds exactly nothing to its domain, so the losses the first new tenant
/// measured serve the next ones, and they are what the domain version scores alone.
@Test func newTenantsOfADomainVersionShareTheirParentsGateLosses() async throws {
    let (log, catalog, dir) = try await embeddedLog("fresh-parents")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let producer = ValidatingProducer(try log.makeProducer(), catalog: catalog)
    for i in 0..<5 { _ = try await producer.send(ProducerRecord(topic: "attune.corpora", key: "law", value: corpus("law", i))) }
    let tenants = ["acme", "bolt", "core"]
    for t in tenants { _ = try await producer.send(ProducerRecord(topic: "attune.interactions", key: t, value: interaction(t, 1))) }
    await producer.close()
    var config = smallConfiguration()
    config.tenantDomains = Dictionary(uniqueKeysWithValues: tenants.map { ($0, "law") })
    let base = try RandomModel.load(tiny)
    let worker = TrainWorker(configuration: config, log: log, base: base, tokenizer: try testTokenizer(), catalog: catalog)
    try await worker.run(idle: .seconds(3))
    let firsts = try tenants.map { try #require(worker.releases[AdapterName.tenant($0)!]?.first, "\($0) published") }
    #expect(Set(firsts.map(\.domain)) == ["domain/law@1"])
    let parentLosses = firsts.map { $0.metrics["probe_loss_parent"] }
    let shared = try #require(parentLosses[0])
    #expect(parentLosses.allSatisfy { $0 == shared }, "\(parentLosses)")

    let state = try #require(worker.states[AdapterName.tenant("acme")!])
    let domain = try #require(worker.domains[AdapterName.domain("law")!])
    let probe = worker.fitted(worker.capped(worker.domainProbe(state), tokens: config.gateSetTokens))
    let zero = try LoRAAdapter(config: config.lora, model: base.config, zeroed: ())
    let alone = Trainer.evaluate(try TrainableLlama(base: base, lora: zero, frozen: domain.lora), probe).loss
    #expect(alone == shared, "the domain version alone scores what a fresh tenant's parent scored")
}

/// A burst of documents larger than one batch may hold is split over several versions, and
/// every document is trained on: each version's steps make at least one pass over its rows.
@Test func aBurstOfDocumentsIsTrainedOnEntirely() async throws {
    let (log, catalog, dir) = try await embeddedLog("burst")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let producer = ValidatingProducer(try log.makeProducer(), catalog: catalog)
    var sent: [RecordMetadata] = []
    for i in 0..<24 { sent.append(try await producer.send(ProducerRecord(topic: "attune.corpora", key: "law", value: corpus("law", i)))) }
    await producer.close()
    var config = smallConfiguration()
    config.stepsPerBatch = nil
    config.maxSteps = 2
    let worker = TrainWorker(configuration: config, log: log, base: try RandomModel.load(tiny), tokenizer: try testTokenizer(), catalog: catalog)
    try await worker.run(idle: .milliseconds(800))
    let versions = try #require(worker.releases["domain/law"])
    #expect(versions.count > 1, "one batch holds at most what one pass of two steps trains")
    for meta in sent {
        #expect(versions.filter { $0.covers(TopicPartition(meta.topic, meta.partition), meta.offset) }.count == 1, "offset \(meta.offset)")
    }
    #expect(versions.reduce(0) { $0 + ($1.metrics["examples"] ?? 0) } == 24 && worker.stats.examplesTrained == 24)
    for v in versions {
        let trained = try #require(v.metrics["trained_tokens"]), batch = try #require(v.metrics["batch_tokens"])
        #expect(trained >= batch, "\(v.id): every row of the batch is trained")
    }
}

/// Many tenants under a memory budget: with room for no tenant but the one training, every
/// other tenant is evicted to the tenant cache between its versions and restored when it trains
/// again; its lineage continues (each version's parent is the one before), every input is
/// covered once, and a state restored from the cache is bit for bit the published weights and
/// the checkpointed replay memory and EWC Fisher of its latest version — which is also what a
/// restarted worker (or the next owner after a hand-over) restores from the topics.
@Test func evictedTenantsAreRestoredBitForBitAndContinueTheirLineage() async throws {
    let (log, catalog, dir) = try await embeddedLog("evict")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let producer = ValidatingProducer(try log.makeProducer(), catalog: catalog)
    let tenants = ["acme", "bolt", "cove"]
    var sent: [(String, RecordMetadata)] = []
    for i in 0..<3 {
        for t in tenants { sent.append((t, try await producer.send(ProducerRecord(topic: "attune.interactions", key: t, value: interaction(t, i))))) }
    }
    await producer.close()
    var config = smallConfiguration()
    config.stepsPerBatch = nil
    config.maxSteps = 1
    config.domainWaitSeconds = 0
    config.regularizer = .ewc
    config.tenantMemory = 1
    config.tenantCacheDirectory = dir + "/tenant-cache"
    let base = try RandomModel.load(tiny)
    let worker = TrainWorker(configuration: config, log: log, base: base, tokenizer: try testTokenizer(), catalog: catalog)
    try await worker.run(idle: .milliseconds(800))

    for t in tenants {
        let versions = try #require(worker.releases[.tenant(t)!])
        #expect(versions.count == 3 && zip(versions.dropFirst(), versions).allSatisfy { $0.parent == $1.id }, "\(t): one lineage")
    }
    for (t, meta) in sent {
        let covering = worker.releases[.tenant(t)!]?.filter { $0.covers(TopicPartition(meta.topic, meta.partition), meta.offset) }
        #expect(covering?.count == 1, "\(t) offset \(meta.offset)")
    }
    #expect(worker.stats.restored >= 6, "each tenant's second and third versions start from the cache")
    #expect(tenants.allSatisfy { worker.states[.tenant($0)!]?.isResident == false }, "nobody trains: everybody waits in the cache")

    let published = try await readTopic(log, "attune.adapters", partitions: 6)
    let checkpoints = try await readTopic(log, "attune.checkpoints", partitions: 6).map { try TrainerCheckpoint.decode($0.value ?? []) }
    var restartConfig = config
    restartConfig.tenantMemory = nil
    let again = TrainWorker(configuration: restartConfig, log: log, base: base, tokenizer: try testTokenizer(), catalog: catalog)
    try await again.run(idle: .milliseconds(500))
    #expect(again.stats.examplesTrained == 0 && again.stats.skippedAlreadyTrained == 0)
    for t in tenants {
        let name = AdapterName.tenant(t)!
        let state = try #require(worker.states[name])
        try worker.restore(name, state)
        let latest = try #require(worker.releases[name]?.last)
        let weights = try #require(published.last { $0.headers.text(named: "sha256") == latest.sha256 }?.value)
        #expect(state.lora.parameters.array == (try worker.decodeLoRA(weights)).parameters.array, "\(t): the published weights, bit for bit")
        let checkpoint = try #require(checkpoints.last { $0.adapter == name.description })
        #expect(checkpoint.version == latest.version)
        #expect(state.replay == checkpoint.replay, "\(t): the checkpointed replay memory")
        #expect(state.weights.regularizer?.fisher.array == checkpoint.fisher, "\(t): the checkpointed Fisher")
        let other = try #require(again.states[name], "restored from the topics after a restart")
        let sameWeights = other.lora.parameters.array == state.lora.parameters.array
        let sameFisher: Bool = other.weights.regularizer?.fisher.array == state.weights.regularizer?.fisher.array
        #expect(sameWeights && other.replay == state.replay && sameFisher, "\(t): same state after a restart")
    }
}
