import Foundation

/// Record ids pack the partition row id and the offset: `pid << offsetBits | offset`, so one
/// integer primary key orders a partition's records by offset with no extra index.
let offsetBits: Int64 = 40
let maxOffset: Int64 = (1 << offsetBits) - 1

/// Kafka's default `max.message.bytes` for a topic.
let defaultMaxMessageBytes = 1_048_588

/// Known topic: its partition row ids and configs.
struct EmbeddedTopic {
    var name: String
    var partitionIDs: [Int64]
    var replicationFactor: Int
    var configs: [String: String]

    var maxMessageBytes: Int { configs["max.message.bytes"].flatMap(Int.init) ?? defaultMaxMessageBytes }
}

/// The SQLite schema and the operations every embedded client shares, over one connection.
final class EmbeddedStore {
    let db: SQLiteDatabase
    let configuration: EmbeddedConfiguration
    private var topics: [String: EmbeddedTopic] = [:]

    init(_ configuration: EmbeddedConfiguration) throws {
        self.configuration = configuration
        do {
            try FileManager.default.createDirectory(atPath: configuration.directory, withIntermediateDirectories: true)
        } catch {
            throw EventLogError(.storage, "cannot create \(configuration.directory): \(error.localizedDescription)")
        }
        db = try SQLiteDatabase(path: configuration.directory + "/eventlog.sqlite",
                                busyTimeoutMs: configuration.busyTimeoutMs,
                                synchronousFull: configuration.synchronousFull)
        try db.transaction {
            try db.execute("""
                CREATE TABLE IF NOT EXISTS topics(name TEXT PRIMARY KEY, partitions INTEGER NOT NULL,
                    replication INTEGER NOT NULL, configs TEXT NOT NULL, created_ms INTEGER NOT NULL);
                CREATE TABLE IF NOT EXISTS partitions(id INTEGER PRIMARY KEY, topic TEXT NOT NULL,
                    partition INTEGER NOT NULL, next_offset INTEGER NOT NULL DEFAULT 0,
                    log_start INTEGER NOT NULL DEFAULT 0, UNIQUE(topic, partition));
                CREATE TABLE IF NOT EXISTS records(id INTEGER PRIMARY KEY, ts INTEGER NOT NULL,
                    key BLOB, value BLOB, headers BLOB, size INTEGER NOT NULL);
                CREATE TABLE IF NOT EXISTS groups(group_id TEXT PRIMARY KEY, generation INTEGER NOT NULL);
                CREATE TABLE IF NOT EXISTS members(group_id TEXT NOT NULL, member_id TEXT NOT NULL,
                    topics TEXT NOT NULL, strategy TEXT NOT NULL, heartbeat_ms INTEGER NOT NULL,
                    session_ms INTEGER NOT NULL, PRIMARY KEY(group_id, member_id));
                CREATE TABLE IF NOT EXISTS assignments(group_id TEXT NOT NULL, topic TEXT NOT NULL,
                    partition INTEGER NOT NULL, member_id TEXT NOT NULL, PRIMARY KEY(group_id, topic, partition));
                CREATE TABLE IF NOT EXISTS owners(group_id TEXT NOT NULL, topic TEXT NOT NULL,
                    partition INTEGER NOT NULL, member_id TEXT NOT NULL, PRIMARY KEY(group_id, topic, partition));
                CREATE TABLE IF NOT EXISTS offsets(group_id TEXT NOT NULL, topic TEXT NOT NULL,
                    partition INTEGER NOT NULL, next_offset INTEGER NOT NULL, committed_ms INTEGER NOT NULL,
                    PRIMARY KEY(group_id, topic, partition));
                """)
        }
    }

    func close() { db.close() }

    // MARK: Topics

    func createTopic(_ spec: TopicSpec) throws {
        try TopicNames.validate(spec.name)
        guard spec.partitions > 0, spec.partitions <= 10_000 else {
            throw EventLogError(.invalidArgument, "topic \(spec.name): partitions must be 1…10000, got \(spec.partitions)")
        }
        guard spec.replicationFactor >= 1 else {
            throw EventLogError(.invalidArgument, "topic \(spec.name): replication factor must be ≥ 1")
        }
        try TopicConfigs.validate(spec.configs, topic: spec.name)
        let configs = String(decoding: try JSONEncoder.sorted.encode(spec.configs), as: UTF8.self)
        try db.transaction {
            let exists = try db.statement("SELECT 1 FROM topics WHERE name = ?").bind(1, spec.name)
            if try exists.step() { throw EventLogError(.topicExists, "topic \(spec.name) already exists") }
            try db.statement("INSERT INTO topics(name, partitions, replication, configs, created_ms) VALUES(?,?,?,?,?)")
                .bind(1, spec.name).bind(2, spec.partitions).bind(3, spec.replicationFactor)
                .bind(4, configs).bind(5, currentTimestampMs()).run()
            let insert = try db.statement("INSERT INTO partitions(topic, partition) VALUES(?,?)")
            for p in 0..<spec.partitions {
                insert.reset()
                try insert.bind(1, spec.name).bind(2, p).run()
            }
        }
    }

