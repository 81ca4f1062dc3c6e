import AttuneEventLog
import Crypto
import Foundation
import Synchronization

/// One record of a request body: its 1-based line (NDJSON) or position (JSON array).
public struct IngestItem: Sendable {
    public var line: Int
    public var bytes: [UInt8]

    public init(line: Int, bytes: [UInt8]) {
        self.line = line
        self.bytes = bytes
    }

    /// The records of a body: one JSON object, a JSON array of objects, or NDJSON (one object
    /// per line; blank lines skipped). A malformed NDJSON line stays an item of its own, to be
    /// refused with its line number while the others land.
    public static func split(_ body: [UInt8], contentType: String?) throws -> [IngestItem] {
        let type = contentType?.lowercased() ?? ""
        let lines = type.contains("ndjson") || type.contains("jsonl") || type.contains("json-seq")
        if !lines {
            guard let parsed = try? JSONSerialization.jsonObject(with: Data(body), options: [.fragmentsAllowed]) else {
                if body.split(separator: UInt8(ascii: "\n")).count > 1 { return split(lines: body) }
                throw APIError.badRequest("the body is not valid JSON (send one object, an array, or NDJSON with Content-Type: application/x-ndjson)",
                                          code: "invalid_json")
            }
            if parsed is [String: Any] { return [IngestItem(line: 1, bytes: body)] }
            guard let array = parsed as? [Any] else { throw APIError.badRequest("the body must be a JSON object, an array of objects, or NDJSON", code: "invalid_json") }
            return try array.enumerated().map { i, element in
                IngestItem(line: i + 1, bytes: Array(try JSONSerialization.data(withJSONObject: element, options: [.fragmentsAllowed, .sortedKeys])))
            }
        }
        return split(lines: body)
    }

    private static func split(lines body: [UInt8]) -> [IngestItem] {
        var items: [IngestItem] = []
        for (i, line) in body.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).enumerated() {
            var bytes = Array(line)
            if bytes.last == UInt8(ascii: "\r") { bytes.removeLast() }
            if bytes.allSatisfy({ $0 == 0x20 || $0 == 0x09 }) { continue }
            items.append(IngestItem(line: i + 1, bytes: bytes))
        }
        return items
    }
}

/// What happened to one record.
public struct IngestResult: Encodable, Sendable, Equatable {
    public enum Status: String, Encodable, Sendable { case accepted, duplicate, refused }
    public struct Problem: Encodable, Sendable, Equatable {
        public var code: String
        public var message: String
        /// The HTTP status this refusal would have had alone.
        public var status: Int
    }

    public var line: Int
    public var status: Status
    public var partition: Int?
    public var offset: Int64?
    public var id: String?
    public var error: Problem?

    static func refused(_ line: Int, id: String?, _ error: APIError) -> IngestResult {
        IngestResult(line: line, status: .refused, id: id,
                     error: Problem(code: error.code ?? error.type, message: error.message, status: Int(error.status.code)))
    }
}

/// Takes records for one topic from the HTTP API: validates each against the topic's schema,
/// checks that the caller may write for the record's key (its tenant or domain), produces it
/// keyed by that field, and reports each record's offset only once the log acknowledged it.
/// A record's `id`, or the request's `Idempotency-Key` and the record's line, makes a retry
/// land once (see `IdempotencyJournal`).
public final class Ingestor: Sendable {
    /// Which field keys the records and what a caller must be allowed to act for.
    public enum Scope: Sendable {
        /// `tenant`: the caller must act for the record's tenant.
        case tenant
        /// `domain`: admins only.
        case domain

        var field: String { self == .tenant ? "tenant" : "domain" }
    }

    public let topic: String
    public let scope: Scope
    private let log: any EventLog
    private let catalog: TopicCatalog
    private let producer: any EventProducer
    private let probe: any EventConsumer

    /// Asks the log for the topic's first partition's watermarks: throws (or hangs) while it cannot answer.
    func probeLog() async throws {
        _ = try await probe.watermarks(TopicPartition(topic, 0))
    }
    private let journal: IdempotencyJournal
    private let partitionCount: Int
    /// Stamped on every record, as `ValidatingProducer` does (the record was validated above).
    private let schemaVersion: Int?
    private let inFlight = Mutex(Set<String>())

