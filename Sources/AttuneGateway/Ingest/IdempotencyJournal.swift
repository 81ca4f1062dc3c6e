import AttuneEventLog
import Foundation
import Synchronization

/// Where a record sent under an idempotency key went, durably, so that a client's retry —
/// even after a gateway restart — lands once.
///
/// Before a keyed record is produced, a *pending* line (key, body fingerprint, partition, the
/// partition's high watermark) is appended and fsync'ed; once the log acknowledges it, a
/// *done* line with its offset. A retry finds *done* and answers with the first offset. A
/// *pending* left by a crash is settled by reading the partition from that watermark for the
/// record carrying the key in its `attune-idempotency-key` header: found, it is done; absent,
/// the record never landed and is sent again. Lines older than the retention are dropped when
/// the journal is opened.
public final class IdempotencyJournal: Sendable {
    /// The header naming a record's idempotency key on the topic.
    public static let header = "attune-idempotency-key"

    public enum Entry: Sendable, Equatable {
        case pending(partition: TopicPartition, from: Int64, fingerprint: String)
        case done(partition: TopicPartition, offset: Int64, fingerprint: String)

        var fingerprint: String {
            switch self {
            case .pending(_, _, let f), .done(_, _, let f): return f
            }
        }
    }

    private struct Line: Codable {
        var k: String
        var f: String
        var s: String
        var tp: String
        var o: Int64
        var t: Int64
    }

    private struct State {
        var entries: [String: (entry: Entry, time: Int64)] = [:]
        var handle: FileHandle?
    }

    public let path: String
    public let retention: Duration
    private let state: Mutex<State>

    /// Opens (or creates) the journal, dropping entries older than `retention`.
    public init(path: String, retention: Duration = .seconds(7 * 86_400)) throws {
        self.path = path
        self.retention = retention
        let url = URL(fileURLWithPath: path)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        var entries: [String: (entry: Entry, time: Int64)] = [:]
        let horizon = currentTimestampMs() - Int64(retention.components.seconds) * 1000
        if let data = FileManager.default.contents(atPath: path) {
            for line in data.split(separator: UInt8(ascii: "\n")) {
                guard let l = try? JSONDecoder().decode(Line.self, from: Data(line)), l.t >= horizon,
                      let tp = TopicPartition(parsing: l.tp) else { continue }
                entries[l.k] = (l.s == "done" ? .done(partition: tp, offset: l.o, fingerprint: l.f)
                                              : .pending(partition: tp, from: l.o, fingerprint: l.f), l.t)
            }
        }
        let compacted = entries.map { key, value in Self.encode(key, value.entry, time: value.time) }.joined()
        let temporary = path + ".tmp"
        guard FileManager.default.createFile(atPath: temporary, contents: Data(compacted.utf8), attributes: [.posixPermissions: 0o600]),
              rename(temporary, path) == 0, let handle = FileHandle(forWritingAtPath: path) else {
            throw EventLogError(.storage, "cannot write the idempotency journal \(path)")
        }
        handle.seekToEndOfFile()
        state = Mutex(State(entries: entries, handle: handle))
    }

    public func entry(_ key: String) -> Entry? {
        state.withLock { $0.entries[key]?.entry }
    }

    /// Appends these entries and makes them durable before returning.
    public func record(_ entries: [(key: String, entry: Entry)]) throws {
        guard !entries.isEmpty else { return }
        try state.withLock { state in
            let now = currentTimestampMs()
            let text = entries.map { Self.encode($0.key, $0.entry, time: now) }.joined()
            guard let handle = state.handle else { throw EventLogError(.closed, "the idempotency journal is closed") }
            try handle.write(contentsOf: Data(text.utf8))
            try handle.synchronize()
            for (key, entry) in entries { state.entries[key] = (entry, now) }
        }
    }

    public func close() {
        state.withLock { state in
            try? state.handle?.close()
            state.handle = nil
        }
    }

    private static func encode(_ key: String, _ entry: Entry, time: Int64) -> String {
        let line: Line
        switch entry {
        case .pending(let tp, let from, let f): line = Line(k: key, f: f, s: "pending", tp: tp.description, o: from, t: time)
        case .done(let tp, let offset, let f): line = Line(k: key, f: f, s: "done", tp: tp.description, o: offset, t: time)
        }
        return String(decoding: (try? JSONEncoder().encode(line)) ?? Data(), as: UTF8.self) + "\n"
    }
}
