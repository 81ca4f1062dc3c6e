import CRdKafka
import Foundation
import Synchronization

/// State the librdkafka callbacks reach through the client's opaque pointer. The consumer
/// keeps it alive until after `rd_kafka_destroy`, so callbacks never see freed memory.
private final class KafkaConsumerState: Sendable {
    /// A rebalance kept for the polling task: librdkafka's event and our own copy of its list.
    struct Rebalance: @unchecked Sendable {
        let event: rd_kafka_resp_err_t
        let list: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>
    }
    private struct Rebalances {
        var pending: [Rebalance] = []
        var closing = false
    }
    private let rebalances = Mutex(Rebalances())
    let deferRebalances: Bool
    let errorHandler: (@Sendable (EventLogError) -> Void)?

    init(deferRebalances: Bool, errorHandler: (@Sendable (EventLogError) -> Void)?) {
        self.deferRebalances = deferRebalances
        self.errorHandler = errorHandler
    }

    /// Keeps a copy of a rebalance for the polling task; false if it must be applied now.
    func postpone(_ err: rd_kafka_resp_err_t, _ list: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>) -> Bool {
        rebalances.withLock { r in
            guard deferRebalances, !r.closing, let copy = rd_kafka_topic_partition_list_copy(list) else { return false }
            r.pending.append(Rebalance(event: err, list: copy))
            return true
        }
    }

    var hasPending: Bool { rebalances.withLock { !$0.pending.isEmpty } }

    func takePending() -> [Rebalance] {
        rebalances.withLock { r in
            defer { r.pending = [] }
            return r.pending
        }
    }

    func startClosing() { rebalances.withLock { $0.closing = true } }
}

/// Applies a rebalance to librdkafka's assignment (eager or cooperative protocol).
private func applyRebalance(_ rk: OpaquePointer, _ err: rd_kafka_resp_err_t, _ list: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>) {
    let cooperative = rd_kafka_rebalance_protocol(rk).map { String(cString: $0) } == "COOPERATIVE"
    if err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS {
        if cooperative {
            if let error = rd_kafka_incremental_assign(rk, list) { rd_kafka_error_destroy(error) }
        } else {
            rd_kafka_assign(rk, list)
        }
    } else if cooperative {
        if let error = rd_kafka_incremental_unassign(rk, list) { rd_kafka_error_destroy(error) }
    } else {
        rd_kafka_assign(rk, nil)
    }
}

private func rebalanceCallback(_ rk: OpaquePointer?, _ err: rd_kafka_resp_err_t,
                               _ list: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?, _ opaque: UnsafeMutableRawPointer?) {
    guard let rk, let list, let opaque else { return }
    let state = Unmanaged<KafkaConsumerState>.fromOpaque(opaque).takeUnretainedValue()
    if state.postpone(err, list) {
        rd_kafka_yield(rk)
    } else {
        applyRebalance(rk, err, list)
    }
}

private func offsetCommitCallback(_ rk: OpaquePointer?, _ err: rd_kafka_resp_err_t,
                                  _ list: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?, _ opaque: UnsafeMutableRawPointer?) {
    guard let opaque, err != RD_KAFKA_RESP_ERR_NO_ERROR, err != RD_KAFKA_RESP_ERR__NO_OFFSET else { return }
    let state = Unmanaged<KafkaConsumerState>.fromOpaque(opaque).takeUnretainedValue()
    state.errorHandler?(.kafka(err, "offset commit", handle: rk))
}

/// Runs blocking librdkafka calls off the Swift concurrency pool.
private func blocking<T: Sendable>(on queue: DispatchQueue = .global(), _ body: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { continuation in
        queue.async { continuation.resume(returning: body()) }
    }
}

private struct PollOutcome: @unchecked Sendable {
    var records: [ConsumerRecord] = []
    var error: EventLogError?
}