    public init(log: any EventLog, catalog: TopicCatalog, topic: String, scope: Scope, producer: any EventProducer,
                journal: IdempotencyJournal) async throws {
        let partitionCount = try await EventFeed.partitionCount(log: log, topic: topic)
        self.log = log
        self.catalog = catalog
        self.topic = topic
        self.scope = scope
        self.producer = producer
        self.journal = journal
        self.partitionCount = partitionCount
        self.schemaVersion = catalog.topics[topic]?.value.schemaVersion
        self.probe = try log.makeConsumer(ConsumerConfiguration())
    }

    public func close() async {
        await probe.close()
    }

    /// Ingests `items` for `principal`; results are in input order.
    public func ingest(_ items: [IngestItem], principal: Principal, requestKey: String?) async -> [IngestResult] {
        var results = [IngestResult?](repeating: nil, count: items.count)
        var outgoing: [Outgoing] = []
        var seenKeys: Set<String> = []
        for (index, item) in items.enumerated() {
            let object = try? JSONSerialization.jsonObject(with: Data(item.bytes)) as? [String: Any]
            let id = object?["id"] as? String
            do {
                try catalog.validate(topic: topic, value: item.bytes, headers: [])
                guard let owner = object?[scope.field] as? String else { throw APIError.badRequest("missing \(scope.field)") }
                switch scope {
                case .tenant where !principal.actsFor(owner):
                    throw APIError(.forbidden, "this key may not write for tenant \(owner)", code: "tenant_forbidden")
                case .domain where !principal.isAdmin:
                    throw APIError(.forbidden, "adding domain documents needs the admin role", code: "missing_role")
                default: break
                }
                let key = id.map { Self.idempotencyKey(owner: owner, recordID: $0) }
                    ?? requestKey.map { Self.idempotencyKey(owner: owner, keyID: principal.keyID, requestKey: $0, line: item.line) }
                if let key {
                    guard seenKeys.insert(key).inserted else {
                        throw APIError(.conflict, "the same id appears twice in this request", code: "duplicate_in_request")
                    }
                }
                let partition = Murmur2.partition(forKey: Array(owner.utf8), partitionCount: partitionCount)
                var headers = [EventHeader("attune-key-id", principal.keyID)]
                if let key { headers.append(EventHeader(IdempotencyJournal.header, key)) }
                if let version = schemaVersion { headers.append(EventHeader(schemaVersionHeader, String(version))) }
                let record = ProducerRecord(topic: topic, partition: partition, key: Array(owner.utf8), value: item.bytes, headers: headers)
                let fingerprint = Self.fingerprint(item.bytes)
                outgoing.append(Outgoing(index: index, line: item.line, id: id, record: record, key: key, fingerprint: fingerprint))
            } catch let error as APIError {
                results[index] = .refused(item.line, id: id, error)
            } catch let error as EventLogError {
                results[index] = .refused(item.line, id: id, APIError(.unprocessableContent, error.message, code: "schema_violation"))
            } catch {
                results[index] = .refused(item.line, id: id, APIError.badRequest("\(error)"))
            }
        }

        // Idempotency: answer repeats from the journal, settle crashed attempts, journal the rest.
        var toSend: [Outgoing] = []
        var pending: [(key: String, entry: IdempotencyJournal.Entry)] = []
        var claimed: [String] = []
        for item in outgoing {
            let (line, id) = (item.line, item.id)
            guard let key = item.key else {
                toSend.append(item)
                continue
            }
            guard inFlight.withLock({ $0.insert(key).inserted }) else {
                results[item.index] = .refused(line, id: id, APIError(.conflict, "a request with this idempotency key is in progress; retry later",
                                                                     code: "idempotency_key_in_flight"))
                continue
            }
            claimed.append(key)
            let tp = TopicPartition(topic, item.record.partition!)
            do {
                switch journal.entry(key) {
                case .done(let at, let offset, let fingerprint)?:
                    guard fingerprint == item.fingerprint else { throw Self.reused }
                    results[item.index] = IngestResult(line: line, status: .duplicate, partition: at.partition, offset: offset, id: id)
                case .pending(let at, let from, let fingerprint)?:
                    guard fingerprint == item.fingerprint else { throw Self.reused }
                    if let offset = try await settle(key: key, partition: at, from: from) {
                        try journal.record([(key, .done(partition: at, offset: offset, fingerprint: fingerprint))])
                        results[item.index] = IngestResult(line: line, status: .duplicate, partition: at.partition, offset: offset, id: id)
                    } else {
                        toSend.append(item)
                    }
                case nil:
                    let from = try await probe.watermarks(tp).high
                    pending.append((key, .pending(partition: tp, from: from, fingerprint: item.fingerprint)))
                    toSend.append(item)
                }
            } catch let error as APIError {
                results[item.index] = .refused(line, id: id, error)
            } catch {
                results[item.index] = .refused(line, id: id, Self.unavailable(error))
            }
        }
        defer { inFlight.withLock { set in claimed.forEach { set.remove($0) } } }
        do {
            try journal.record(pending)
        } catch {
            for item in toSend { results[item.index] = .refused(item.line, id: item.id, APIError(.internalServerError, "\(error)", code: "journal_failed")) }
            return results.map { $0! }
        }

        // One batch, with each record's own acknowledgement, so that each result is exact.
        let sent = zip(toSend, await producer.sendEach(toSend.map(\.record))).map { ($0, $1) }
        var done: [(key: String, entry: IdempotencyJournal.Entry)] = []
        for (item, outcome) in sent {
            let (line, id) = (item.line, item.id)
            switch outcome {
            case .success(let metadata):
                results[item.index] = IngestResult(line: line, status: .accepted, partition: metadata.partition, offset: metadata.offset, id: id)
                if let key = item.key {
                    done.append((key, .done(partition: TopicPartition(metadata.topic, metadata.partition), offset: metadata.offset,
                                           fingerprint: item.fingerprint)))
                }
            case .failure(let error):
                results[item.index] = .refused(line, id: id, Self.unavailable(error))
            }
        }
        try? journal.record(done)
        return results.map { $0! }
    }

