import Foundation

/// The zero-server event log: topics, partitions, offsets and consumer groups in one SQLite
/// database (WAL mode) that several processes on one host may share.
public struct EmbeddedEventLog: EventLog {
    public let configuration: EmbeddedConfiguration
    public var transportName: String { "embedded" }

    public init(_ configuration: EmbeddedConfiguration) {
        self.configuration = configuration
    }

    public init(directory: String) {
        self.init(EmbeddedConfiguration(directory: directory))
    }

    public func makeProducer(_ configuration: ProducerConfiguration) throws -> any EventProducer {
        try EmbeddedProducer(self.configuration, producer: configuration)
    }

    public func makeConsumer(_ configuration: ConsumerConfiguration) throws -> any EventConsumer {
        try EmbeddedConsumer(self.configuration, consumer: configuration)
    }

    public func makeAdmin() throws -> any EventLogAdmin {
        try EmbeddedAdmin(configuration)
    }
}

/// Creates, describes and maintains topics of the embedded log.
public actor EmbeddedAdmin: EventLogAdmin {
    private let store: EmbeddedStore

    public init(_ configuration: EmbeddedConfiguration) throws {
        store = try EmbeddedStore(configuration)
    }

    public func createTopic(_ spec: TopicSpec) throws {
        try store.createTopic(spec)
    }

    public func describeTopic(_ name: String) throws -> TopicDescription? {
        guard let topic = try store.topic(name) else { return nil }
        return TopicDescription(name: name, partitions: topic.partitionIDs.count,
                                replicationFactor: topic.replicationFactor, configs: topic.configs)
    }

    public func listTopics() throws -> [String] {
        try store.listTopics()
    }

    /// Applies retention (time, size) and compaction now; returns the number of records removed.
    @discardableResult
    public func maintain(now: TimestampMs = currentTimestampMs()) throws -> Int {
        try store.maintain(now: now)
    }

    public func close() {
        store.close()
    }
}

/// Appends records to the embedded log; a batch is one SQLite transaction.
public actor EmbeddedProducer: EventProducer {
    private let store: EmbeddedStore
    private let configuration: ProducerConfiguration
    private let maintenanceIntervalMs: Int64
    private var lastMaintenance = currentTimestampMs()
    private var nextUnkeyed = 0
    private var closed = false

    public init(_ embedded: EmbeddedConfiguration, producer: ProducerConfiguration) throws {
        store = try EmbeddedStore(embedded)
        configuration = producer
        let interval = embedded.maintenanceInterval.components
        maintenanceIntervalMs = interval.seconds * 1000 + interval.attoseconds / 1_000_000_000_000_000
    }

    public func send(_ record: ProducerRecord) async throws -> RecordMetadata {
        try await send([record])[0]
    }

    public func send(_ records: [ProducerRecord]) async throws -> [RecordMetadata] {
        guard !closed else { throw EventLogError(.closed, "producer is closed") }
        if records.isEmpty { return [] }
        var partitions: [Int] = []
        partitions.reserveCapacity(records.count)
        for record in records {
            let topic = try store.requireTopic(record.topic)
            let count = topic.partitionIDs.count
            guard count > 0 else { throw EventLogError(.storage, "topic \(record.topic) has no partitions in \(store.configuration.directory)") }
            let size = (record.key?.count ?? 0) + (record.value?.count ?? 0)
                + record.headers.reduce(0) { $0 + $1.name.utf8.count + ($1.value?.count ?? 0) }
            guard size <= topic.maxMessageBytes, size <= configuration.maxMessageBytes else {
                throw EventLogError(.messageTooLarge, "record of \(size) bytes exceeds max.message.bytes \(min(topic.maxMessageBytes, configuration.maxMessageBytes)) of \(record.topic)")
            }
            if let partition = record.partition {
                guard (0..<count).contains(partition) else {
                    throw EventLogError(.unknownPartition, "\(record.topic)[\(partition)] does not exist (topic has \(count) partitions)")
                }
                partitions.append(partition)
            } else if let key = record.key {
                partitions.append(Murmur2.partition(forKey: key, partitionCount: count))
            } else {
                partitions.append(nextUnkeyed % count)
                nextUnkeyed &+= 1
            }
        }
        let result = try store.append(records, partitions: partitions)
        let now = currentTimestampMs()
        if now - lastMaintenance >= maintenanceIntervalMs {
            lastMaintenance = now
            try store.maintain(now: now)
        }
        return result
    }

    public func flush() async throws {}

    public func close() async {
        closed = true
        store.close()
    }
}