/// A Kafka consumer over librdkafka: group membership with rebalances delivered to the
/// caller (revoked before the partitions go), manual commits, seek, offsets for times,
/// pause/resume. Polls run on a private serial queue.
public final class KafkaConsumer: EventConsumer, @unchecked Sendable {
    private let rk: OpaquePointer
    /// The consumer queue (messages and callbacks); released before the handle is destroyed.
    private let consumerQueue: OpaquePointer
    private let state: KafkaConsumerState
    private let configuration: ConsumerConfiguration
    private let pollQueue = DispatchQueue(label: "attune.kafka.consumer.poll")
    private let lock = NSLock()
    private var closed = false
    private var subscribed = false
    /// Watermark queries past their deadline and not yet returned (librdkafka can hold one for
    /// as long as the partition's leader is unreachable); while any is, new ones fail at once.
    private var overdueQueries = 0
    /// Offsets given to partitions re-assigned by `seek` that have not fetched yet.
    private var seekOffsets: [TopicPartition: Int64] = [:]

    public init(_ kafka: KafkaConfiguration, consumer: ConsumerConfiguration) throws {
        var properties = [
            "enable.auto.commit": "false",
            "enable.auto.offset.store": consumer.autoOffsetStore ? "true" : "false",
            "auto.offset.reset": consumer.autoOffsetReset.rawValue,
            "partition.assignment.strategy": consumer.assignmentStrategy.rawValue,
            "session.timeout.ms": String(milliseconds(consumer.sessionTimeout)),
            "heartbeat.interval.ms": String(milliseconds(consumer.heartbeatInterval)),
        ]
        // librdkafka 2.0 needs a group id even for `assign`; a groupless consumer gets a private
        // one it never commits to.
        properties["group.id"] = consumer.groupID ?? "attune-standalone-\(UUID().uuidString)"
        properties = kafkaProperties(kafka, properties)
        properties.merge(consumer.properties) { $1 }
        let conf = try makeKafkaConf(properties)
        state = KafkaConsumerState(deferRebalances: consumer.rebalanceHandler != nil, errorHandler: consumer.errorHandler)
        configuration = consumer
        rd_kafka_conf_set_opaque(conf, Unmanaged.passUnretained(state).toOpaque())
        rd_kafka_conf_set_rebalance_cb(conf, rebalanceCallback)
        rd_kafka_conf_set_offset_commit_cb(conf, offsetCommitCallback)
        let rk = try makeKafkaHandle(RD_KAFKA_CONSUMER, conf)
        rd_kafka_poll_set_consumer(rk)
        guard let queue = rd_kafka_queue_get_consumer(rk) else {
            rd_kafka_destroy(rk)
            throw EventLogError(.kafka, "librdkafka gave no consumer queue")
        }
        self.rk = rk
        consumerQueue = queue
    }

    deinit {
        if !closed {
            state.startClosing()
            rd_kafka_consumer_close(rk)
            rd_kafka_queue_destroy(consumerQueue)
            rd_kafka_destroy(rk)
        }
        for pending in state.takePending() { rd_kafka_topic_partition_list_destroy(pending.list) }
    }

    private var handle: KafkaHandle { KafkaHandle(rk) }

    private func requireGroup() throws {
        guard let group = configuration.groupID, !group.isEmpty else {
            throw EventLogError(.invalidConfiguration, "this operation needs a consumer group id")
        }
    }

    private func checkOpen() throws {
        if lock.withLock({ closed }) { throw EventLogError(.closed, "consumer is closed") }
    }

    public func subscribe(_ topics: [String]) async throws {
        try checkOpen()
        try requireGroup()
        guard !topics.isEmpty else { throw EventLogError(.invalidArgument, "subscribe needs at least one topic") }
        for topic in topics { try TopicNames.validate(topic) }
        let list = KafkaPartitionList(topics.map { TopicPartition($0, -1) })
        let err = list.withList { rd_kafka_subscribe(rk, $0) }
        if err != RD_KAFKA_RESP_ERR_NO_ERROR { throw EventLogError.kafka(err, "subscribe", handle: rk) }
        lock.withLock { subscribed = true }
    }

