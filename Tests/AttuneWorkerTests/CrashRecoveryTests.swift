import AttuneEventLog
import AttuneRegistry
import AttuneModel
import Foundation
import AttuneTestSupport
import Testing
@testable import AttuneWorker

private let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

/// A tiny model and a log with the topics, for tests that run `attune train-worker` processes.
private func processFixture(_ name: String) async throws -> (dir: URL, model: String, logDir: String, log: EmbeddedEventLog, catalog: TopicCatalog) {
    let f = try await TinyLogFixture(name)
    return (f.dir, f.model, f.logDir, f.log, f.catalog)
}

/// Every version announced on the adapter-events topic (its history: `attune.adapters` is
/// compacted), as releases with the fields the event carries. A repeated announcement (a worker
/// killed after the event, before its checkpoint, is re-announced by the next owner with the
/// same CloudEvent id) is dropped by its id, as subscribers do.
private func publishedReleases(_ log: any EventLog, prefix: String = "") async throws -> [AdapterRelease] {
    var seen: Set<String> = []
    var releases: [AdapterRelease] = []
    for r in try await readTopic(log, prefix + "attune.adapter-events", partitions: 6) {
        let event = try #require(try JSONSerialization.jsonObject(with: Data(r.value ?? [])) as? [String: Any])
        guard seen.insert(try #require(event["id"] as? String)).inserted else { continue }
        let data = try #require(event["data"] as? [String: Any])
        releases.append(AdapterRelease(adapter: data["adapter"] as! String, version: Int(data["version"] as! String)!,
                                       sha256: data["sha256"] as! String, parent: data["parent"] as? String, domain: nil,
                                       baseModel: "", baseModelSHA256: "", covers: try JSONDecoder().decode(OffsetCoverage.self, from: JSONSerialization.data(withJSONObject: data["covers"]!)),
                                       metrics: [:]))
    }
    return releases
}

/// `attune train-worker` runs from a folder with no `topics/`: it validates against the topic
/// contracts built into the binary and publishes.
@Test func aWorkerProcessRunsFromAnyFolder() async throws {
    let (dir, model, logDir, log, catalog) = try await processFixture("anyfolder")
    defer { try? FileManager.default.removeItem(at: dir) }
    let producer = ValidatingProducer(try log.makeProducer(), catalog: catalog)
    for i in 0..<3 {
        let value = #"{"domain":"law","doc_id":"law\#(i)","text":"A law text number \#(i).","source":"test"}"#
        _ = try await producer.send(ProducerRecord(topic: "attune.corpora", key: "law", value: value))
    }
    await producer.close()
    let p = Process()
    p.executableURL = URL(fileURLWithPath: try attuneExecutable())
    p.currentDirectoryURL = dir
    p.arguments = ["train-worker", "--model", model, "--log-dir", logDir, "--idle", "1", "--steps", "1", "--seq-len", "48",
                   "--batch-size", "2", "--rank", "2", "--gate-tolerance", "100"]
    p.standardOutput = FileHandle.nullDevice
    p.standardError = FileHandle.nullDevice
    try p.run()
    p.waitUntilExit()
    #expect(p.terminationStatus == 0)
    #expect(try await publishedReleases(log).map(\.id) == ["domain/law@1"])
}

/// A running worker's `/metrics` (with `/healthz` and `/readyz`) counts what it did: records
/// consumed and dead-lettered per topic, examples trained, versions published — equal to what
/// the test produced and to the events a subscriber sees. SIGTERM stops it cleanly.
@Test func theWorkersMetricsCountWhatItDid() async throws {
    let (dir, model, logDir, log, catalog) = try await processFixture("metrics")
    defer { try? FileManager.default.removeItem(at: dir) }
    let producer = ValidatingProducer(try log.makeProducer(), catalog: catalog)
    for i in 0..<3 {
        for d in ["law", "cook"] {
            let value = #"{"domain":"\#(d)","doc_id":"\#(d)\#(i)","text":"A \#(d) text number \#(i).","source":"test"}"#
            _ = try await producer.send(ProducerRecord(topic: "attune.corpora", key: d, value: value))
        }
    }
    await producer.close()
    let raw = try log.makeProducer()
    _ = try await raw.send(ProducerRecord(topic: "attune.corpora", key: "law", value: "not json"))
    await raw.close()
    let port = try LoopbackHTTP.freePort()
    let p = Process()
    p.executableURL = URL(fileURLWithPath: try attuneExecutable())
    p.arguments = ["train-worker", "--model", model, "--log-dir", logDir, "--idle", "0", "--steps", "1", "--seq-len", "48",
                   "--batch-size", "2", "--rank", "2", "--gate-tolerance", "100", "--batch-seconds", "0.5",
                   "--metrics-port", "\(port)", "--log-format", "json"]
    p.standardOutput = FileHandle.nullDevice
    p.standardError = FileHandle.nullDevice
    try p.run()
    func metric(_ text: String, _ name: String) -> Double {
        text.split(separator: "\n").first { $0.hasPrefix(name + " ") }.flatMap { Double($0.split(separator: " ").last ?? "") } ?? -1
    }
    var scraped = ""
    let done = await waitUntil(.seconds(300), interval: .milliseconds(200)) {
        guard let answer = try? await LoopbackHTTP.request(port: port, "GET", "/metrics") else { return false }
        scraped = answer.text
        return metric(scraped, "attune_worker_versions_published_total") >= 2
            && metric(scraped, "attune_worker_examples_trained_total") >= 6
            && metric(scraped, #"attune_worker_records_consumed_total{topic="attune.corpora"}"#) >= 7
    }
    #expect(done, "the worker published both domains")
    #expect(try await LoopbackHTTP.request(port: port, "GET", "/healthz").status == 200)
    #expect(try await LoopbackHTTP.request(port: port, "GET", "/readyz").status == 200)
    p.terminate()
    p.waitUntilExit()
    #expect(p.terminationStatus == 0, "SIGTERM stops the worker cleanly")
    let events = try await publishedReleases(log)
    #expect(metric(scraped, #"attune_worker_records_consumed_total{topic="attune.corpora"}"#) == 7)
    #expect(metric(scraped, #"attune_worker_records_dead_lettered_total{topic="attune.corpora"}"#) == 1)
    #expect(metric(scraped, "attune_worker_examples_trained_total") == 6)
    #expect(metric(scraped, "attune_worker_versions_published_total") == Double(events.count) && events.count == 2)
    #expect(metric(scraped, #"attune_worker_gate_decisions_total{decision="accepted"}"#) == 2)
    #expect(scraped.contains("attune_worker_freshness_seconds_bucket"))
}

/// A worker process is SIGKILLed in the middle of its work and started again: no valid input
/// is lost or trained twice (each offset is covered by exactly one published version) and each
/// adapter's versions stay 1, 2, 3… without gaps or repeats.
@Test func killedWorkerRestartsWithoutLossOrDuplicates() async throws {
    let binary = try attuneExecutable()
    let (dir, model, logDir, log, catalog) = try await processFixture("crash")
    defer { try? FileManager.default.removeItem(at: dir) }
    let producer = ValidatingProducer(try log.makeProducer(), catalog: catalog)
    var inputs: [(String, RecordMetadata)] = []
    let domains = (0..<12).map { "d\($0)" }
    /// Each wave starts new adapters: a first version has no parent for the gate to prefer.
    func wave(_ w: Int) async throws {
        for i in 0..<3 {
            for d in domains.map({ "w\(w)\($0)" }) {
                let value = #"{"domain":"\#(d)","doc_id":"\#(d)-\#(i)","text":"A \#(d) text number \#(i) for the crash test.","source":"test"}"#
                inputs.append(("domain/" + d, try await producer.send(ProducerRecord(topic: "attune.corpora", key: d, value: value))))
            }
        }
    }
    try await wave(0)

    func worker(idle: Int) throws -> Process {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: binary)
        p.arguments = ["train-worker", "--model", model, "--log-dir", logDir, "--topics-dir", repository.appendingPathComponent("topics").path,
                       "--idle", "\(idle)", "--batch-tokens", "60", "--steps", "1500", "--seq-len", "48", "--batch-size", "2", "--rank", "2",
                       "--gate-tolerance", "100", "--session-timeout", "6"]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        return p
    }
    let first = try worker(idle: 60)
    try await waitUntil(.seconds(300), interval: .milliseconds(50)) { try await publishedReleases(log).count >= 1 }
    // A second wave right before the kill: however far the first worker got while the test
    // waited (a loaded machine can starve the poll), it dies with work left to do.
    try await wave(1)
    await producer.close()
    kill(first.processIdentifier, SIGKILL)
    first.waitUntilExit()
    let atKill = try await publishedReleases(log)
    let beforeRestart = atKill.count
    let uncovered = inputs.filter { adapter, meta in
        !atKill.contains { $0.adapter == adapter && $0.covers(TopicPartition(meta.topic, meta.partition), meta.offset) }
    }
    #expect(beforeRestart >= 1 && !uncovered.isEmpty, "killed after its first version, with inputs left to train")

    let second = try worker(idle: 2)
    second.waitUntilExit()
    #expect(second.terminationStatus == 0)
    let releases = try await publishedReleases(log)
    #expect(releases.count > beforeRestart, "the restarted worker finished the rest")
    for (adapter, meta) in inputs {
        let tp = TopicPartition(meta.topic, meta.partition)
        #expect(releases.filter { $0.adapter == adapter && $0.covers(tp, meta.offset) }.count == 1, "\(adapter) \(tp)@\(meta.offset)")
    }
    for (name, list) in Dictionary(grouping: releases, by: \.adapter) {
        #expect(list.map(\.version).sorted() == Array(1...list.count), "\(name) versions")
        #expect(Set(list.map(\.sha256)).count == list.count, "\(name): every version is different content")
    }
}

/// A second worker process joins while the first runs: the group moves half the partitions to
/// it, and it continues the adapters it gains from their published versions and checkpointed
/// replay memory — no input lost or trained twice, versions 1, 2, … with each parent the
/// version before, whichever worker published it. On the embedded log and on Kafka; both
/// stop cleanly on SIGTERM.
@Test(.sharedBroker, arguments: TestTransport.selected)
func aJoiningWorkerTakesOverPartitionsWithTheirAdapters(_ transport: TestTransport) async throws {
    let binary = try attuneExecutable()
    let (dir, model, logDir, embedded, repositoryCatalog) = try await processFixture("handover")
    defer { try? FileManager.default.removeItem(at: dir) }
    let topics = repository.appendingPathComponent("topics").path
    var catalog = repositoryCatalog, prefix = ""
    let log: any EventLog
    var transportArguments = ["--log-dir", logDir]
    if transport == .kafka {
        let servers = try #require(ProcessInfo.processInfo.environment["ATTUNE_KAFKA_BOOTSTRAP"], "ATTUNE_REQUIRE_KAFKA=1 needs a broker")
        let run = String(UUID().uuidString.prefix(8)).lowercased()
        prefix = "r\(run)."
        catalog = try TopicCatalog(directory: topics, namePrefix: prefix)
        let kafka = KafkaEventLog(KafkaConfiguration(bootstrapServers: servers.split(separator: ",").map(String.init)))
        let admin = try kafka.makeAdmin()
        _ = try await catalog.apply(to: admin, dryRun: false, maxReplicationFactor: try await (admin as? KafkaAdmin)?.brokerCount())
        await admin.close()
        log = kafka
        transportArguments = ["--transport", "kafka", "--bootstrap", servers, "--topic-prefix", prefix, "--group", "trainers-\(run)"]
    } else {
        log = embedded
    }
    let producer = ValidatingProducer(try log.makeProducer(), catalog: catalog)
    let domains = (0..<12).map { "d\($0)" }
    var inputs: [(String, RecordMetadata)] = []
    func wave(_ w: Int) async throws {
        for i in 0..<2 {
            for d in domains {
                let value = #"{"domain":"\#(d)","doc_id":"\#(d)-\#(w)-\#(i)","text":"Wave \#(w) text \#(i) about \#(d).","source":"test"}"#
                inputs.append(("domain/" + d, try await producer.send(ProducerRecord(topic: prefix + "attune.corpora", key: d, value: value))))
            }
        }
    }
    func worker(_ name: String) throws -> (Process, URL) {
        let stderr = dir.appendingPathComponent("\(name).log")
        _ = FileManager.default.createFile(atPath: stderr.path, contents: nil)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: binary)
        p.arguments = ["train-worker", "--model", model, "--topics-dir", topics, "--idle", "0",
                       "--batch-tokens", "1000", "--batch-seconds", "0.5", "--steps", "2", "--seq-len", "48", "--batch-size", "2",
                       "--rank", "2", "--gate-tolerance", "100"] + transportArguments
        p.standardOutput = FileHandle.nullDevice
        p.standardError = try FileHandle(forWritingTo: stderr)
        try p.run()
        return (p, stderr)
    }
    func published(_ log: URL) throws -> [String] {
        try String(contentsOf: log, encoding: .utf8).split(separator: "\n").compactMap { line in
            let words = line.split(separator: " ")
            return words.firstIndex(of: "published").flatMap { $0 + 1 < words.count ? String(words[$0 + 1]) : nil }
        }
    }
    func owns(_ log: URL) throws -> Bool {
        try String(contentsOf: log, encoding: .utf8).split(separator: "\n").last { $0.contains("partitions now owned:") }
            .map { !$0.hasSuffix("partitions now owned:") } ?? false
    }

    try await wave(1)
    let (a, aLog) = try worker("a")
    try await waitUntil(.seconds(300)) { try published(aLog).count >= domains.count }
    #expect(try published(aLog).count == domains.count, "the first worker published version 1 of every domain")
    let (b, bLog) = try worker("b")
    try await waitUntil(.seconds(300)) { try owns(bLog) }
    #expect(try owns(bLog), "the second worker was given partitions")
    try await wave(2)
    await producer.close()
    // The workers run until told to stop (nothing here depends on how promptly this test runs).
    try await waitUntil(.seconds(600), interval: .milliseconds(200)) {
        let releases = try await publishedReleases(log, prefix: prefix)
        return inputs.allSatisfy { a, m in releases.contains { $0.adapter == a && $0.covers(TopicPartition(m.topic, m.partition), m.offset) } }
    }
    a.terminate()
    b.terminate()
    a.waitUntilExit()
    b.waitUntilExit()
    #expect(a.terminationStatus == 0 && b.terminationStatus == 0, "SIGTERM lets a worker finish, commit and leave")

    let byA = Set(try published(aLog)), byB = Set(try published(bLog))
    let handedOver = domains.filter { byA.contains("domain/\($0)@1") && byB.contains("domain/\($0)@2") }
    #expect(!handedOver.isEmpty, "some domain's version 1 came from the first worker and version 2 from the second")
    if handedOver.isEmpty {
        print("first worker:\n" + (try String(contentsOf: aLog, encoding: .utf8)) + "\nsecond worker:\n" + (try String(contentsOf: bLog, encoding: .utf8)))
    }
    let releases = try await publishedReleases(log, prefix: prefix)
    expectEachInputTrainedOnceInALineage(inputs, releases)

    // The second worker continued the first one's replay memory: its checkpoint holds both waves.
    let checkpoints = try await latestCheckpoints(log, prefix: prefix)
    for d in handedOver { #expect(checkpoints["domain/" + d]?.replay.items.count == 4, "domain/\(d) replay memory") }
}

/// The newest checkpoint of each adapter on `attune.checkpoints`.
private func latestCheckpoints(_ log: any EventLog, prefix: String = "") async throws -> [String: TrainerCheckpoint] {
    var out: [String: TrainerCheckpoint] = [:]
    for r in try await readTopic(log, prefix + "attune.checkpoints", partitions: 12) {
        let cp = try TrainerCheckpoint.decode(r.value ?? [])
        if cp.version >= (out[cp.adapter]?.version ?? 0) { out[cp.adapter] = cp }
    }
    return out
}

/// Two worker processes share the group; one is SIGKILLed. After its session times out the
/// other takes over its partitions and trains what arrives there — no input lost or trained
/// twice, versions 1, 2, … per adapter, each on the version before.
@Test func aKilledWorkersPartitionsAreTakenOverByItsPeer() async throws {
    let binary = try attuneExecutable()
    let (dir, model, logDir, log, catalog) = try await processFixture("takeover")
    defer { try? FileManager.default.removeItem(at: dir) }
    let producer = ValidatingProducer(try log.makeProducer(), catalog: catalog)
    let domains = (0..<12).map { "d\($0)" }
    var inputs: [(String, RecordMetadata)] = []
    func wave(_ w: Int) async throws {
        for d in domains {
            let value = #"{"domain":"\#(d)","doc_id":"\#(d)-\#(w)","text":"Wave \#(w) text about \#(d).","source":"test"}"#
            inputs.append(("domain/" + d, try await producer.send(ProducerRecord(topic: "attune.corpora", key: d, value: value))))
        }
    }
    func worker(_ name: String) throws -> (Process, URL) {
        let stderr = dir.appendingPathComponent("\(name).log")
        _ = FileManager.default.createFile(atPath: stderr.path, contents: nil)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: binary)
        p.arguments = ["train-worker", "--model", model, "--log-dir", logDir, "--idle", "0", "--batch-tokens", "1000", "--batch-seconds", "0.5",
                       "--steps", "2", "--seq-len", "48", "--batch-size", "2", "--rank", "2", "--gate-tolerance", "100", "--session-timeout", "5"]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = try FileHandle(forWritingTo: stderr)
        try p.run()
        return (p, stderr)
    }
    func owned(_ log: URL) throws -> Int {
        let line = try String(contentsOf: log, encoding: .utf8).split(separator: "\n").last { $0.contains("partitions now owned:") }
        return line.map { $0.split(separator: " ").filter { $0.hasPrefix("attune.") }.count } ?? 0
    }

    let (a, aLog) = try worker("a")
    let (b, bLog) = try worker("b")
    try await waitUntil(.seconds(300)) { try owned(aLog) > 0 && owned(bLog) > 0 && owned(aLog) + owned(bLog) == 18 }
    try await wave(1)
    try await waitUntil(.seconds(300), interval: .milliseconds(200)) {
        let releases = try await publishedReleases(log)
        return inputs.allSatisfy { a, m in releases.contains { $0.adapter == a && $0.covers(TopicPartition(m.topic, m.partition), m.offset) } }
    }
    kill(a.processIdentifier, SIGKILL)
    a.waitUntilExit()
    try await wave(2)
    await producer.close()
    try await waitUntil(.seconds(300)) { try owned(bLog) == 18 }
    #expect(try owned(bLog) == 18, "the surviving worker owns every partition")
    try await waitUntil(.seconds(600), interval: .milliseconds(200)) {
        let releases = try await publishedReleases(log)
        return inputs.allSatisfy { a, m in releases.contains { $0.adapter == a && $0.covers(TopicPartition(m.topic, m.partition), m.offset) } }
    }
    b.terminate()
    b.waitUntilExit()
    #expect(b.terminationStatus == 0)
    let releases = try await publishedReleases(log)
    expectEachInputTrainedOnceInALineage(inputs, releases)
}

/// Each input is covered by exactly one published version of its adapter, and each adapter's
/// versions run 1, 2, … with every parent the version before.
private func expectEachInputTrainedOnceInALineage(_ inputs: [(String, RecordMetadata)], _ releases: [AdapterRelease]) {
    for (adapter, meta) in inputs {
        let tp = TopicPartition(meta.topic, meta.partition)
        #expect(releases.filter { $0.adapter == adapter && $0.covers(tp, meta.offset) }.count == 1, "\(adapter) \(tp)@\(meta.offset)")
    }
    for (name, list) in Dictionary(grouping: releases, by: \.adapter) {
        let sorted = list.sorted { $0.version < $1.version }
        #expect(sorted.map(\.version) == Array(1...list.count), "\(name) versions")
        #expect(sorted.map(\.parent) == [nil] + sorted.dropLast().map(\.id), "\(name) lineage")
    }
}
