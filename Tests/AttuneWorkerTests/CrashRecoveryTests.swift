import AttuneEventLog
import AttuneModel
import Foundation
import Testing
@testable import AttuneWorker

private let tiny = LlamaConfig(layers: 2, dim: 64, ffnDim: 96, heads: 4, kvHeads: 2, vocabSize: 80, contextLength: 128)
private let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

/// The `attune` binary built beside this test bundle.
private func attuneBinary() throws -> String {
    let bundleDir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    let found = [bundleDir, bundleDir.deletingLastPathComponent()].map { $0.appendingPathComponent("attune").path }
        .first { FileManager.default.isExecutableFile(atPath: $0) }
    return try #require(found, "build the attune product first (swift build --product attune)")
}

/// Every release on the adapters topic, in offset order per partition.
private func publishedReleases(_ log: any EventLog) async throws -> [AdapterRelease] {
    let consumer = try log.makeConsumer(ConsumerConfiguration())
    let parts = (0..<6).map { TopicPartition("attune.adapters", $0) }
    try await consumer.assign(parts)
    try await consumer.seekToBeginning(parts)
    var out: [AdapterRelease] = []
    for _ in 0..<20 {
        let batch = try await consumer.poll(maxRecords: 500, timeout: .milliseconds(100))
        if batch.isEmpty { break }
        out += batch.compactMap(AdapterRelease.from)
    }
    await consumer.close()
    return out
}

/// A worker process is SIGKILLed in the middle of its work and started again: no valid input
/// is lost or trained twice (each offset is covered by exactly one published version) and each
/// adapter's versions stay 1, 2, 3… without gaps or repeats.
@Test func killedWorkerRestartsWithoutLossOrDuplicates() async throws {
    let binary = try attuneBinary()
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("attune-crash-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    let model = dir.appendingPathComponent("tiny.gguf").path
    try RandomModel.write(tiny, to: model, vocabulary: testVocabulary)

    let logDir = dir.appendingPathComponent("log").path
    let log = EmbeddedEventLog(directory: logDir)
    let catalog = try TopicCatalog(directory: repository.appendingPathComponent("topics").path)
    let admin = try log.makeAdmin()
    _ = try await catalog.apply(to: admin, dryRun: false)
    await admin.close()
    let producer = ValidatingProducer(try log.makeProducer(), catalog: catalog)
    var inputs: [(String, RecordMetadata)] = []
    let domains = (0..<12).map { "d\($0)" }
    for i in 0..<3 {
        for d in domains {
            let value = #"{"domain":"\#(d)","doc_id":"\#(d)\#(i)","text":"A \#(d) text number \#(i) for the crash test.","source":"test"}"#
            inputs.append(("domain/" + d, try await producer.send(ProducerRecord(topic: "attune.corpora", key: d, value: value))))
        }
    }
    await producer.close()

    func worker(idle: Int) throws -> Process {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: binary)
        p.arguments = ["train-worker", "--model", model, "--log-dir", logDir, "--topics-dir", repository.appendingPathComponent("topics").path,
                       "--idle", "\(idle)", "--batch-tokens", "60", "--steps", "1500", "--seq-len", "48", "--batch-size", "2", "--rank", "2",
                       "--gate-tolerance", "100"]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        return p
    }
    let first = try worker(idle: 60)
    var seen = 0
    for _ in 0..<1200 where seen < 1 {
        try await Task.sleep(for: .milliseconds(50))
        seen = try await publishedReleases(log).count
    }
    kill(first.processIdentifier, SIGKILL)
    first.waitUntilExit()
    let beforeRestart = try await publishedReleases(log).count
    #expect(beforeRestart >= 1 && beforeRestart < domains.count, "killed after its first version, before its last")

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
