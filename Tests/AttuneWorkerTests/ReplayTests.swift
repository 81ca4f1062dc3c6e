import AttuneEventLog
import AttuneModel
import AttuneRegistry
import AttuneTestSupport
import AttuneTraining
import AttuneWorker
import Foundation
import Testing

/// A folder with a tiny GGUF and an embedded log holding 8 interactions of tenant acme (users
/// u0 and u1 alternating) already trained by a worker process into live versions.
private func replayFixture(_ name: String) async throws -> (dir: URL, model: String, logDir: String, log: EmbeddedEventLog) {
    let f = try await TinyLogFixture(name)
    let (dir, model, logDir, log, catalog) = (f.dir, f.model, f.logDir, f.log, f.catalog)
    let producer = ValidatingProducer(try log.makeProducer(), catalog: catalog)
    for i in 0..<8 {
        let value = #"{"tenant":"acme","user":"u\#(i % 2)","id":"i\#(i)","time":"2026-12-01T00:00:0\#(i)Z","prompt":"question \#(i)?","response":"answer \#(i)."}"#
        _ = try await producer.send(ProducerRecord(topic: "attune.interactions", key: "acme", value: value))
    }
    await producer.close()
    let run = try runAttune(["train-worker", "--model", model, "--log-dir", logDir, "--idle", "1", "--steps", "1", "--seq-len", "48",
                             "--batch-size", "2", "--rank", "2", "--gate-tolerance", "100", "--domain-wait", "0"], in: dir)
    #expect(run.status == 0, "\(run.err)")
    return (dir, model, logDir, log)
}

private func releases(_ log: any EventLog, _ name: String) async throws -> [AdapterRelease] {
    let registry = try await AdapterRegistry(log: log)
    _ = try await registry.catchUp()
    let history = await registry.history(AdapterName(parsing: name)!).map(\.release)
    await registry.close()
    return history
}

private func positions(_ releases: [AdapterRelease]) -> [RecordPosition] {
    releases.flatMap { r in r.covers.flatMap { tp, ranges in ranges.flatMap { ($0.first...$0.last).map { RecordPosition(tp, $0) } } } }
}

