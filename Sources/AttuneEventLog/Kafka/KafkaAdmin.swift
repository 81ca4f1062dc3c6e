import CRdKafka
import Foundation
import Synchronization

/// The Kafka transport: producers, consumers and admin clients sharing one configuration.
public struct KafkaEventLog: EventLog {
    public let configuration: KafkaConfiguration
    public var transportName: String { "kafka" }

    public init(_ configuration: KafkaConfiguration) {
        self.configuration = configuration
    }

    public func makeProducer(_ configuration: ProducerConfiguration) throws -> any EventProducer {
        try KafkaProducer(self.configuration, producer: configuration)
    }

    public func makeConsumer(_ configuration: ConsumerConfiguration) throws -> any EventConsumer {
        try KafkaConsumer(self.configuration, consumer: configuration)
    }

    public func makeAdmin() throws -> any EventLogAdmin {
        try KafkaAdmin(configuration)
    }
}

/// Topic administration through librdkafka's Admin API and metadata requests.
public final class KafkaAdmin: EventLogAdmin, @unchecked Sendable {
    private let rk: OpaquePointer
    private let closed = Atomic(false)
    private let timeoutMs: Int32 = 30_000

    public init(_ kafka: KafkaConfiguration) throws {
        rk = try makeKafkaHandle(RD_KAFKA_PRODUCER, try makeKafkaConf(kafkaProperties(kafka, [:])))
    }

    deinit { destroy() }

    private func destroy() {
        if !closed.exchange(true, ordering: .acquiringAndReleasing) { rd_kafka_destroy(rk) }
    }

    private func checkOpen() throws {
        if closed.load(ordering: .acquiring) { throw EventLogError(.closed, "admin client is closed") }
    }

    public func createTopic(_ spec: TopicSpec) async throws {
        try checkOpen()
        try TopicNames.validate(spec.name)
        guard spec.partitions > 0 else { throw EventLogError(.invalidArgument, "topic \(spec.name): partitions must be ≥ 1") }
        try TopicConfigs.validate(spec.configs, topic: spec.name)
        let handle = KafkaHandle(rk), timeoutMs = self.timeoutMs
        let result: Result<Void, EventLogError> = await runBlocking {
            var errstr = [CChar](repeating: 0, count: 512)
            guard let topic = rd_kafka_NewTopic_new(spec.name, Int32(clamping: spec.partitions), Int32(clamping: spec.replicationFactor), &errstr, errstr.count) else {
                return .failure(EventLogError(.invalidArgument, "topic \(spec.name): \(cString(errstr))"))
            }
            defer { rd_kafka_NewTopic_destroy(topic) }
            for (key, value) in spec.configs.sorted(by: { $0.key < $1.key }) {
                let err = rd_kafka_NewTopic_set_config(topic, key, value)
                if err != RD_KAFKA_RESP_ERR_NO_ERROR { return .failure(.kafka(err, "topic \(spec.name) config \(key)")) }
            }
            return adminRequest(handle.pointer, RD_KAFKA_ADMIN_OP_CREATETOPICS, timeoutMs) { options, queue in
                var topics: [OpaquePointer?] = [topic]
                rd_kafka_CreateTopics(handle.pointer, &topics, 1, options, queue)
            } result: { event in
                guard let result = rd_kafka_event_CreateTopics_result(event) else {
                    return .failure(EventLogError(.kafka, "create topic \(spec.name): unexpected admin result"))
                }
                var count = 0
                guard let results = rd_kafka_CreateTopics_result_topics(result, &count) else { return .success(()) }
                for i in 0..<count {
                    let err = rd_kafka_topic_result_error(results[i])
                    if err != RD_KAFKA_RESP_ERR_NO_ERROR {
                        var error = EventLogError.kafka(err, "create topic \(spec.name)")
                        if let text = rd_kafka_topic_result_error_string(results[i]) { error.message += " (\(String(cString: text)))" }
                        return .failure(error)
                    }
                }
                return .success(())
            }
        }
        try result.get()
    }

    public func describeTopic(_ name: String) async throws -> TopicDescription? {
        try checkOpen()
        guard var description = try await metadata().first(where: { $0.name == name }) else { return nil }
        description.configs = await topicConfigs(name)
        return description
    }

    public func listTopics() async throws -> [String] {
        try checkOpen()
        return try await metadata().map(\.name).filter { !$0.hasPrefix("__") }.sorted()
    }

    public func close() async {
        destroy()
    }

    /// How many brokers the cluster reports (caps the replication factor `topics apply` asks for).
    public func brokerCount() async throws -> Int {
        try checkOpen()
        let handle = KafkaHandle(rk), timeoutMs = self.timeoutMs
        let result: Result<Int, EventLogError> = await runBlocking {
            var md: UnsafePointer<rd_kafka_metadata>?
            let err = rd_kafka_metadata(handle.pointer, 0, nil, &md, timeoutMs)
            guard err == RD_KAFKA_RESP_ERR_NO_ERROR, let md else { return .failure(.kafka(err, "metadata", handle: handle.pointer)) }
            defer { rd_kafka_metadata_destroy(md) }
            return .success(Int(md.pointee.broker_cnt))
        }
        return try result.get()
    }