    func topic(_ name: String) throws -> EmbeddedTopic? {
        try db.read {
            if let cached = topics[name] { return cached }
            let query = try db.statement("SELECT replication, configs FROM topics WHERE name = ?").bind(1, name)
            guard try query.step() else { return nil }
            let replication = query.int(0)
            let configs = (try? JSONDecoder().decode([String: String].self, from: Data(query.text(1).utf8))) ?? [:]
            let parts = try db.statement("SELECT id FROM partitions WHERE topic = ? ORDER BY partition").bind(1, name)
            var ids: [Int64] = []
            while try parts.step() { ids.append(parts.int64(0)) }
            let topic = EmbeddedTopic(name: name, partitionIDs: ids, replicationFactor: replication, configs: configs)
            topics[name] = topic
            return topic
        }
    }

    func requireTopic(_ name: String) throws -> EmbeddedTopic {
        guard let topic = try topic(name) else { throw EventLogError(.unknownTopic, "unknown topic \(name)") }
        return topic
    }

    func partitionID(_ tp: TopicPartition) throws -> Int64 {
        let topic = try requireTopic(tp.topic)
        guard topic.partitionIDs.indices.contains(tp.partition) else {
            throw EventLogError(.unknownPartition, "\(tp) does not exist (topic has \(topic.partitionIDs.count) partitions)")
        }
        return topic.partitionIDs[tp.partition]
    }

    func listTopics() throws -> [String] {
        try db.read {
            let query = try db.statement("SELECT name FROM topics ORDER BY name")
            var names: [String] = []
            while try query.step() { names.append(query.text(0)) }
            return names
        }
    }

    // MARK: Records

    /// Appends records in one transaction. `partitions[i]` is the resolved partition of `records[i]`.
    func append(_ records: [ProducerRecord], partitions: [Int]) throws -> [RecordMetadata] {
        let now = currentTimestampMs()
        return try db.transaction {
            var next: [Int64: Int64] = [:]
            var result: [RecordMetadata] = []
            result.reserveCapacity(records.count)
            let insert = try db.statement("INSERT INTO records(id, ts, key, value, headers, size) VALUES(?,?,?,?,?,?)")
            for (record, partition) in zip(records, partitions) {
                let pid = try partitionID(TopicPartition(record.topic, partition))
                var offset: Int64
                if let known = next[pid] {
                    offset = known
                } else {
                    let q = try db.statement("SELECT next_offset FROM partitions WHERE id = ?").bind(1, pid)
                    offset = try q.step() ? q.int64(0) : 0
                }
                guard offset <= maxOffset else { throw EventLogError(.storage, "partition \(record.topic)[\(partition)] is full") }
                let timestamp = record.timestamp ?? now
                let headers = HeaderCoding.encode(record.headers)
                let size = (record.key?.count ?? 0) + (record.value?.count ?? 0) + (headers?.count ?? 0)
                insert.reset()
                try insert.bind(1, pid << offsetBits | offset).bind(2, timestamp).bind(3, record.key)
                    .bind(4, record.value).bind(5, headers).bind(6, size).run()
                next[pid] = offset + 1
                result.append(RecordMetadata(topic: record.topic, partition: partition, offset: offset, timestamp: timestamp))
            }
            let update = try db.statement("UPDATE partitions SET next_offset = ? WHERE id = ?")
            for (pid, offset) in next {
                update.reset()
                try update.bind(1, offset).bind(2, pid).run()
            }
            return result
        }
    }

    func fetch(_ tp: TopicPartition, from offset: Int64, maxRecords: Int, maxBytes: Int) throws -> [ConsumerRecord] {
        try db.read {
            let pid = try partitionID(tp)
            let query = try db.statement("SELECT id, ts, key, value, headers, size FROM records WHERE id >= ? AND id <= ? ORDER BY id LIMIT ?")
                .bind(1, pid << offsetBits | max(0, min(offset, maxOffset))).bind(2, pid << offsetBits | maxOffset).bind(3, maxRecords)
            var out: [ConsumerRecord] = []
            var bytes = 0
            while try query.step() {
                let size = query.int(5)
                if !out.isEmpty && bytes + size > maxBytes { break }
                bytes += size
                out.append(ConsumerRecord(topic: tp.topic, partition: tp.partition, offset: query.int64(0) & maxOffset,
                                          timestamp: query.int64(1), key: query.blob(2), value: query.blob(3),
                                          headers: try HeaderCoding.decode(query.blob(4))))
            }
            return out
        }
    }

    /// SQLite's `data_version` of this connection: it changes whenever another connection (in
    /// this process or another) commits, so an unchanged value means nothing new to read.
    func dataVersion() throws -> Int64 {
        try db.read {
            let query = try db.statement("PRAGMA data_version")
            guard try query.step() else { throw db.lastError("PRAGMA data_version") }
            return query.int64(0)
        }
    }

