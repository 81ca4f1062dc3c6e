import CRdKafka
import Foundation
import Synchronization

/// Where a delivery report lands: its batch and the record's index in it.
private struct DeliverySlot {
    let batch: Unmanaged<DeliveryBatch>
    let index: Int
}

/// Results of one batch of records, completed by librdkafka's delivery reports. The batch
/// keeps itself alive until every record is reported; each record's opaque pointer is its slot.
private final class DeliveryBatch: @unchecked Sendable {
    private let lock = NSLock()
    private var results: [Result<RecordMetadata, EventLogError>]
    private var remaining: Int
    private var waiters: [CheckedContinuation<[Result<RecordMetadata, EventLogError>], Never>] = []
    private var keepAlive: Unmanaged<DeliveryBatch>?
    /// Topic of each record, so delivery reports need not build the name again.
    let topics: [String]
    let slots: UnsafeMutablePointer<DeliverySlot>

    init(topics: [String]) {
        results = Array(repeating: .failure(EventLogError(.kafka, "no delivery report")), count: topics.count)
        remaining = topics.count
        self.topics = topics
        slots = .allocate(capacity: topics.count)
        let me = Unmanaged.passUnretained(self)
        if !topics.isEmpty { keepAlive = me.retain() }
        for i in topics.indices { (slots + i).initialize(to: DeliverySlot(batch: me, index: i)) }
    }

    deinit {
        slots.deinitialize(count: topics.count)
        slots.deallocate()
    }

    func complete(_ index: Int, _ result: Result<RecordMetadata, EventLogError>) {
        lock.lock()
        results[index] = result
        remaining -= 1
        guard remaining == 0 else {
            lock.unlock()
            return
        }
        let finished = results, waiting = waiters, me = keepAlive
        waiters = []
        keepAlive = nil
        lock.unlock()
        for waiter in waiting { waiter.resume(returning: finished) }
        me?.release()
    }

    /// Every record's outcome, once the last delivery report arrived.
    func outcome() async -> [Result<RecordMetadata, EventLogError>] {
        await withCheckedContinuation { continuation in
            lock.lock()
            guard remaining > 0 else {
                let finished = results
                lock.unlock()
                continuation.resume(returning: finished)
                return
            }
            waiters.append(continuation)
            lock.unlock()
        }
    }
}

/// Delivery-report callback: runs on the thread serving `rd_kafka_poll`/`rd_kafka_flush`.
private func deliveryReport(_ rk: OpaquePointer?, _ message: UnsafePointer<rd_kafka_message_t>?, _ opaque: UnsafeMutableRawPointer?) {
    guard let message, let slotPointer = message.pointee._private else { return }
    let slot = slotPointer.assumingMemoryBound(to: DeliverySlot.self).pointee
    let batch = slot.batch.takeUnretainedValue()
    let m = message.pointee
    if m.err != RD_KAFKA_RESP_ERR_NO_ERROR {
        batch.complete(slot.index, .failure(.kafka(m.err, "delivery failed", handle: rk)))
        return
    }
    var type = RD_KAFKA_TIMESTAMP_NOT_AVAILABLE
    let timestamp = rd_kafka_message_timestamp(message, &type)
    batch.complete(slot.index, .success(RecordMetadata(topic: batch.topics[slot.index], partition: Int(m.partition),
                                                       offset: m.offset, timestamp: timestamp)))
}

/// A Kafka producer over librdkafka. Idempotent and murmur2-partitioned by default; a
/// background thread serves delivery reports, which complete the awaiting `send` calls.
public final class KafkaProducer: EventProducer, @unchecked Sendable {
    private let rk: OpaquePointer
    private let lock = NSLock()
    private var closed = false
    private let poller: Thread
    private let stopped = DispatchSemaphore(value: 0)
    private let running: PollerSwitch

    public init(_ kafka: KafkaConfiguration, producer: ProducerConfiguration) throws {
        var properties = [
            "enable.idempotence": producer.idempotence ? "true" : "false",
            "partitioner": "murmur2_random",
            "linger.ms": String(producer.lingerMs),
            "compression.type": producer.compression,
            "message.max.bytes": String(producer.maxMessageBytes),
        ]
        properties = kafkaProperties(kafka, properties)
        properties.merge(producer.properties) { $1 }
        let conf = try makeKafkaConf(properties)
        rd_kafka_conf_set_dr_msg_cb(conf, deliveryReport)
        rk = try makeKafkaHandle(RD_KAFKA_PRODUCER, conf)
        let running = PollerSwitch()
        self.running = running
        let handle = KafkaHandle(rk)
        let stopped = self.stopped
        poller = Thread {
            while running.on.load(ordering: .acquiring) { rd_kafka_poll(handle.pointer, 100) }
            stopped.signal()
        }
        poller.name = "attune-kafka-producer"
        poller.start()
    }