    public func assign(_ partitions: [TopicPartition]) async throws {
        try checkOpen()
        // Without a group there is no committed offset to look up: start at the reset position.
        let list = configuration.groupID == nil
            ? KafkaPartitionList(partitions, offsets: await resetOffsets(partitions))
            : KafkaPartitionList(partitions)
        lock.withLock { seekOffsets = [:] }
        let err = list.withList { rd_kafka_assign(rk, $0) }
        if err != RD_KAFKA_RESP_ERR_NO_ERROR { throw EventLogError.kafka(err, "assign", handle: rk) }
    }

    /// Absolute start offsets for the reset position. librdkafka 2.0 resolves a logical
    /// BEGINNING/END before it knows the new partition's leader and then retries only after
    /// 500 ms, so resolving them here starts the first fetch at once.
    private func resetOffsets(_ partitions: [TopicPartition]) async -> [TopicPartition: Int64] {
        let handle = self.handle, earliest = configuration.autoOffsetReset == .earliest
        let found = await blocking { listOffsets(handle.pointer, partitions, at: earliest ? earliestOffset : latestOffset, timeoutMs: 5000) }
        var offsets: [TopicPartition: Int64] = [:]
        for tp in partitions { offsets[tp] = (try? found.get())?[tp] ?? (earliest ? -2 : -1) }
        return offsets
    }

    public func assignment() async throws -> [TopicPartition] {
        try checkOpen()
        var list: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?
        let err = rd_kafka_assignment(rk, &list)
        defer { if let list { rd_kafka_topic_partition_list_destroy(list) } }
        if err != RD_KAFKA_RESP_ERR_NO_ERROR { throw EventLogError.kafka(err, "assignment", handle: rk) }
        return KafkaPartitionList.partitions(list)
    }

    public func poll(maxRecords: Int, timeout: Duration) async throws -> [ConsumerRecord] {
        try checkOpen()
        let handle = self.handle, state = self.state, limit = max(1, maxRecords)
        let timeoutMs = milliseconds(timeout)
        let queue = KafkaHandle(consumerQueue)
        let outcome = await blocking(on: pollQueue) {
            var outcome = PollOutcome()
            var names = TopicNameCache()
            func take(_ message: UnsafeMutablePointer<rd_kafka_message_t>) {
                defer { rd_kafka_message_destroy(message) }
                let err = message.pointee.err
                if err == RD_KAFKA_RESP_ERR_NO_ERROR {
                    outcome.records.append(consumerRecord(message, names: &names))
                } else if err != RD_KAFKA_RESP_ERR__PARTITION_EOF, outcome.error == nil {
                    var error = EventLogError.kafka(err, "consume", handle: handle.pointer)
                    error.message += " (\(String(cString: rd_kafka_message_errstr(message))))"
                    outcome.error = error
                }
            }
            // Wait for the first message in short slices (librdkafka 2.0 does not always wake a
            // long poll when the first fetch of a new assignment arrives), then drain what is
            // already fetched in batches.
            let deadline = ContinuousClock.now + .milliseconds(Int64(timeoutMs))
            var first: UnsafeMutablePointer<rd_kafka_message_t>?
            repeat {
                first = rd_kafka_consumer_poll(handle.pointer, min(timeoutMs, 20))
            } while first == nil && !state.hasPending && ContinuousClock.now < deadline
            guard let first else { return outcome }
            take(first)
            let capacity = min(limit, 1024)
            let batch = UnsafeMutablePointer<UnsafeMutablePointer<rd_kafka_message_t>?>.allocate(capacity: capacity)
            defer { batch.deallocate() }
            while outcome.records.count < limit, outcome.error == nil, !state.hasPending {
                let n = rd_kafka_consume_batch_queue(queue.pointer, 0, batch, min(capacity, limit - outcome.records.count))
                guard n > 0 else { break }
                for i in 0..<n { if let message = batch[i] { take(message) } }
            }
            return outcome
        }
        try await deliverRebalances()
        if let error = outcome.error, outcome.records.isEmpty { throw error }
        return outcome.records
    }

