import AttuneEventLog
import AttuneRegistry
import Foundation
import Logging

/// What a training worker follows besides its input: every published version through the
/// registry (`attune.adapters` and `attune.adapter-events`, from their beginning), and
/// `attune.checkpoints` and `attune.control` with a reader of its own. So a worker knows every
/// version — its own and other workers', announced or not — before it trains, can take an
/// adapter over with its trainer state (weights fetched from the registry when needed), can
/// tell which versions lack a checkpoint (and so maybe their event), and sees operators' commands.
final class PublicationFollower {
    /// What appeared on the followed topics since the previous catch-up.
    struct News {
        /// Versions stored on `attune.adapters`, in the order they were read.
        var published: [AdapterRelease] = []
        var checkpoints: [TrainerCheckpoint] = []
        var commands: [RebaseCommand] = []
    }

    let registry: AdapterRegistry
    private let consumer: any EventConsumer
    private let topics: (checkpoints: String, control: String)
    private let partitions: [TopicPartition]
    private var next: [TopicPartition: Int64] = [:]
    private var storedPosition = 0
    private let logger: Logger

    init(log: any EventLog, configuration c: TrainWorkerConfiguration, logger: Logger) async throws {
        let counts = try await partitionCounts(log, [c.checkpointsTopic, c.controlTopic])
        let partitions = [c.checkpointsTopic, c.controlTopic].flatMap { topic in (0..<counts[topic]!).map { TopicPartition(topic, $0) } }
        registry = try await AdapterRegistry(log: log, adaptersTopic: c.adaptersTopic, eventsTopic: c.eventsTopic) {
            logger.warning("\($0)")
        }
        do {
            consumer = try log.makeConsumer(ConsumerConfiguration())
            try await consumer.assign(partitions)
            try await consumer.seekToBeginning(partitions)
        } catch {
            await registry.close()
            throw error
        }
        self.partitions = partitions
        topics = (c.checkpointsTopic, c.controlTopic)
        self.logger = logger
    }

    /// Everything up to each partition's end as of now. Records that do not decode are
    /// skipped with a report (they were validated when produced; a foreign writer is not trusted).
    func catchUp(within limit: Duration = .seconds(60)) async throws -> News {
        try await registry.catchUp(within: limit)
        var news = News()
        (news.published, storedPosition) = await registry.stored(from: storedPosition)
        var ends: [TopicPartition: Int64] = [:]
        for p in partitions {
            let w = try await consumer.watermarks(p)
            ends[p] = w.high
            if next[p] == nil { next[p] = w.low }
        }
        let deadline = ContinuousClock.now + limit
        while partitions.contains(where: { next[$0]! < ends[$0]! }) {
            guard ContinuousClock.now < deadline else {
                throw EventLogError(.timeout, "could not read \(topics) to their end within \(limit)")
            }
            for r in try await consumer.poll(maxRecords: 256, timeout: .milliseconds(200)) {
                next[r.topicPartition] = r.offset + 1
                take(r, into: &news)
            }
        }
        return news
    }

    private func take(_ r: ConsumerRecord, into news: inout News) {
        guard let value = r.value else { return }
        if r.topic == topics.checkpoints {
            do { news.checkpoints.append(try TrainerCheckpoint.decode(value)) } catch {
                logger.warning("skipping \(r.topic)[\(r.partition)]@\(r.offset): \(error)")
            }
            return
        }
        guard let command = try? JSONDecoder().decode(RebaseCommand.self, from: Data(value)), command.target != nil,
              AdapterRelease.isAdapterName(command.adapter) else {
            logger.warning("skipping \(r.topic)[\(r.partition)]@\(r.offset): not a rebase command")
            return
        }
        news.commands.append(command)
    }

    /// The weights of a version, fetched from `attune.adapters` and checked against its sha256.
    /// Bytes that do not match are a `RegistryError`; weights that cannot be read (the log did
    /// not answer) are an `EventLogError`, so the worker restarts instead of training on a stale copy.
    func weights(of release: AdapterRelease) async throws -> [UInt8] {
        do {
            return try await registry.weights(of: release)
        } catch let error as RegistryError where error.kind == .notStored {
            throw EventLogError(.timeout, error.message)
        }
    }

    /// Whether the version's weights are still on `attune.adapters` (not compacted away).
    func isStored(_ release: AdapterRelease) async -> Bool {
        guard let name = release.name else { return false }
        return await registry.history(name).contains { $0.release.version == release.version && $0.location != nil }
    }

    /// The next catch-up returns every stored version and checkpoint again (not the commands),
    /// for a worker that gained adapters it did not take over before.
    func rewind() async throws {
        let parts = partitions.filter { $0.topic == topics.checkpoints }
        try await consumer.seekToBeginning(parts)
        for p in parts { next[p] = nil }
        storedPosition = 0
    }

    func close() async {
        await consumer.close()
        await registry.close()
    }
}

/// The partition count of each topic; a missing topic is an error that says how to create it.
func partitionCounts(_ log: any EventLog, _ topics: [String]) async throws -> [String: Int] {
    let admin = try log.makeAdmin()
    var counts: [String: Int] = [:]
    do {
        for topic in topics {
            guard let d = try await admin.describeTopic(topic) else {
                throw EventLogError(.unknownTopic, "topic \(topic) does not exist (create it with `attune topics apply`)")
            }
            counts[topic] = d.partitions
        }
    } catch {
        await admin.close()
        throw error
    }
    await admin.close()
    return counts
}