    deinit {
        shutDown(flushTimeoutMs: 5000)
    }

    public func send(_ record: ProducerRecord) async throws -> RecordMetadata {
        try await send([record])[0]
    }

    public func send(_ records: [ProducerRecord]) async throws -> [RecordMetadata] {
        try await sendEach(records).map { try $0.get() }
    }

    /// Each record's own delivery report: a failed record does not hide where the others landed.
    public func sendEach(_ records: [ProducerRecord]) async -> [Result<RecordMetadata, EventLogError>] {
        await enqueue(records).outcome()
    }

    /// Enqueues the records before it returns; the receipt awaits their delivery reports.
    public func submit(_ records: [ProducerRecord]) async throws -> ProduceReceipt {
        let batch = enqueue(records)
        return ProduceReceipt { await batch.outcome() }
    }

    /// Hands the records to librdkafka in order; a record it refuses is completed with its error.
    private func enqueue(_ records: [ProducerRecord]) -> DeliveryBatch {
        let batch = DeliveryBatch(topics: records.map(\.topic))
        lock.lock()
        defer { lock.unlock() }
        guard !closed else {
            for i in records.indices { batch.complete(i, .failure(EventLogError(.closed, "producer is closed"))) }
            return batch
        }
        // One topic handle per topic for the batch: a record named by string would look its
        // topic up under the client's write lock, which the broker threads contend for.
        var topics: [String: OpaquePointer] = [:]
        defer { topics.values.forEach { rd_kafka_topic_destroy($0) } }
        for (index, record) in records.enumerated() {
            let topic: OpaquePointer
            if let open = topics[record.topic] {
                topic = open
            } else if let opened = rd_kafka_topic_new(rk, record.topic, nil) {
                topics[record.topic] = opened
                topic = opened
            } else {
                batch.complete(index, .failure(.kafka(rd_kafka_last_error(), "open topic \(record.topic)", handle: rk)))
                continue
            }
            if let error = enqueue(record, to: topic, opaque: UnsafeMutableRawPointer(batch.slots + index)) {
                batch.complete(index, .failure(error))
            }
        }
        return batch
    }

    /// Hands one record to librdkafka, retrying while its queue is full.
    private func enqueue(_ record: ProducerRecord, to topic: OpaquePointer, opaque: UnsafeMutableRawPointer) -> EventLogError? {
        while true {
            guard let error = produce(record, to: topic, opaque: opaque) else { return nil }
            if rd_kafka_error_code(error) == RD_KAFKA_RESP_ERR__QUEUE_FULL {
                rd_kafka_error_destroy(error)
                rd_kafka_poll(rk, 10)
                continue
            }
            return .kafka(consuming: error, "produce to \(record.topic)")
        }
    }

    private func produce(_ record: ProducerRecord, to topic: OpaquePointer, opaque: UnsafeMutableRawPointer) -> OpaquePointer? {
        withOptionalBytes(record.key) { key in
            withOptionalBytes(record.value) { value in
                withHeaderNames(record.headers) { names in
                    withHeaderValues(record.headers) { values in
                        withUnsafeTemporaryAllocation(of: rd_kafka_vu_t.self, capacity: 7 + record.headers.count) { vus in
                            var count = 0
                            func add(_ type: rd_kafka_vtype_t, _ set: (inout rd_kafka_vu_t) -> Void) {
                                var vu = rd_kafka_vu_t()
                                vu.vtype = type
                                set(&vu)
                                vus.initializeElement(at: count, to: vu)
                                count += 1
                            }
                            add(RD_KAFKA_VTYPE_RKT) { $0.u.rkt = topic }
                            add(RD_KAFKA_VTYPE_PARTITION) { $0.u.i32 = Int32(clamping: record.partition ?? -1) }
                            add(RD_KAFKA_VTYPE_MSGFLAGS) { $0.u.i = RD_KAFKA_MSG_F_COPY }
                            add(RD_KAFKA_VTYPE_OPAQUE) { $0.u.ptr = opaque }
                            if let value {
                                add(RD_KAFKA_VTYPE_VALUE) {
                                    $0.u.mem.ptr = UnsafeMutableRawPointer(mutating: value.baseAddress ?? emptyBytes)
                                    $0.u.mem.size = value.count
                                }
                            }
                            if let key {
                                add(RD_KAFKA_VTYPE_KEY) {
                                    $0.u.mem.ptr = UnsafeMutableRawPointer(mutating: key.baseAddress ?? emptyBytes)
                                    $0.u.mem.size = key.count
                                }
                            }
                            if let timestamp = record.timestamp { add(RD_KAFKA_VTYPE_TIMESTAMP) { $0.u.i64 = timestamp } }
                            for (i, header) in record.headers.enumerated() {
                                add(RD_KAFKA_VTYPE_HEADER) {
                                    $0.u.header.name = names[i]
                                    $0.u.header.val = header.value == nil ? nil : UnsafeRawPointer(values[i].baseAddress ?? emptyBytes)
                                    $0.u.header.size = values[i].count
                                }
                            }
                            return rd_kafka_produceva(rk, vus.baseAddress, count)
                        }
                    }
                }
            }
        }
    }

