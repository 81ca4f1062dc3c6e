/// An event-log failure. Kafka failures carry librdkafka's error code and whether
/// retrying may help or the client is unusable.
public struct EventLogError: Error, CustomStringConvertible, Sendable {
    public enum Kind: String, Sendable {
        case unknownTopic, topicExists, unknownPartition, invalidArgument, invalidConfiguration
        case messageTooLarge, invalidPayload, notAssigned, closed, storage, kafka, timeout
        /// The disk under a local store (the embedded log, a file being written) is full:
        /// nothing was written, and retrying will not help until space is freed.
        case diskFull
    }

    public var kind: Kind
    public var message: String
    /// librdkafka's `rd_kafka_resp_err_t`, for Kafka failures.
    public var code: Int32?
    public var isRetriable: Bool
    public var isFatal: Bool

    public init(_ kind: Kind, _ message: String, code: Int32? = nil, isRetriable: Bool = false, isFatal: Bool = false) {
        self.kind = kind
        self.message = message
        self.code = code
        self.isRetriable = isRetriable
        self.isFatal = isFatal
    }

    public var description: String { "\(kind.rawValue): \(detail)" }

    /// The message with librdkafka's code, without the kind: what a person at a terminal reads.
    public var detail: String {
        guard let code else { return message }
        return message + " (librdkafka code \(code)\(isRetriable ? ", retriable" : "")\(isFatal ? ", fatal" : ""))"
    }
}
