/// The dead-letter topic and the headers a dead-lettered record carries.
public enum DeadLetter {
    public static let topic = "attune.dlq"
    public static let reasonHeader = "dlq-reason"
    public static let topicHeader = "dlq-original-topic"
    public static let partitionHeader = "dlq-original-partition"
    public static let offsetHeader = "dlq-original-offset"

    /// The dead-letter record for `value`/`key`/`headers` that failed with `reason`.
    public static func record(topic: String, key: [UInt8]?, value: [UInt8]?, headers: [EventHeader], reason: String,
                       partition: Int? = nil, offset: Int64? = nil) -> ProducerRecord {
        var dlqHeaders = headers.filter { !$0.name.hasPrefix("dlq-") }
        dlqHeaders.append(EventHeader(reasonHeader, reason))
        dlqHeaders.append(EventHeader(topicHeader, topic))
        if let partition { dlqHeaders.append(EventHeader(partitionHeader, String(partition))) }
        if let offset { dlqHeaders.append(EventHeader(offsetHeader, String(offset))) }
        return ProducerRecord(topic: Self.topic, key: key, value: value, headers: dlqHeaders)
    }
}

/// What happens to a record that fails its schema.
public enum InvalidRecordPolicy: String, Sendable, CaseIterable {
    /// Fail the call with `EventLogError.Kind.invalidPayload`.
    case reject
    /// Send it to `attune.dlq` with the reason in its headers.
    case deadLetter = "dlq"
}

/// A producer that validates every record against the topic catalog before sending it.
public final class ValidatingProducer: EventProducer, @unchecked Sendable {
    private let inner: any EventProducer
    private let catalog: TopicCatalog
    private let policy: InvalidRecordPolicy

    public init(_ inner: any EventProducer, catalog: TopicCatalog, policy: InvalidRecordPolicy = .reject) {
        self.inner = inner
        self.catalog = catalog
        self.policy = policy
    }

    public func send(_ record: ProducerRecord) async throws -> RecordMetadata {
        try await send([record])[0]
    }

    /// Sends the valid records; an invalid one fails the whole call (`reject`) or goes to the
    /// DLQ in its place (`dlq`, whose metadata then names `attune.dlq`).
    public func send(_ records: [ProducerRecord]) async throws -> [RecordMetadata] {
        try await inner.send(try prepared(records))
    }

    /// As `send`: validated (or dead-lettered) before any is handed to the inner producer.
    public func submit(_ records: [ProducerRecord]) async throws -> ProduceReceipt {
        try await inner.submit(try prepared(records))
    }

    /// The records as they are sent; an invalid one throws (`reject`) or is replaced by its DLQ record.
    private func prepared(_ records: [ProducerRecord]) throws -> [ProducerRecord] {
        var prepared: [ProducerRecord] = []
        prepared.reserveCapacity(records.count)
        for record in records {
            do {
                prepared.append(try catalog.prepare(record))
            } catch let error as EventLogError where error.kind == .invalidPayload && policy == .deadLetter {
                prepared.append(DeadLetter.record(topic: record.topic, key: record.key, value: record.value,
                                                  headers: record.headers, reason: error.message))
            }
        }
        return prepared
    }

    /// As `send`, with each record's own outcome: one that fails its schema (`reject`) fails
    /// alone and is not sent.
    public func sendEach(_ records: [ProducerRecord]) async -> [Result<RecordMetadata, EventLogError>] {
        var results = [Result<RecordMetadata, EventLogError>?](repeating: nil, count: records.count)
        var prepared: [(Int, ProducerRecord)] = []
        for (i, record) in records.enumerated() {
            do {
                prepared.append((i, try catalog.prepare(record)))
            } catch let error as EventLogError where error.kind == .invalidPayload && policy == .deadLetter {
                prepared.append((i, DeadLetter.record(topic: record.topic, key: record.key, value: record.value,
                                                      headers: record.headers, reason: error.message)))
            } catch {
                results[i] = .failure(error as? EventLogError ?? EventLogError(.invalidPayload, "\(error)"))
            }
        }
        for ((i, _), outcome) in zip(prepared, await inner.sendEach(prepared.map(\.1))) { results[i] = outcome }
        return results.map { $0! }
    }

    public func flush() async throws { try await inner.flush() }
    public func close() async { await inner.close() }
}

/// Validates consumed records; invalid ones go to the DLQ (or fail) so a bad record never
/// blocks its partition.
public struct ConsumedRecordValidator: Sendable {
    private let catalog: TopicCatalog
    private let deadLetters: (any EventProducer)?

    /// With a producer, invalid records are dead-lettered; without one, `check` throws.
    public init(catalog: TopicCatalog, deadLetters: (any EventProducer)?) {
        self.catalog = catalog
        self.deadLetters = deadLetters
    }

    /// The record if valid; nil if it was dead-lettered.
    public func check(_ record: ConsumerRecord) async throws -> ConsumerRecord? {
        do {
            try catalog.validate(topic: record.topic, value: record.value, headers: record.headers)
            return record
        } catch let error as EventLogError where error.kind == .invalidPayload {
            guard let deadLetters else { throw error }
            _ = try await deadLetters.send(DeadLetter.record(topic: record.topic, key: record.key, value: record.value,
                                                             headers: record.headers, reason: error.message,
                                                             partition: record.partition, offset: record.offset))
            return nil
        }
    }
}