    /// Hands deferred rebalances to the handler: revoked before librdkafka drops the
    /// partitions, assigned after it took them.
    private func deliverRebalances() async throws {
        for pending in state.takePending() {
            let (err, list) = (pending.event, pending.list)
            let partitions = KafkaPartitionList.partitions(list)
            lock.withLock { seekOffsets = [:] }
            if err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS {
                applyRebalance(rk, err, list)
                rd_kafka_topic_partition_list_destroy(list)
                await configuration.rebalanceHandler?(.assigned(partitions))
            } else {
                await configuration.rebalanceHandler?(.revoked(partitions))
                applyRebalance(rk, err, list)
                rd_kafka_topic_partition_list_destroy(list)
            }
        }
    }

    public func commit(_ offsets: [TopicPartition: Int64], mode: CommitMode) async throws {
        try checkOpen()
        let list = KafkaPartitionList(Array(offsets.keys), offsets: offsets)
        try await commit(list, mode: mode)
    }

    public func commit(mode: CommitMode) async throws {
        try checkOpen()
        try await commit(nil, mode: mode)
    }

    public func store(_ offsets: [TopicPartition: Int64]) async throws {
        try checkOpen()
        if let negative = offsets.first(where: { $0.value < 0 }) {
            throw EventLogError(.invalidArgument, "cannot store negative offset \(negative.value) for \(negative.key)")
        }
        let list = KafkaPartitionList(Array(offsets.keys), offsets: offsets)
        let err = list.withList { rd_kafka_offsets_store(rk, $0) }
        if let error = list.firstError("store offset for") { throw error }
        if err != RD_KAFKA_RESP_ERR_NO_ERROR { throw EventLogError.kafka(err, "store offsets", handle: rk) }
    }

    private func commit(_ list: KafkaPartitionList?, mode: CommitMode) async throws {
        try requireGroup()
        let handle = self.handle
        let pointer = UncheckedBox(list)
        let async: Int32 = mode == .async ? 1 : 0
        let err = await blocking {
            pointer.value.map { list in list.withList { rd_kafka_commit(handle.pointer, $0, async) } }
                ?? rd_kafka_commit(handle.pointer, nil, async)
        }
        if err == RD_KAFKA_RESP_ERR_NO_ERROR || err == RD_KAFKA_RESP_ERR__NO_OFFSET { return }
        throw EventLogError.kafka(err, "commit", handle: rk)
    }

    public func committed(_ partitions: [TopicPartition]) async throws -> [TopicPartition: Int64] {
        try checkOpen()
        try requireGroup()
        let list = UncheckedBox(KafkaPartitionList(partitions))
        let handle = self.handle
        let err = await blocking { list.value.withList { rd_kafka_committed(handle.pointer, $0, 10_000) } }
        if err != RD_KAFKA_RESP_ERR_NO_ERROR { throw EventLogError.kafka(err, "committed", handle: rk) }
        if let error = list.value.firstError("committed") { throw error }
        return list.value.offsets
    }

    public func position(_ partition: TopicPartition) async throws -> Int64? {
        try checkOpen()
        let list = KafkaPartitionList([partition])
        let err = list.withList { rd_kafka_position(rk, $0) }
        if err != RD_KAFKA_RESP_ERR_NO_ERROR { throw EventLogError.kafka(err, "position", handle: rk) }
        return list.offsets[partition]
    }