    /// All topics the cluster reports (asking for all topics never auto-creates one).
    private func metadata() async throws -> [TopicDescription] {
        let handle = KafkaHandle(rk), timeoutMs = self.timeoutMs
        let result: Result<[TopicDescription], EventLogError> = await runBlocking {
            var md: UnsafePointer<rd_kafka_metadata>?
            let err = rd_kafka_metadata(handle.pointer, 1, nil, &md, timeoutMs)
            guard err == RD_KAFKA_RESP_ERR_NO_ERROR, let md else { return .failure(.kafka(err, "metadata", handle: handle.pointer)) }
            defer { rd_kafka_metadata_destroy(md) }
            var topics: [TopicDescription] = []
            for i in 0..<Int(md.pointee.topic_cnt) {
                let topic = md.pointee.topics[i]
                guard topic.err == RD_KAFKA_RESP_ERR_NO_ERROR else { continue }
                let replicas = topic.partition_cnt > 0 ? Int(topic.partitions[0].replica_cnt) : 0
                topics.append(TopicDescription(name: String(cString: topic.topic), partitions: Int(topic.partition_cnt),
                                               replicationFactor: replicas, configs: [:]))
            }
            return .success(topics)
        }
        return try result.get()
    }

    /// The topic's explicitly set configs (DescribeConfigs); empty if the broker does not answer it.
    private func topicConfigs(_ name: String) async -> [String: String] {
        let handle = KafkaHandle(rk), timeoutMs = self.timeoutMs
        let result: Result<[String: String], EventLogError> = await runBlocking {
            guard let resource = rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, name) else { return .success([:]) }
            defer { rd_kafka_ConfigResource_destroy(resource) }
            return adminRequest(handle.pointer, RD_KAFKA_ADMIN_OP_DESCRIBECONFIGS, timeoutMs) { options, queue in
                var resources: [OpaquePointer?] = [resource]
                rd_kafka_DescribeConfigs(handle.pointer, &resources, 1, options, queue)
            } result: { event in
                var configs: [String: String] = [:]
                guard let result = rd_kafka_event_DescribeConfigs_result(event) else { return .success(configs) }
                var count = 0
                guard let resources = rd_kafka_DescribeConfigs_result_resources(result, &count) else { return .success(configs) }
                for i in 0..<count where rd_kafka_ConfigResource_error(resources[i]) == RD_KAFKA_RESP_ERR_NO_ERROR {
                    var entryCount = 0
                    guard let entries = rd_kafka_ConfigResource_configs(resources[i], &entryCount) else { continue }
                    for j in 0..<entryCount {
                        guard rd_kafka_ConfigEntry_source(entries[j]) == RD_KAFKA_CONFIG_SOURCE_DYNAMIC_TOPIC_CONFIG,
                              let key = rd_kafka_ConfigEntry_name(entries[j]), let value = rd_kafka_ConfigEntry_value(entries[j]) else { continue }
                        configs[String(cString: key)] = String(cString: value)
                    }
                }
                return .success(configs)
            }
        }
        return (try? result.get()) ?? [:]
    }
}

private func runBlocking<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { continuation in
        DispatchQueue.global().async { continuation.resume(returning: body()) }
    }
}

/// Sends one Admin API request on a private queue and reads its result event.
private func adminRequest<T>(_ rk: OpaquePointer, _ op: rd_kafka_admin_op_t, _ timeoutMs: Int32,
                             send: (OpaquePointer?, OpaquePointer?) -> Void,
                             result: (OpaquePointer) -> Result<T, EventLogError>) -> Result<T, EventLogError> {
    guard let queue = rd_kafka_queue_new(rk) else { return .failure(EventLogError(.kafka, "cannot create admin queue")) }
    defer { rd_kafka_queue_destroy(queue) }
    let options = rd_kafka_AdminOptions_new(rk, op)
    defer { rd_kafka_AdminOptions_destroy(options) }
    var errstr = [CChar](repeating: 0, count: 512)
    rd_kafka_AdminOptions_set_request_timeout(options, timeoutMs, &errstr, errstr.count)
    rd_kafka_AdminOptions_set_operation_timeout(options, timeoutMs, &errstr, errstr.count)
    send(options, queue)
    guard let event = rd_kafka_queue_poll(queue, timeoutMs + 5000) else {
        return .failure(EventLogError(.timeout, "admin request timed out", isRetriable: true))
    }
    defer { rd_kafka_event_destroy(event) }
    let err = rd_kafka_event_error(event)
    if err != RD_KAFKA_RESP_ERR_NO_ERROR {
        var error = EventLogError.kafka(err, "admin request")
        if let text = rd_kafka_event_error_string(event) { error.message += " (\(String(cString: text)))" }
        return .failure(error)
    }
    return result(event)
}
