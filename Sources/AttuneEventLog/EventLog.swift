import Foundation

/// A topic and one of its partitions.
public struct TopicPartition: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var topic: String
    public var partition: Int

    public init(_ topic: String, _ partition: Int) {
        self.topic = topic
        self.partition = partition
    }

    /// Parses the `description` form, `topic[partition]`.
    public init?(parsing text: String) {
        guard text.hasSuffix("]"), let open = text.lastIndex(of: "["), open > text.startIndex,
              let partition = Int(text[text.index(after: open)..<text.index(before: text.endIndex)]), partition >= 0 else { return nil }
        self.init(String(text[..<open]), partition)
    }

    public static func < (a: TopicPartition, b: TopicPartition) -> Bool {
        (a.topic, a.partition) < (b.topic, b.partition)
    }

    public var description: String { "\(topic)[\(partition)]" }
}

/// A record header: a name and an optional binary value (Kafka allows null header values).
public struct EventHeader: Hashable, Sendable {
    public var name: String
    public var value: [UInt8]?

    public init(_ name: String, _ value: [UInt8]?) {
        self.name = name
        self.value = value
    }

    public init(_ name: String, _ text: String) {
        self.init(name, Array(text.utf8))
    }
}

extension Array where Element == EventHeader {
    /// The value of the last header named `name`, if any.
    public func value(named name: String) -> [UInt8]? {
        last(where: { $0.name == name })?.value
    }

    /// The UTF-8 text of the last header named `name`, if any.
    public func text(named name: String) -> String? {
        value(named: name).map { String(decoding: $0, as: UTF8.self) }
    }
}

/// Milliseconds since the Unix epoch, Kafka's timestamp unit.
public typealias TimestampMs = Int64

/// The current wall-clock time in milliseconds since the Unix epoch.
public func currentTimestampMs() -> TimestampMs {
    TimestampMs((Date().timeIntervalSince1970 * 1000).rounded(.down))
}

/// A record to produce. With no `partition`, a keyed record goes to murmur2(key) mod
/// partitions (Kafka's default) and an unkeyed one to a partition of the transport's choice.
public struct ProducerRecord: Sendable {
    public var topic: String
    public var partition: Int?
    public var key: [UInt8]?
    public var value: [UInt8]?
    public var headers: [EventHeader]
    /// Create time; `nil` means "now".
    public var timestamp: TimestampMs?

    public init(topic: String, partition: Int? = nil, key: [UInt8]? = nil, value: [UInt8]?,
                headers: [EventHeader] = [], timestamp: TimestampMs? = nil) {
        self.topic = topic
        self.partition = partition
        self.key = key
        self.value = value
        self.headers = headers
        self.timestamp = timestamp
    }

    public init(topic: String, key: String?, value: String, headers: [EventHeader] = [],
                timestamp: TimestampMs? = nil) {
        self.init(topic: topic, key: key.map { Array($0.utf8) }, value: Array(value.utf8),
                  headers: headers, timestamp: timestamp)
    }
}

/// Where a produced record landed.
public struct RecordMetadata: Hashable, Sendable {
    public var topic: String
    public var partition: Int
    public var offset: Int64
    public var timestamp: TimestampMs
}

/// A consumed record.
public struct ConsumerRecord: Hashable, Sendable {
    public var topic: String
    public var partition: Int
    public var offset: Int64
    public var timestamp: TimestampMs
    public var key: [UInt8]?
    public var value: [UInt8]?
    public var headers: [EventHeader]

    public init(topic: String, partition: Int, offset: Int64, timestamp: TimestampMs,
                key: [UInt8]?, value: [UInt8]?, headers: [EventHeader]) {
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.timestamp = timestamp
        self.key = key
        self.value = value
        self.headers = headers
    }

    public var topicPartition: TopicPartition { TopicPartition(topic, partition) }
}

/// A change of a group member's partitions. `revoked` is delivered before the member loses
/// the partitions (commit there), `assigned` once it owns the new ones.
public enum RebalanceEvent: Hashable, Sendable {
    case assigned([TopicPartition])
    case revoked([TopicPartition])
}

/// A topic to create: partitions, replication factor and topic configs
/// (`cleanup.policy`, `retention.ms`, `retention.bytes`, `max.message.bytes`, …).
public struct TopicSpec: Hashable, Sendable, Codable {
    public var name: String
    public var partitions: Int
    public var replicationFactor: Int
    public var configs: [String: String]