    public func seek(_ partition: TopicPartition, to offset: Int64) async throws {
        try checkOpen()
        guard offset >= 0 else { throw EventLogError(.invalidArgument, "cannot seek \(partition) to negative offset \(offset)") }
        guard try await assignment().contains(partition) else {
            throw EventLogError(.notAssigned, "cannot seek \(partition): not assigned to this consumer")
        }
        let list = UncheckedBox(KafkaPartitionList([partition], offsets: [partition: offset]))
        let handle = self.handle
        let error = await blocking { UncheckedBox(list.value.withList { rd_kafka_seek_partitions(handle.pointer, $0, 10_000) }) }
        if let error = error.value {
            // A partition whose fetcher has not started yet (just assigned) cannot be sought;
            // assigning it again at the wanted offset does the same.
            if rd_kafka_error_code(error) == RD_KAFKA_RESP_ERR__STATE {
                rd_kafka_error_destroy(error)
                return try reassign(partition, at: offset)
            }
            throw EventLogError.kafka(consuming: error, "seek \(partition)")
        }
        if let error = list.value.firstError("seek") {
            guard error.code == RD_KAFKA_RESP_ERR__STATE.rawValue else { throw error }
            try reassign(partition, at: offset)
        }
    }

    /// Re-assigns `partition` at `offset`, keeping the other partitions at their positions.
    private func reassign(_ partition: TopicPartition, at offset: Int64) throws {
        if rd_kafka_rebalance_protocol(rk).map({ String(cString: $0) }) == "COOPERATIVE" {
            let target = KafkaPartitionList([partition], offsets: [partition: offset])
            if let error = target.withList({ rd_kafka_incremental_unassign(rk, $0) }) { throw EventLogError.kafka(consuming: error, "seek \(partition)") }
            if let error = target.withList({ rd_kafka_incremental_assign(rk, $0) }) { throw EventLogError.kafka(consuming: error, "seek \(partition)") }
            return
        }
        var current: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?
        var err = rd_kafka_assignment(rk, &current)
        defer { if let current { rd_kafka_topic_partition_list_destroy(current) } }
        if err != RD_KAFKA_RESP_ERR_NO_ERROR { throw EventLogError.kafka(err, "seek \(partition)", handle: rk) }
        let owned = KafkaPartitionList.partitions(current)
        let positions = KafkaPartitionList(owned)
        positions.withList { _ = rd_kafka_position(rk, $0) }
        var offsets = lock.withLock { seekOffsets }.filter { owned.contains($0.key) }
        offsets.merge(positions.offsets) { $1 }
        offsets[partition] = offset
        lock.withLock { seekOffsets = offsets }
        err = KafkaPartitionList(owned, offsets: offsets).withList { rd_kafka_assign(rk, $0) }
        if err != RD_KAFKA_RESP_ERR_NO_ERROR { throw EventLogError.kafka(err, "seek \(partition)", handle: rk) }
    }

    public func offsets(forTimestamp timestamp: TimestampMs, partitions: [TopicPartition]) async throws -> [TopicPartition: Int64] {
        try checkOpen()
        let handle = self.handle
        return try await blocking { listOffsets(handle.pointer, partitions, at: timestamp, timeoutMs: 10_000) }.get()
    }

