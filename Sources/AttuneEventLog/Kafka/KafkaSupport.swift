import CRdKafka
import Foundation

/// librdkafka codes after which a retry may succeed (broker or network trouble).
private let retriableCodes: Set<Int32> = Set(([
    RD_KAFKA_RESP_ERR__TRANSPORT, RD_KAFKA_RESP_ERR__TIMED_OUT, RD_KAFKA_RESP_ERR__MSG_TIMED_OUT,
    RD_KAFKA_RESP_ERR__QUEUE_FULL, RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN, RD_KAFKA_RESP_ERR__WAIT_COORD,
    RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT, RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
    RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE, RD_KAFKA_RESP_ERR_NETWORK_EXCEPTION,
    RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS, RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND,
    RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS, RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE,
    RD_KAFKA_RESP_ERR_NOT_COORDINATOR, RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART,
    RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS,
] as [rd_kafka_resp_err_t]).map(\.rawValue))

extension EventLogError {
    /// An error for a librdkafka response code.
    static func kafka(_ err: rd_kafka_resp_err_t, _ context: String, handle: OpaquePointer? = nil) -> EventLogError {
        var code = err
        var text = String(cString: rd_kafka_err2str(err))
        let fatal = err == RD_KAFKA_RESP_ERR__FATAL
        if fatal, let handle {
            var buffer = [CChar](repeating: 0, count: 512)
            code = rd_kafka_fatal_error(handle, &buffer, buffer.count)
            text = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
        let kind: Kind = switch code {
        case RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS: .topicExists
        case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC: .unknownTopic
        case RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION: .unknownPartition
        case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE: .messageTooLarge
        case RD_KAFKA_RESP_ERR_ILLEGAL_GENERATION, RD_KAFKA_RESP_ERR_UNKNOWN_MEMBER_ID, RD_KAFKA_RESP_ERR_FENCED_INSTANCE_ID,
             RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS, RD_KAFKA_RESP_ERR__ASSIGNMENT_LOST: .notAssigned
        default: .kafka
        }
        return EventLogError(kind, "\(context): \(text)", code: code.rawValue,
                             isRetriable: retriableCodes.contains(code.rawValue), isFatal: fatal)
    }

    /// An error for a librdkafka error object; destroys it.
    static func kafka(consuming error: OpaquePointer, _ context: String) -> EventLogError {
        defer { rd_kafka_error_destroy(error) }
        let code = rd_kafka_error_code(error)
        let kind: Kind = code == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS ? .topicExists : .kafka
        return EventLogError(kind, "\(context): \(String(cString: rd_kafka_error_string(error)))", code: code.rawValue,
                             isRetriable: rd_kafka_error_is_retriable(error) != 0, isFatal: rd_kafka_error_is_fatal(error) != 0)
    }
}

/// Builds an `rd_kafka_conf_t` from properties; the caller owns the result until `rd_kafka_new` succeeds.
func makeKafkaConf(_ properties: [String: String]) throws -> OpaquePointer {
    guard let conf = rd_kafka_conf_new() else { throw EventLogError(.kafka, "rd_kafka_conf_new failed") }
    var errstr = [CChar](repeating: 0, count: 512)
    for (key, value) in properties.sorted(by: { $0.key < $1.key }) {
        if rd_kafka_conf_set(conf, key, value, &errstr, errstr.count) != RD_KAFKA_CONF_OK {
            rd_kafka_conf_destroy(conf)
            throw EventLogError(.invalidConfiguration, "\(key)=\(value): \(cString(errstr))")
        }
    }
    return conf
}

/// Creates a client; consumes `conf` either way.
func makeKafkaHandle(_ type: rd_kafka_type_t, _ conf: OpaquePointer) throws -> OpaquePointer {
    var errstr = [CChar](repeating: 0, count: 512)
    guard let rk = rd_kafka_new(type, conf, &errstr, errstr.count) else {
        rd_kafka_conf_destroy(conf)
        throw EventLogError(.invalidConfiguration, "cannot create Kafka client: \(cString(errstr))")
    }
    return rk
}

func cString(_ buffer: [CChar]) -> String {
    String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

func milliseconds(_ duration: Duration) -> Int32 {
    let c = duration.components
    let ms = c.seconds * 1000 + c.attoseconds / 1_000_000_000_000_000
    return Int32(clamping: max(0, ms))
}

/// A `rd_kafka_topic_partition_list_t` built from Swift values; destroyed on deinit. The
/// pointer is only lent out through `withList`, which keeps the list alive for the C call.
final class KafkaPartitionList {
    private let list: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>

    init(_ partitions: [TopicPartition], offsets: [TopicPartition: Int64] = [:]) {
        list = rd_kafka_topic_partition_list_new(Int32(max(1, partitions.count)))
        for tp in partitions {
            let entry = rd_kafka_topic_partition_list_add(list, tp.topic, Int32(clamping: tp.partition))
            if let offset = offsets[tp] { entry?.pointee.offset = offset }
        }
    }

    deinit { rd_kafka_topic_partition_list_destroy(list) }

    func withList<R>(_ body: (UnsafeMutablePointer<rd_kafka_topic_partition_list_t>) throws -> R) rethrows -> R {
        try withExtendedLifetime(self) { try body(list) }
    }

    var entries: [rd_kafka_topic_partition_t] { Self.entries(list) }

    static func entries(_ list: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?) -> [rd_kafka_topic_partition_t] {
        guard let list, let elems = list.pointee.elems else { return [] }
        return (0..<Int(list.pointee.cnt)).map { elems[$0] }
    }

    static func partitions(_ list: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?) -> [TopicPartition] {
        entries(list).map { TopicPartition(String(cString: $0.topic), Int($0.partition)) }.sorted()
    }

    /// The non-negative offset of each entry.
    var offsets: [TopicPartition: Int64] {
        var result: [TopicPartition: Int64] = [:]
        for entry in entries where entry.offset >= 0 {
            result[TopicPartition(String(cString: entry.topic), Int(entry.partition))] = entry.offset
        }
        return result
    }

    /// The first per-partition error, if any.
    func firstError(_ context: String) -> EventLogError? {
        for entry in entries where entry.err != RD_KAFKA_RESP_ERR_NO_ERROR {
            return .kafka(entry.err, "\(context) \(String(cString: entry.topic))[\(entry.partition)]")
        }
        return nil
    }
}

/// The common librdkafka properties of a transport plus per-client ones.
func kafkaProperties(_ kafka: KafkaConfiguration, _ extra: [String: String]) -> [String: String] {
    var properties = ["bootstrap.servers": kafka.bootstrapServers.joined(separator: ","), "client.id": kafka.clientID]
    properties.merge(kafka.properties) { $1 }
    properties.merge(extra) { $1 }
    return properties
}

/// Topic names by librdkafka topic handle, so a batch builds each name once.
struct TopicNameCache {
    private var names: [OpaquePointer: String] = [:]

    mutating func name(_ rkt: OpaquePointer) -> String {
        if let name = names[rkt] { return name }
        let name = String(cString: rd_kafka_topic_name(rkt))
        names[rkt] = name
        return name
    }
}

/// Reads a consumed message into a record.
func consumerRecord(_ message: UnsafeMutablePointer<rd_kafka_message_t>, names: inout TopicNameCache) -> ConsumerRecord {
    let m = message.pointee
    var timestampType = RD_KAFKA_TIMESTAMP_NOT_AVAILABLE
    let timestamp = rd_kafka_message_timestamp(message, &timestampType)
    var headers: [EventHeader] = []
    var hdrs: OpaquePointer?
    if rd_kafka_message_headers(message, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR, let hdrs {
        var index = 0
        var name: UnsafePointer<CChar>?
        var value: UnsafeRawPointer?
        var size = 0
        while rd_kafka_header_get_all(hdrs, index, &name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR {
            let bytes = value.map { Array(UnsafeRawBufferPointer(start: $0, count: size)) }
            headers.append(EventHeader(name.map { String(cString: $0) } ?? "", bytes))
            index += 1
        }
    }
    func bytes(_ pointer: UnsafeMutableRawPointer?, _ count: Int) -> [UInt8]? {
        guard let pointer else { return nil }
        return Array(UnsafeRawBufferPointer(start: pointer, count: count))
    }
    return ConsumerRecord(topic: names.name(m.rkt), partition: Int(m.partition), offset: m.offset,
                          timestamp: timestamp, key: bytes(m.key, m.key_len), value: bytes(m.payload, m.len), headers: headers)
}

/// A librdkafka handle passed to another thread; librdkafka handles are thread-safe.
struct KafkaHandle: @unchecked Sendable {
    let pointer: OpaquePointer
    init(_ pointer: OpaquePointer) { self.pointer = pointer }
}
