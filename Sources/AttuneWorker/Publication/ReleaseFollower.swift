import AttuneEventLog
import AttuneRegistry
import Foundation
import Logging

/// Reads `attune.adapters`, `attune.checkpoints` and `attune.control` from their beginning and
/// keeps up with them, so a worker knows every published version — its own and other
/// workers' — before it trains, can take an adapter over with its trainer state, can tell
/// which versions lack a checkpoint (and so maybe their event), and sees operators' commands.
final class ReleaseFollower {
    /// A published version whose weights matched its sha256; the weights are kept only for
    /// the adapters the caller asked for, and of a tenant only for its newest version.
    struct Published {
        let release: AdapterRelease
        var weights: [UInt8]?
    }

    /// What appeared on the followed topics since the previous catch-up.
    struct News {
        var published: [Published] = []
        var checkpoints: [TrainerCheckpoint] = []
        var commands: [RebaseCommand] = []
    }

    private let consumer: any EventConsumer
    private let topics: (adapters: String, checkpoints: String, control: String)
    private let partitions: [TopicPartition]
    private var next: [TopicPartition: Int64] = [:]
    private let logger: Logger

    init(log: any EventLog, adapters: String, checkpoints: String, control: String,
         logger: Logger) async throws {
        let counts = try await partitionCounts(log, [adapters, checkpoints, control])
        let partitions = [adapters, checkpoints, control].flatMap { topic in (0..<counts[topic]!).map { TopicPartition(topic, $0) } }
        consumer = try log.makeConsumer(ConsumerConfiguration())
        try await consumer.assign(partitions)
        try await consumer.seekToBeginning(partitions)
        self.partitions = partitions
        topics = (adapters, checkpoints, control)
        self.logger = logger
    }

    /// Everything up to each partition's end as of now. Records that do not decode are
    /// skipped with a report (they were validated when produced; a foreign writer is not trusted).
    func catchUp(keepingWeightsOf keep: (String) -> Bool = { _ in true }, within limit: Duration = .seconds(60)) async throws -> News {
        var ends: [TopicPartition: Int64] = [:]
        for p in partitions {
            let w = try await consumer.watermarks(p)
            ends[p] = w.high
            if next[p] == nil { next[p] = w.low }
        }
        var news = News()
        let deadline = ContinuousClock.now + limit
        while partitions.contains(where: { next[$0]! < ends[$0]! }) {
            guard ContinuousClock.now < deadline else {
                throw EventLogError(.timeout, "could not read \(topics) to their end within \(limit)")
            }
            for r in try await consumer.poll(maxRecords: 256, timeout: .milliseconds(200)) {
                next[r.topicPartition] = r.offset + 1
                take(r, into: &news, keep: keep)
            }
        }
        return news
    }

    private func take(_ r: ConsumerRecord, into news: inout News, keep: (String) -> Bool) {
        guard let value = r.value else { return }
        switch r.topic {
        case topics.adapters:
            guard let release = AdapterRelease.from(r), release.isWellFormed, AdapterRelease.digest(value) == release.sha256 else {
                logger.warning("skipping \(r.topic)[\(r.partition)]@\(r.offset): no well-formed release header or sha256 mismatch")
                return
            }
            let kept = keep(release.adapter)
            if kept, release.name?.kind == .tenant, let i = news.published.lastIndex(where: { $0.release.adapter == release.adapter }) {
                news.published[i].weights = nil
            }
            news.published.append(Published(release: release, weights: kept ? value : nil))
        case topics.checkpoints:
            do { news.checkpoints.append(try TrainerCheckpoint.decode(value)) } catch {
                logger.warning("skipping \(r.topic)[\(r.partition)]@\(r.offset): \(error)")
            }
        default:
            guard let command = try? JSONDecoder().decode(RebaseCommand.self, from: Data(value)), command.target != nil,
                  AdapterRelease.isAdapterName(command.adapter) else {
                logger.warning("skipping \(r.topic)[\(r.partition)]@\(r.offset): not a rebase command")
                return
            }
            news.commands.append(command)
        }
    }

    /// Starts over from the beginning of the adapters and checkpoints topics (both compacted:
    /// about one record per adapter), for a worker that gained adapters it did not keep.
    func rewind() async throws {
        let parts = partitions.filter { $0.topic == topics.adapters || $0.topic == topics.checkpoints }
        try await consumer.seekToBeginning(parts)
        for p in parts { next[p] = nil }
    }

    func close() async { await consumer.close() }
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
