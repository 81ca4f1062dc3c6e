/// Where a consumer starts on a partition without a committed offset.
public enum OffsetReset: String, Sendable, CaseIterable {
    case earliest, latest
}

/// How a group spreads partitions over its members.
public enum AssignmentStrategy: String, Sendable, CaseIterable {
    /// Per topic, contiguous ranges of partitions (Kafka's `range`).
    case range
    /// All partitions dealt out in turn (Kafka's `roundrobin`).
    case roundRobin = "roundrobin"
}

/// Producer settings common to both transports.
public struct ProducerConfiguration: Sendable {
    /// Exactly-once per partition within a session (Kafka `enable.idempotence`).
    public var idempotence = true
    /// How long the Kafka producer waits to fill a batch (`linger.ms`).
    public var lingerMs = 5
    /// Kafka compression codec (`compression.type`): none, gzip, snappy, lz4, zstd.
    public var compression = "none"
    /// Client-side limit on one record (`message.max.bytes`); topics still apply their own.
    public var maxMessageBytes = 16 * 1024 * 1024
    /// librdkafka properties passed through verbatim; they win over the fields above.
    public var properties: [String: String] = [:]

    public init() {}
}

/// Consumer settings common to both transports.
public struct ConsumerConfiguration: Sendable {
    /// The consumer group; required for `subscribe` and commits.
    public var groupID: String?
    public var autoOffsetReset = OffsetReset.earliest
    public var assignmentStrategy = AssignmentStrategy.range
    /// A member that has not heartbeated for this long is removed from its group.
    public var sessionTimeout = Duration.seconds(10)
    public var heartbeatInterval = Duration.seconds(1)
    /// Store the offset after each record `poll` returns, for `commit(mode:)`
    /// (Kafka `enable.auto.offset.store`); false: only `store(_:)` stores.
    public var autoOffsetStore = true
    /// Called on the polling task before partitions are lost and after they are gained.
    public var rebalanceHandler: (@Sendable (RebalanceEvent) async -> Void)?
    /// Receives failures of `.async` commits.
    public var errorHandler: (@Sendable (EventLogError) -> Void)?
    /// Largest record batch fetched at once from a partition (Kafka `fetch.max.bytes` etc. via `properties`).
    public var maxFetchBytes = 64 * 1024 * 1024
    /// librdkafka properties passed through verbatim; they win over the fields above.
    public var properties: [String: String] = [:]

    public init(groupID: String? = nil) {
        self.groupID = groupID
    }
}

/// Settings of the Kafka transport: the brokers and librdkafka properties (SASL, TLS, …)
/// shared by every client it creates.
public struct KafkaConfiguration: Sendable {
    public var bootstrapServers: [String]
    public var clientID = "attune"
    /// librdkafka properties for every client, e.g. `security.protocol`, `sasl.mechanisms`.
    public var properties: [String: String] = [:]

    public init(bootstrapServers: [String], properties: [String: String] = [:]) {
        self.bootstrapServers = bootstrapServers
        self.properties = properties
    }
}

/// Settings of the embedded (SQLite) transport.
public struct EmbeddedConfiguration: Sendable {
    /// Directory holding `eventlog.sqlite` and its WAL files.
    public var directory: String
    /// How long a writer waits for another process's transaction.
    public var busyTimeoutMs = 10_000
    /// How often, at most, producers apply retention and compaction.
    public var maintenanceInterval = Duration.seconds(30)
    /// `synchronous` pragma: NORMAL survives process crashes (WAL), FULL also power loss.
    public var synchronousFull = false

    public init(directory: String) {
        self.directory = directory
    }
}