    func watermarks(_ tp: TopicPartition) throws -> Watermarks {
        try db.read {
            let pid = try partitionID(tp)
            let query = try db.statement("SELECT log_start, next_offset FROM partitions WHERE id = ?").bind(1, pid)
            guard try query.step() else { throw EventLogError(.unknownPartition, "\(tp) does not exist") }
            return Watermarks(low: query.int64(0), high: query.int64(1))
        }
    }

    func offset(forTimestamp timestamp: TimestampMs, _ tp: TopicPartition) throws -> Int64? {
        try db.read {
            let pid = try partitionID(tp)
            let query = try db.statement("SELECT id FROM records WHERE id >= ? AND id <= ? AND ts >= ? ORDER BY id LIMIT 1")
                .bind(1, pid << offsetBits).bind(2, pid << offsetBits | maxOffset).bind(3, timestamp)
            return try query.step() ? query.int64(0) & maxOffset : nil
        }
    }

    // MARK: Retention and compaction

    /// Applies `retention.ms`, `retention.bytes` and `cleanup.policy=compact` to every partition.
    /// Returns the number of records deleted.
    @discardableResult
    func maintain(now: TimestampMs = currentTimestampMs()) throws -> Int {
        var deleted = 0
        for name in try listTopics() {
            guard let topic = try topic(name) else { continue }
            let policies = Set((topic.configs["cleanup.policy"] ?? "delete").split(separator: ",").map {
                $0.trimmingCharacters(in: .whitespaces)
            })
            let retentionMs = topic.configs["retention.ms"].flatMap(Int64.init) ?? 7 * 24 * 3_600_000
            let retentionBytes = topic.configs["retention.bytes"].flatMap(Int64.init) ?? -1
            for pid in topic.partitionIDs {
                let low = pid << offsetBits, high = pid << offsetBits | maxOffset
                try db.transaction {
                    if policies.contains("compact") {
                        try db.statement("""
                            DELETE FROM records WHERE id BETWEEN ?1 AND ?2 AND key IS NOT NULL AND id NOT IN
                            (SELECT MAX(id) FROM records WHERE id BETWEEN ?1 AND ?2 AND key IS NOT NULL GROUP BY key)
                            """).bind(1, low).bind(2, high).run()
                        deleted += db.changes
                    }
                    guard policies.contains("delete") else { return }
                    var cut: Int64 = -1
                    if retentionMs >= 0 {
                        let q = try db.statement("SELECT MAX(id) FROM records WHERE id BETWEEN ? AND ? AND ts < ?")
                            .bind(1, low).bind(2, high).bind(3, now - retentionMs)
                        if try q.step(), !q.isNull(0) { cut = max(cut, q.int64(0)) }
                    }
                    if retentionBytes >= 0 {
                        let q = try db.statement("SELECT id, size FROM records WHERE id BETWEEN ? AND ? ORDER BY id DESC")
                            .bind(1, low).bind(2, high)
                        var total: Int64 = 0
                        while try q.step() {
                            total += q.int64(1)
                            if total > retentionBytes {
                                cut = max(cut, q.int64(0))
                                break
                            }
                        }
                    }
                    if cut >= 0 {
                        try db.statement("DELETE FROM records WHERE id BETWEEN ? AND ?").bind(1, low).bind(2, cut).run()
                        deleted += db.changes
                        try db.statement("UPDATE partitions SET log_start = MAX(log_start, ?) WHERE id = ?")
                            .bind(1, (cut & maxOffset) + 1).bind(2, pid).run()
                    }
                }
            }
        }
        return deleted
    }
}

extension JSONEncoder {
    static var sorted: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return encoder
    }
}

/// Kafka's topic-name rules: 1–249 characters of `[a-zA-Z0-9._-]`, not `.` or `..`.
public enum TopicNames {
    public static func validate(_ name: String) throws {
        let allowed = name.utf8.allSatisfy { c in
            (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || c == 0x2e || c == 0x5f || c == 0x2d
        }
        guard !name.isEmpty, name.utf8.count <= 249, allowed, name != ".", name != ".." else {
            throw EventLogError(.invalidArgument, "invalid topic name \"\(name)\": use 1–249 characters of a-z A-Z 0-9 . _ -")
        }
    }
}

/// Checks the topic configs both transports understand.
public enum TopicConfigs {
    static let integerKeys = ["retention.ms", "retention.bytes", "max.message.bytes", "segment.bytes",
                              "delete.retention.ms", "min.insync.replicas", "min.compaction.lag.ms"]

    public static func validate(_ configs: [String: String], topic: String) throws {
        for key in integerKeys {
            if let value = configs[key], Int64(value) == nil {
                throw EventLogError(.invalidConfiguration, "topic \(topic): \(key) must be an integer, got \"\(value)\"")
            }
        }
        if let policy = configs["cleanup.policy"] {
            let parts = policy.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            guard !parts.isEmpty, parts.allSatisfy({ $0 == "delete" || $0 == "compact" }) else {
                throw EventLogError(.invalidConfiguration, "topic \(topic): cleanup.policy must be delete, compact or both, got \"\(policy)\"")
            }
        }
    }
}