    public func flush() async throws {
        let handle = KafkaHandle(rk)
        let err = await withCheckedContinuation { continuation in
            DispatchQueue.global().async { continuation.resume(returning: rd_kafka_flush(handle.pointer, 60_000)) }
        }
        if err != RD_KAFKA_RESP_ERR_NO_ERROR { throw EventLogError.kafka(err, "flush", handle: rk) }
    }

    public func close() async {
        await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                self.shutDown(flushTimeoutMs: 30_000)
                continuation.resume()
            }
        }
    }

    /// Flushes, fails what is still queued, stops the poller and destroys the handle; idempotent.
    private func shutDown(flushTimeoutMs: Int32) {
        lock.lock()
        let wasClosed = closed
        closed = true
        lock.unlock()
        guard !wasClosed else { return }
        if rd_kafka_flush(rk, flushTimeoutMs) != RD_KAFKA_RESP_ERR_NO_ERROR {
            rd_kafka_purge(rk, 0x1 | 0x2)
            rd_kafka_flush(rk, 1000)
        }
        running.on.store(false, ordering: .releasing)
        stopped.wait()
        rd_kafka_destroy(rk)
    }
}

/// A valid address for zero-length buffers, which librdkafka must not confuse with null. Never written.
nonisolated(unsafe) private let emptyBytes = UnsafeRawPointer(UnsafeMutableRawPointer.allocate(byteCount: 1, alignment: 1))

private func withOptionalBytes<R>(_ bytes: [UInt8]?, _ body: (UnsafeRawBufferPointer?) -> R) -> R {
    guard let bytes else { return body(nil) }
    return bytes.withUnsafeBytes { body($0) }
}

/// Keeps C strings of every header name alive for `body`.
private func withHeaderNames<R>(_ headers: [EventHeader], _ body: ([UnsafePointer<CChar>]) -> R) -> R {
    if headers.isEmpty { return body([]) }
    let storage = headers.map { strdup($0.name)! }
    defer { storage.forEach { free($0) } }
    return body(storage.map { UnsafePointer($0) })
}

/// Keeps every header value's bytes alive for `body` (empty buffers for null values).
private func withHeaderValues<R>(_ headers: [EventHeader], _ body: ([UnsafeRawBufferPointer]) -> R) -> R {
    if headers.isEmpty { return body([]) }
    let total = headers.reduce(0) { $0 + ($1.value?.count ?? 0) }
    let storage = UnsafeMutableRawBufferPointer.allocate(byteCount: max(1, total), alignment: 1)
    defer { storage.deallocate() }
    var buffers: [UnsafeRawBufferPointer] = []
    var cursor = 0
    for header in headers {
        let value = header.value ?? []
        value.withUnsafeBytes { src in
            if src.count > 0 { storage.baseAddress!.advanced(by: cursor).copyMemory(from: src.baseAddress!, byteCount: src.count) }
        }
        buffers.append(UnsafeRawBufferPointer(start: storage.baseAddress!.advanced(by: cursor), count: value.count))
        cursor += value.count
    }
    return body(buffers)
}

/// Whether the delivery-report poller keeps running, shared with its thread.
private final class PollerSwitch: Sendable {
    let on = Atomic(true)
}