    public init(name: String, partitions: Int, replicationFactor: Int = 1, configs: [String: String] = [:]) {
        self.name = name
        self.partitions = partitions
        self.replicationFactor = replicationFactor
        self.configs = configs
    }
}

/// What a transport reports about an existing topic.
public struct TopicDescription: Hashable, Sendable {
    public var name: String
    public var partitions: Int
    public var replicationFactor: Int
    /// Topic configs the transport could read (explicitly set ones at least).
    public var configs: [String: String]
}

/// Low and high watermarks of a partition: the first offset still stored and the offset
/// the next produced record gets.
public struct Watermarks: Hashable, Sendable {
    public var low: Int64
    public var high: Int64
}

/// How a committed offset is written.
public enum CommitMode: Sendable {
    /// Return once the offsets are durable.
    case sync
    /// Return at once; failures go to the consumer's error handler.
    case async
}

/// Produces records to topics.
public protocol EventProducer: AnyObject, Sendable {
    /// Sends one record and returns where it landed once the log acknowledged it.
    func send(_ record: ProducerRecord) async throws -> RecordMetadata
    /// Sends many records (batched by the transport); results are in input order.
    func send(_ records: [ProducerRecord]) async throws -> [RecordMetadata]
    /// Sends many records and reports each one's outcome, in input order, so a caller can say
    /// exactly which landed. The default suits transports whose batches are atomic (all land
    /// or none); Kafka reports each record's delivery.
    func sendEach(_ records: [ProducerRecord]) async -> [Result<RecordMetadata, EventLogError>]
    /// Hands the records to the transport now, in order, and returns a receipt for their
    /// acknowledgements, so a caller can keep several batches in flight (as kcat keeps
    /// librdkafka's queue full) without reordering them. The default sends and waits.
    func submit(_ records: [ProducerRecord]) async throws -> ProduceReceipt
    /// Waits until everything sent so far is acknowledged.
    func flush() async throws
    /// Flushes and releases the producer; later calls fail with `EventLogError.Kind.closed`.
    func close() async
}

/// Records handed to a producer whose acknowledgements may still be on their way.
public struct ProduceReceipt: Sendable {
    private let outcome: @Sendable () async -> [Result<RecordMetadata, EventLogError>]

    /// A receipt whose outcomes `outcome` awaits.
    public init(_ outcome: @escaping @Sendable () async -> [Result<RecordMetadata, EventLogError>]) {
        self.outcome = outcome
    }

    /// A receipt for records already acknowledged.
    public init(acknowledged metadata: [RecordMetadata]) {
        outcome = { metadata.map { .success($0) } }
    }

    /// Each record's outcome, in input order, once all are known.
    public func results() async -> [Result<RecordMetadata, EventLogError>] { await outcome() }

    /// Where each record landed, in input order; throws the first record's failure.
    public func metadata() async throws -> [RecordMetadata] { try await results().map { try $0.get() } }
}

/// Batches submitted to a producer with up to `window` of them in flight: a submit waits
/// only for the oldest batch once the window is full, so the transport's queue never runs dry
/// between batches, and every record's acknowledgement is still awaited.
public struct InFlightBatches {
    private let producer: any EventProducer
    private let window: Int
    private var receipts: [ProduceReceipt] = []
    /// Records acknowledged so far.
    public private(set) var acknowledged = 0

    public init(_ producer: any EventProducer, window: Int = 4) {
        self.producer = producer
        self.window = max(1, window)
    }

    /// Hands `records` over in order; throws the first failure of a batch it waited for.
    public mutating func submit(_ records: [ProducerRecord]) async throws {
        receipts.append(try await producer.submit(records))
        if receipts.count >= window { acknowledged += try await receipts.removeFirst().metadata().count }
    }

    /// Waits for every batch still in flight; returns the records acknowledged in all.
    public mutating func finish() async throws -> Int {
        while !receipts.isEmpty { acknowledged += try await receipts.removeFirst().metadata().count }
        return acknowledged
    }
}

extension EventProducer {
    public func submit(_ records: [ProducerRecord]) async throws -> ProduceReceipt {
        ProduceReceipt(acknowledged: try await send(records))
    }

    public func sendEach(_ records: [ProducerRecord]) async -> [Result<RecordMetadata, EventLogError>] {
        do {
            return try await send(records).map { .success($0) }
        } catch {
            let failure = error as? EventLogError ?? EventLogError(.storage, "\(error)")
            return records.map { _ in .failure(failure) }
        }
    }
}

