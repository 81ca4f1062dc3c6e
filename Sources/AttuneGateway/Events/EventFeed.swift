import AttuneEventLog
import AttuneRegistry
import Foundation

/// A position on `attune.adapter-events`: the next offset to read on every partition,
/// written `o0.o1.…` (the SSE event id). Resuming from it reads exactly what came after.
public struct EventCursor: Sendable, Equatable, CustomStringConvertible {
    public var next: [Int64]

    public init(next: [Int64]) {
        self.next = next
    }

    public init?(parsing text: String, partitions: Int) {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false).map { Int64($0) }
        guard parts.count == partitions, parts.allSatisfy({ ($0 ?? -1) >= 0 }) else { return nil }
        next = parts.map { $0! }
    }

    public var description: String { next.map(String.init).joined(separator: ".") }
}

/// Which events a subscriber gets: those it may see (domains, and the tenants of its key),
/// narrowed by adapter names, tenants or domains if given (any match passes).
public struct EventFilter: Sendable {
    public var adapters: Set<AdapterName> = []
    public var tenants: Set<String> = []
    public var domains: Set<String> = []
    public var principal: Principal = .open

    public init(adapters: Set<AdapterName> = [], tenants: Set<String> = [], domains: Set<String> = [], principal: Principal = .open) {
        self.adapters = adapters
        self.tenants = tenants
        self.domains = domains
        self.principal = principal
    }

    public func admits(_ release: AdapterRelease) -> Bool {
        guard let name = release.name else { return false }
        if !principal.mayUse(name) { return false }
        if adapters.isEmpty && tenants.isEmpty && domains.isEmpty { return true }
        if adapters.contains(name) { return true }
        switch name.kind {
        case .tenant:
            if tenants.contains(name.id) { return true }
            if let domain = release.domainReference?.name.id, domains.contains(domain) { return true }
        case .domain, .meta:
            if domains.contains(name.id) { return true }
        }
        return false
    }
}

/// One announced version as a subscriber receives it.
public struct FeedEvent: Sendable {
    /// Where the feed stands once this event is delivered (its SSE id).
    public let cursor: EventCursor
    /// The CloudEvent exactly as it is on the topic.
    public let cloudEvent: [UInt8]
    public let event: AdapterEvent
}

/// Reads `adapter.updated` events for one subscriber from every partition of the events
/// topic, from a cursor, the beginning or the end, passing those its filter admits.
public final class EventFeed: @unchecked Sendable {
    public enum Start: Sendable {
        case earliest, latest
        case cursor(EventCursor)
    }

    public let topic: String
    public let partitions: Int
    private let consumer: any EventConsumer
    private let filter: EventFilter
    private var position: EventCursor

    /// The number of partitions of `topic` (it must exist).
    public static func partitionCount(log: any EventLog, topic: String) async throws -> Int {
        let admin = try log.makeAdmin()
        let description = try await admin.describeTopic(topic)
        await admin.close()
        guard let description else { throw EventLogError(.unknownTopic, "topic \(topic) does not exist (create it with `attune topics apply`)") }
        return description.partitions
    }

    public init(log: any EventLog, topic: String, partitions: Int, start: Start, filter: EventFilter) async throws {
        let consumer = try log.makeConsumer(ConsumerConfiguration())
        let tps = (0..<partitions).map { TopicPartition(topic, $0) }
        var next: [Int64] = []
        do {
            try await consumer.assign(tps)
            for tp in tps {
                let marks = try await consumer.watermarks(tp)
                let offset: Int64
                switch start {
                case .earliest: offset = marks.low
                case .latest: offset = marks.high
                case .cursor(let cursor): offset = min(max(cursor.next[tp.partition], marks.low), marks.high)
                }
                try await consumer.seek(tp, to: offset)
                next.append(offset)
            }
        } catch {
            await consumer.close()
            throw error
        }
        self.topic = topic
        self.partitions = partitions
        self.consumer = consumer
        self.filter = filter
        self.position = EventCursor(next: next)
    }

    /// Where the feed stands: everything before it has been read.
    public var cursor: EventCursor { position }

    /// The next admitted events, waiting up to `timeout` for records (may return none).
    public func next(timeout: Duration) async throws -> [FeedEvent] {
        var events: [FeedEvent] = []
        for record in try await consumer.poll(maxRecords: 100, timeout: timeout) where record.topic == topic {
            guard record.partition < partitions, record.offset >= position.next[record.partition] else { continue }
            position.next[record.partition] = record.offset + 1
            guard let value = record.value, let event = AdapterEvent(value), filter.admits(event.release) else { continue }
            events.append(FeedEvent(cursor: position, cloudEvent: value, event: event))
        }
        return events
    }

    /// Whether every partition has been read to its current end.
    public func caughtUp() async throws -> Bool {
        for p in 0..<partitions where try await consumer.watermarks(TopicPartition(topic, p)).high > position.next[p] { return false }
        return true
    }

    public func close() async {
        await consumer.close()
    }
}