/// `attune replay` rebuilds a tenant without one user's records into a side lineage: its
/// versions cover exactly the other user's records, once each; the live versions and the live
/// group's committed offsets are untouched; a live worker run afterwards neither trains nor
/// adopts the side lineage; and `attune adapter promote` makes the replay's weights the live
/// tenant's next version.
@Test func aReplayRebuildsATenantWithoutAUsersRecordsAndIsPromoted() async throws {
    let (dir, model, logDir, log) = try await replayFixture("replay")
    defer { try? FileManager.default.removeItem(at: dir) }
    let live = try await releases(log, "tenant/acme")
    let group = try log.makeConsumer(ConsumerConfiguration(groupID: "attune-trainers"))
    let partitions = (0..<6).map { TopicPartition("attune.interactions", $0) }
    let committed = try await group.committed(partitions)
    await group.close()
    #expect(!live.isEmpty && !committed.isEmpty)

    let replay = try runAttune(["replay", "tenant/acme", "--as", "tenant/acme~forget-u1", "--exclude-user", "u1", "--model", model,
                                "--log-dir", logDir, "--seq-len", "48", "--batch-size", "1", "--max-steps", "2", "--rank", "2"], in: dir)
    #expect(replay.status == 0, "\(replay.err)")
    #expect(replay.out.contains("8 records of tenant/acme, 4 excluded") && replay.out.contains("replayed"), "\(replay.out)")
    let side = try await releases(log, "tenant/acme~forget-u1")
    #expect(side.count >= 2 && side.map(\.version) == Array(1...side.count), "contiguous versions")
    #expect(side.dropFirst().allSatisfy { $0.parent == "tenant/acme~forget-u1@\($0.version - 1)" })
    let records = try await readTopic(log, "attune.interactions", partitions: 6)
    let u0 = Set(records.filter { String(decoding: $0.value!, as: UTF8.self).contains(#""user":"u0""#) }.map { RecordPosition($0.topicPartition, $0.offset) })
    let covered = positions(side)
    #expect(Set(covered) == u0 && covered.count == u0.count, "exactly the kept user's records, each once")

    #expect(try await releases(log, "tenant/acme").map(\.sha256) == live.map(\.sha256), "live versions untouched")
    let after = try log.makeConsumer(ConsumerConfiguration(groupID: "attune-trainers"))
    #expect(try await after.committed(partitions) == committed, "the live group's offsets untouched")
    await after.close()

    let again = try runAttune(["train-worker", "--model", model, "--log-dir", logDir, "--idle", "1", "--steps", "1", "--seq-len", "48",
                               "--batch-size", "2", "--rank", "2", "--gate-tolerance", "100"], in: dir)
    #expect(again.status == 0, "\(again.err)")
    #expect(try await releases(log, "tenant/acme~forget-u1").count == side.count, "workers leave side lineages alone")

    let promote = try runAttune(["adapter", "promote", "tenant/acme~forget-u1", "--log-dir", logDir], in: dir)
    #expect(promote.status == 0, "\(promote.err)")
    let promoted = try await releases(log, "tenant/acme")
    #expect(promoted.count == live.count + 1 && promoted.last?.sha256 == side.last?.sha256 && promoted.last?.parent == live.last?.id)
    #expect(promoted.last?.covers.isEmpty == true && promoted.last?.metrics["promoted_version"] == Double(side.count))
}

/// A replay stopped after its first version resumes where it was: the second run trains only
/// what the first did not cover and the lineage ends covering every selected record once. On
/// the embedded log and on the Kafka-protocol broker (prefixed topics, no consumer group).
@Test(arguments: TestTransport.selected)
func anInterruptedReplayResumesWithTheSameCoverage(_ transport: TestTransport) async throws {
    let log = try transport.makeLog()
    let prefix = "rp\(UUID().uuidString.prefix(8).lowercased())."
    let catalog = try TopicCatalog(directory: TinyLogFixture.repository.appendingPathComponent("topics").path, namePrefix: prefix)
    let admin = try log.makeAdmin()
    _ = try await catalog.apply(to: admin, dryRun: false, maxReplicationFactor: try await (admin as? KafkaAdmin)?.brokerCount())
    await admin.close()
    let producer = ValidatingProducer(try log.makeProducer(), catalog: catalog)
    for i in 0..<8 {
        let value = #"{"tenant":"acme","user":"u\#(i % 2)","time":"2026-12-01T00:00:0\#(i)Z","prompt":"question \#(i)?","response":"answer \#(i)."}"#
        _ = try await producer.send(ProducerRecord(topic: prefix + "attune.interactions", key: "acme", value: value))
    }
    await producer.close()
    var config = TrainWorkerConfiguration(baseModel: "tiny.gguf", baseModelSHA256: String(repeating: "0", count: 64))
    config.prefixTopics(prefix)
    config.seqLen = 48
    config.batchSize = 1
    config.maxSteps = 2
    config.lora = LoRAConfig(rank: 2, alpha: 4)
    let base = try RandomModel.load(TinyLogFixture.config)
    let plan = ReplayPlan(source: AdapterName(parsing: "tenant/acme")!, target: AdapterName(parsing: "tenant/acme~replay-1")!)
    func registry() async throws -> AdapterRegistry {
        let registry = try await AdapterRegistry(log: log, adaptersTopic: config.adaptersTopic, eventsTopic: config.eventsTopic)
        _ = try await registry.catchUp()
        return registry
    }
    final class Count: @unchecked Sendable { var versions = 0 }
    let count = Count()
    let r1 = try await registry()
    let stopped = try await Replayer(configuration: config, log: log, base: base, tokenizer: try testTokenizer(), registry: r1)
        .run(plan, stop: { count.versions >= 1 }) { line in
            if line.contains("@") && line.contains("covered") { count.versions += 1 }
        }
    await r1.close()
    #expect(stopped.published.count == 1 && stopped.covered.count < 8)

    let r2 = try await registry()
    let resumed = try await Replayer(configuration: config, log: log, base: base, tokenizer: try testTokenizer(), registry: r2).run(plan)
    await r2.close()
    #expect(resumed.resumed == stopped.covered.count && resumed.published.first?.version == 2)
    #expect(resumed.covered.count == 8)
    let r3 = try await registry()
    let side = await r3.history(plan.target).map(\.release)
    await r3.close()
    let covered = positions(side)
    #expect(covered.count == 8 && Set(covered).count == 8, "every selected record covered exactly once")
    #expect(side.map(\.version) == Array(1...side.count) && side.last?.parent == "tenant/acme~replay-1@\(side.count - 1)")
}