/// Consumes records, alone (`assign`) or as a member of a consumer group (`subscribe`).
/// Offsets follow Kafka's convention: a committed offset is the next offset to read.
public protocol EventConsumer: AnyObject, Sendable {
    /// Joins the configured group for these topics; partitions arrive through rebalances.
    func subscribe(_ topics: [String]) async throws
    /// Takes these partitions without a group rebalance, starting at their committed offset
    /// (if a group is configured) or the configured reset position.
    func assign(_ partitions: [TopicPartition]) async throws
    /// Partitions currently owned.
    func assignment() async throws -> [TopicPartition]
    /// Up to `maxRecords` records, waiting at most `timeout` for the first one.
    func poll(maxRecords: Int, timeout: Duration) async throws -> [ConsumerRecord]
    /// Commits these next-offsets for the group.
    func commit(_ offsets: [TopicPartition: Int64], mode: CommitMode) async throws
    /// Commits the stored offset of every owned partition (with `autoOffsetStore`, the offset
    /// after the last record `poll` returned).
    func commit(mode: CommitMode) async throws
    /// Stores next-offsets for the next `commit(mode:)`, for consumers that set
    /// `autoOffsetStore` to false and mark records done themselves.
    func store(_ offsets: [TopicPartition: Int64]) async throws
    /// The group's committed next-offsets for these partitions (absent: none committed).
    func committed(_ partitions: [TopicPartition]) async throws -> [TopicPartition: Int64]
    /// The next offset this consumer will read from an owned partition.
    func position(_ partition: TopicPartition) async throws -> Int64?
    /// Moves the read position of an owned partition.
    func seek(_ partition: TopicPartition, to offset: Int64) async throws
    /// For each partition, the earliest offset whose timestamp is ≥ `timestamp`
    /// (absent: no such record).
    func offsets(forTimestamp timestamp: TimestampMs, partitions: [TopicPartition]) async throws -> [TopicPartition: Int64]
    /// Low and high watermarks of a partition.
    func watermarks(_ partition: TopicPartition) async throws -> Watermarks
    /// Stops fetching from these partitions until resumed.
    func pause(_ partitions: [TopicPartition]) async throws
    func resume(_ partitions: [TopicPartition]) async throws
    /// Leaves the group (revoking partitions first) and releases the consumer.
    func close() async
}

extension EventConsumer {
    /// Seeks each partition to its first stored record.
    public func seekToBeginning(_ partitions: [TopicPartition]) async throws {
        for tp in partitions { try await seek(tp, to: try await watermarks(tp).low) }
    }

    /// Seeks each partition past its last record.
    public func seekToEnd(_ partitions: [TopicPartition]) async throws {
        for tp in partitions { try await seek(tp, to: try await watermarks(tp).high) }
    }

    /// Seeks each partition to the first record at or after `timestamp` (or its end).
    public func seek(toTimestamp timestamp: TimestampMs, _ partitions: [TopicPartition]) async throws {
        let found = try await offsets(forTimestamp: timestamp, partitions: partitions)
        for tp in partitions {
            let target: Int64
            if let offset = found[tp] { target = offset } else { target = try await watermarks(tp).high }
            try await seek(tp, to: target)
        }
    }

    /// Records as an endless async sequence (ends when the task is cancelled or the consumer closes).
    public var records: ConsumerRecords { ConsumerRecords(consumer: self) }

    public func poll(timeout: Duration) async throws -> [ConsumerRecord] {
        try await poll(maxRecords: 500, timeout: timeout)
    }
}

/// Creates and inspects topics.
public protocol EventLogAdmin: AnyObject, Sendable {
    /// Creates a topic; fails with `.topicExists` if it exists.
    func createTopic(_ spec: TopicSpec) async throws
    /// Describes a topic, or returns nil if it does not exist.
    func describeTopic(_ name: String) async throws -> TopicDescription?
    /// Names of all topics (internal ones excluded).
    func listTopics() async throws -> [String]
    func close() async
}

/// An event log transport: a factory of producers, consumers and admin clients.
public protocol EventLog: Sendable {
    /// A short name: `embedded` or `kafka`.
    var transportName: String { get }
    func makeProducer(_ configuration: ProducerConfiguration) throws -> any EventProducer
    func makeConsumer(_ configuration: ConsumerConfiguration) throws -> any EventConsumer
    func makeAdmin() throws -> any EventLogAdmin
}

extension EventLog {
    public func makeProducer() throws -> any EventProducer { try makeProducer(ProducerConfiguration()) }
}