    public func watermarks(_ partition: TopicPartition) async throws -> Watermarks {
        try checkOpen()
        if lock.withLock({ overdueQueries > 0 }) {
            throw EventLogError(.timeout, "watermarks of \(partition): an earlier query is still waiting for the broker")
        }
        let handle = self.handle
        let answered = Mutex(false)
        let result: Result<Watermarks, EventLogError>? = await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                let marks = Result<Watermarks, EventLogError> { () throws(EventLogError) -> Watermarks in
                    let low = try listOffsets(handle.pointer, [partition], at: earliestOffset, timeoutMs: 5000).get()[partition]
                    let high = try listOffsets(handle.pointer, [partition], at: latestOffset, timeoutMs: 5000).get()[partition]
                    guard let low, let high else { throw EventLogError(.kafka, "watermarks of \(partition): the broker listed no offset") }
                    return Watermarks(low: low, high: high)
                }
                if answered.withLock({ let first = !$0; $0 = true; return first }) {
                    continuation.resume(returning: marks)
                } else {
                    self.lock.withLock { self.overdueQueries -= 1 }
                }
            }
            DispatchQueue.global().asyncAfter(deadline: .now() + .seconds(11)) {
                if answered.withLock({ let first = !$0; $0 = true; return first }) {
                    self.lock.withLock { self.overdueQueries += 1 }
                    continuation.resume(returning: nil)
                }
            }
        }
        guard let result else { throw EventLogError(.timeout, "watermarks of \(partition): no answer from the broker within 11 s") }
        return try result.get()
    }

    public func pause(_ partitions: [TopicPartition]) async throws {
        try checkOpen()
        let list = KafkaPartitionList(partitions)
        let err = list.withList { rd_kafka_pause_partitions(rk, $0) }
        if err != RD_KAFKA_RESP_ERR_NO_ERROR { throw EventLogError.kafka(err, "pause", handle: rk) }
        if let error = list.firstError("pause") { throw error }
    }

    public func resume(_ partitions: [TopicPartition]) async throws {
        try checkOpen()
        let list = KafkaPartitionList(partitions)
        let err = list.withList { rd_kafka_resume_partitions(rk, $0) }
        if err != RD_KAFKA_RESP_ERR_NO_ERROR { throw EventLogError.kafka(err, "resume", handle: rk) }
        if let error = list.firstError("resume") { throw error }
    }

    public func close() async {
        let wasClosed = lock.withLock {
            defer { closed = true }
            return closed
        }
        guard !wasClosed else { return }
        try? await deliverRebalances()
        if lock.withLock({ subscribed }), let handler = configuration.rebalanceHandler {
            var list: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?
            if rd_kafka_assignment(rk, &list) == RD_KAFKA_RESP_ERR_NO_ERROR {
                let owned = KafkaPartitionList.partitions(list)
                if !owned.isEmpty { await handler(.revoked(owned)) }
            }
            if let list { rd_kafka_topic_partition_list_destroy(list) }
        }
        state.startClosing()
        let handle = self.handle, queue = KafkaHandle(consumerQueue)
        await blocking(on: pollQueue) {
            rd_kafka_consumer_close(handle.pointer)
            rd_kafka_queue_destroy(queue.pointer)
            rd_kafka_destroy(handle.pointer)
        }
    }
}

/// ListOffsets timestamps that stand for a partition's first stored offset and for the offset
/// after its last record.
private let earliestOffset: Int64 = -2, latestOffset: Int64 = -1

/// Each partition's first offset at or after `timestamp` (or `earliestOffset`/`latestOffset`),
/// by one ListOffsets request that ends within `timeoutMs`; partitions with no such offset are
/// left out. (`rd_kafka_query_watermark_offsets` in librdkafka 2.0 can wait past its timeout
/// while a partition's leader is unknown, librdkafka #2588.)
private func listOffsets(_ rk: OpaquePointer, _ partitions: [TopicPartition], at timestamp: Int64,
                         timeoutMs: Int32) -> Result<[TopicPartition: Int64], EventLogError> {
    let list = KafkaPartitionList(partitions, offsets: Dictionary(uniqueKeysWithValues: partitions.map { ($0, timestamp) }))
    let err = list.withList { rd_kafka_offsets_for_times(rk, $0, timeoutMs) }
    if err != RD_KAFKA_RESP_ERR_NO_ERROR { return .failure(.kafka(err, "list offsets", handle: rk)) }
    if let error = list.firstError("list offsets") { return .failure(error) }
    return .success(list.offsets)
}

/// Carries a non-Sendable value into a blocking call that finishes before the caller resumes.
struct UncheckedBox<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}