    /// What identifies a record's content for idempotency: hex SHA-256 of its JSON with sorted
    /// keys, so a retry that orders fields differently is the same record.
    public static func fingerprint(_ bytes: [UInt8]) -> String {
        let canonical = (try? JSONSerialization.jsonObject(with: Data(bytes)))
            .flatMap { try? JSONSerialization.data(withJSONObject: $0, options: [.sortedKeys]) } ?? Data(bytes)
        return SHA256.hash(data: canonical).map { String(format: "%02x", $0) }.joined()
    }

    /// The journal key of a record with an `id`: unique per tenant (or domain).
    public static func idempotencyKey(owner: String, recordID: String) -> String {
        "\(owner)\u{1}id\u{1}\(recordID)"
    }

    /// The journal key of line `line` of a request sent with `Idempotency-Key: requestKey`.
    public static func idempotencyKey(owner: String, keyID: String, requestKey: String, line: Int) -> String {
        "\(owner)\u{1}req\u{1}\(keyID)\u{1}\(requestKey)#\(line)"
    }

    private struct Outgoing: Sendable {
        var index: Int
        var line: Int
        var id: String?
        var record: ProducerRecord
        var key: String?
        var fingerprint: String
    }

    private static let reused = APIError(.unprocessableContent, "this idempotency key was used for a different record",
                                         code: "idempotency_key_reused")

    private static func unavailable(_ error: any Error) -> APIError {
        if let error = error as? EventLogError, error.kind == .diskFull {
            return APIError(.init(code: 507, reasonPhrase: "Insufficient Storage"), "the event log did not take the record: \(error.message)", code: "log_disk_full")
        }
        var e = APIError(.serviceUnavailable, "the event log did not take the record: \(error)", code: "log_unavailable")
        e.retryAfterSeconds = 1
        return e
    }

    /// The offset of the record carrying `key` at or after `from` on `partition`, if any.
    private func settle(key: String, partition: TopicPartition, from: Int64) async throws -> Int64? {
        let reader = try log.makeConsumer(ConsumerConfiguration())
        defer { Task { await reader.close() } }
        try await reader.assign([partition])
        let end = try await reader.watermarks(partition).high
        try await reader.seek(partition, to: from)
        var position = from
        let deadline = ContinuousClock.now + .seconds(30)
        while position < end {
            guard ContinuousClock.now < deadline else {
                throw EventLogError(.timeout, "reading \(partition) to settle an idempotency key took over 30 s")
            }
            for record in try await reader.poll(maxRecords: 500, timeout: .seconds(1)) where record.topicPartition == partition {
                position = record.offset + 1
                if record.headers.text(named: IdempotencyJournal.header) == key { return record.offset }
            }
        }
        return nil
    }
}
