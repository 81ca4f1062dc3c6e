import AttuneEventLog

/// What the worker has read and committed per partition. The offset to commit is the first one
/// not yet covered by a published version: the next unread offset, or the lowest offset still
/// waiting in a batch.
struct CommitLedger {
    /// The last offset read from each owned partition.
    private(set) var lastRead: [TopicPartition: Int64] = [:]
    /// The offsets last committed.
    private(set) var committed: [TopicPartition: Int64] = [:]

    mutating func read(_ partition: TopicPartition, _ offset: Int64) { lastRead[partition] = offset }

    /// The next offset to read from `partition`, if a record of it was read.
    func nextToRead(_ partition: TopicPartition) -> Int64? { lastRead[partition].map { $0 + 1 } }

    /// Forgets partitions this member no longer owns.
    mutating func keep(only owned: Set<TopicPartition>) {
        lastRead = lastRead.filter { owned.contains($0.key) }
    }

    /// The offsets to commit, given the lowest offset waiting in a batch per partition.
    func toCommit(waiting: [TopicPartition: Int64]) -> [TopicPartition: Int64] {
        var offsets = lastRead.mapValues { $0 + 1 }
        for (tp, lowest) in waiting { offsets[tp] = min(offsets[tp] ?? lowest, lowest) }
        return offsets
    }

    mutating func didCommit(_ offsets: [TopicPartition: Int64]) {
        committed.merge(offsets) { $1 }
    }
}
