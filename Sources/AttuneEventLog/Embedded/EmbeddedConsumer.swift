import Foundation

/// Reads the embedded log, alone or as a consumer-group member (see `EmbeddedStore` groups).
/// Heartbeats happen in `poll`: a member that does not poll within the session timeout
/// loses its partitions.
public actor EmbeddedConsumer: EventConsumer {
    private enum Mode { case idle, subscribed([String]), assigned }

    private let store: EmbeddedStore
    private let configuration: ConsumerConfiguration
    private let memberID: String
    private var mode = Mode.idle
    private var owned: Set<TopicPartition> = []
    private var pending: Set<TopicPartition> = []
    private var positions: [TopicPartition: Int64] = [:]
    private var stored: [TopicPartition: Int64] = [:]
    private var paused: Set<TopicPartition> = []
    private var generation: Int64 = 0
    private var lastHeartbeat = ContinuousClock.now
    private var rotation = 0
    private var closed = false

    public init(_ embedded: EmbeddedConfiguration, consumer: ConsumerConfiguration) throws {
        store = try EmbeddedStore(embedded)
        configuration = consumer
        memberID = "\(ProcessInfo.processInfo.processIdentifier)-\(UUID().uuidString)"
    }

    private var sessionMs: Int64 {
        let c = configuration.sessionTimeout.components
        return c.seconds * 1000 + c.attoseconds / 1_000_000_000_000_000
    }

    private func checkOpen() throws {
        if closed { throw EventLogError(.closed, "consumer is closed") }
    }

    private func requireGroup() throws -> String {
        guard let group = configuration.groupID, !group.isEmpty else {
            throw EventLogError(.invalidConfiguration, "this operation needs a consumer group id")
        }
        return group
    }

    public func subscribe(_ topics: [String]) async throws {
        try checkOpen()
        let group = try requireGroup()
        guard !topics.isEmpty else { throw EventLogError(.invalidArgument, "subscribe needs at least one topic") }
        for topic in topics { _ = try store.requireTopic(topic) }
        mode = .subscribed(topics)
        generation = 0
        try await joinAndSync(group, topics)
    }

    public func assign(_ partitions: [TopicPartition]) async throws {
        try checkOpen()
        for tp in partitions { _ = try store.partitionID(tp) }
        if case .subscribed = mode, let group = configuration.groupID {
            try store.leaveGroup(group, member: memberID)
        }
        mode = .assigned
        owned = Set(partitions)
        pending = []
        positions = [:]
        stored = [:]
        try initialisePositions(owned)
    }

    public func assignment() throws -> [TopicPartition] {
        try checkOpen()
        return owned.sorted()
    }

    public func poll(maxRecords: Int, timeout: Duration) async throws -> [ConsumerRecord] {
        try checkOpen()
        let deadline = ContinuousClock.now + timeout
        var lastGroupTick = ContinuousClock.now, readAt: Int64?
        try await groupTick()
        while true {
            // The first pass always reads (positions may have moved since the last poll); later
            // ones only once another connection has committed since the previous read.
            let version = try store.dataVersion()
            if version != readAt {
                readAt = version
                let records = try fetch(max(1, maxRecords))
                if !records.isEmpty { return records }
            }
            let now = ContinuousClock.now
            if now >= deadline || closed { return [] }
            try await Task.sleep(for: min(.milliseconds(2), deadline - now))
            if ContinuousClock.now - lastGroupTick >= .milliseconds(20) {
                let before = owned
                try await groupTick()
                lastGroupTick = .now
                if owned != before { readAt = nil }
            }
        }
    }

    public func commit(_ offsets: [TopicPartition: Int64], mode: CommitMode) async throws {
        try checkOpen()
        let group = try requireGroup()
        do {
            let member: String? = if case .subscribed = self.mode { memberID } else { nil }
            try store.commitOffsets(group, offsets, member: member)
        } catch let error as EventLogError where mode == .async {
            configuration.errorHandler?(error)
        }
    }

    public func commit(mode: CommitMode) async throws {
        try await commit(stored.filter { owned.contains($0.key) }, mode: mode)
    }

    public func store(_ offsets: [TopicPartition: Int64]) throws {
        try checkOpen()
        for (tp, offset) in offsets {
            guard owned.contains(tp) else { throw EventLogError(.notAssigned, "cannot store an offset for \(tp): not assigned to this consumer") }
            guard offset >= 0 else { throw EventLogError(.invalidArgument, "cannot store negative offset \(offset) for \(tp)") }
            stored[tp] = offset
        }
    }

    public func committed(_ partitions: [TopicPartition]) throws -> [TopicPartition: Int64] {
        try checkOpen()
        return try store.committedOffsets(try requireGroup(), partitions)
    }

    public func position(_ partition: TopicPartition) throws -> Int64? {
        try checkOpen()
        return positions[partition]
    }

    public func seek(_ partition: TopicPartition, to offset: Int64) throws {
        try checkOpen()
        guard owned.contains(partition) else {
            throw EventLogError(.notAssigned, "cannot seek \(partition): not assigned to this consumer")
        }
        guard offset >= 0 else { throw EventLogError(.invalidArgument, "cannot seek \(partition) to negative offset \(offset)") }
        positions[partition] = offset
    }

    public func offsets(forTimestamp timestamp: TimestampMs, partitions: [TopicPartition]) throws -> [TopicPartition: Int64] {
        try checkOpen()
        var result: [TopicPartition: Int64] = [:]
        for tp in partitions {
            if let offset = try store.offset(forTimestamp: timestamp, tp) { result[tp] = offset }
        }
        return result
    }

    public func watermarks(_ partition: TopicPartition) throws -> Watermarks {
        try checkOpen()
        return try store.watermarks(partition)
    }

    public func pause(_ partitions: [TopicPartition]) throws {
        try checkOpen()
        paused.formUnion(partitions)
    }

    public func resume(_ partitions: [TopicPartition]) throws {
        try checkOpen()
        paused.subtract(partitions)
    }

    public func close() async {
        guard !closed else { return }
        if case .subscribed = mode, let group = configuration.groupID {
            if !owned.isEmpty { await configuration.rebalanceHandler?(.revoked(owned.sorted())) }
            try? store.leaveGroup(group, member: memberID)
        }
        closed = true
        owned = []
        store.close()
    }

    // MARK: Group membership

    private func joinAndSync(_ group: String, _ topics: [String]) async throws {
        let newGeneration = try store.joinGroup(group, member: memberID, topics: topics,
                                                strategy: configuration.assignmentStrategy, sessionMs: sessionMs)
        lastHeartbeat = .now
        try await sync(group, newGeneration)
    }

    /// Heartbeats when due, follows generation changes (revoke before release) and claims
    /// partitions other members have released.
    private func groupTick() async throws {
        guard case .subscribed(let topics) = mode, let group = configuration.groupID else { return }
        if ContinuousClock.now - lastHeartbeat >= configuration.heartbeatInterval {
            if let current = try store.heartbeat(group, member: memberID) {
                lastHeartbeat = .now
                if current != generation { try await sync(group, current) }
            } else {
                try await joinAndSync(group, topics)
            }
        }
        if !pending.isEmpty {
            let claimed = try store.claim(group, member: memberID, pending)
            if !claimed.isEmpty {
                pending.subtract(claimed)
                try initialisePositions(claimed)
                owned.formUnion(claimed)
                await configuration.rebalanceHandler?(.assigned(claimed.sorted()))
            }
        }
    }

    private func sync(_ group: String, _ newGeneration: Int64) async throws {
        let target = try store.targetAssignment(group, member: memberID)
        let lost = owned.subtracting(target)
        if !lost.isEmpty {
            await configuration.rebalanceHandler?(.revoked(lost.sorted()))
            try store.release(group, member: memberID, lost)
            owned.subtract(lost)
            for tp in lost {
                positions[tp] = nil
                stored[tp] = nil
            }
        }
        pending = target.subtracting(owned)
        generation = newGeneration
    }

    private func initialisePositions(_ partitions: Set<TopicPartition>) throws {
        let committed = try configuration.groupID.map { try store.committedOffsets($0, Array(partitions)) } ?? [:]
        for tp in partitions {
            if let offset = committed[tp] {
                positions[tp] = offset
            } else {
                let marks = try store.watermarks(tp)
                positions[tp] = configuration.autoOffsetReset == .earliest ? marks.low : marks.high
            }
        }
    }

    private func fetch(_ maxRecords: Int) throws -> [ConsumerRecord] {
        let readable = owned.subtracting(paused).sorted()
        guard !readable.isEmpty else { return [] }
        rotation = (rotation + 1) % readable.count
        var out: [ConsumerRecord] = []
        var bytes = 0
        for i in 0..<readable.count where out.count < maxRecords && bytes < configuration.maxFetchBytes {
            let tp = readable[(rotation + i) % readable.count]
            var position = positions[tp] ?? 0
            let low = try store.watermarks(tp).low
            if position < low { position = low }
            let batch = try store.fetch(tp, from: position, maxRecords: maxRecords - out.count,
                                        maxBytes: configuration.maxFetchBytes - bytes)
            if let last = batch.last {
                position = last.offset + 1
                if configuration.autoOffsetStore { stored[tp] = position }
            }
            positions[tp] = position
            bytes += batch.reduce(0) { $0 + ($1.value?.count ?? 0) + ($1.key?.count ?? 0) }
            out += batch
        }
        return out
    }
}
