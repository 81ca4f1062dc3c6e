import AttuneEventLog
import AttuneRegistry

/// Which input partitions this worker owns, and the partition each adapter's inputs are keyed
/// to: the murmur2 partition of its tenant (on `attune.interactions`) or domain (on
/// `attune.corpora`), so that exactly one member of the group trains each adapter.
struct PartitionOwnership {
    let corporaTopic: String
    let interactionsTopic: String
    /// Partition counts of the two input topics.
    var partitionCounts: [String: Int] = [:]
    private(set) var owned: Set<TopicPartition> = []

    init(corporaTopic: String, interactionsTopic: String) {
        self.corporaTopic = corporaTopic
        self.interactionsTopic = interactionsTopic
    }

    /// Applies what a rebalance delivered; returns whether partitions were gained.
    mutating func apply(_ events: [RebalanceEvent]) -> Bool {
        var gained = false
        for event in events {
            switch event {
            case .assigned(let ps):
                owned.formUnion(ps)
                gained = true
            case .revoked(let ps):
                owned.subtract(ps)
            }
        }
        return gained
    }

    func owns(_ partition: TopicPartition) -> Bool { owned.contains(partition) }

    /// Whether this member owns the input partition `name` is keyed to.
    func owns(_ name: AdapterName) -> Bool { inputPartition(of: name).map(owned.contains) ?? false }

    /// The input partition an adapter's records are keyed to (nil until the topic's partition count is known).
    func inputPartition(of name: AdapterName) -> TopicPartition? {
        let topic = name.kind == .tenant ? interactionsTopic : corporaTopic
        guard let count = partitionCounts[topic] else { return nil }
        return TopicPartition(topic, Murmur2.partition(forKey: Self.key(of: name), partitionCount: count))
    }

    /// The record key of an adapter's inputs: the tenant or domain id.
    static func key(of name: AdapterName) -> [UInt8] { Array(name.id.utf8) }

    /// Why a record is on the wrong partition for the adapter it names (its key must be the
    /// tenant or domain), or nil.
    func misrouted(_ record: ConsumerRecord, adapter: AdapterName) -> String? {
        guard record.key == Self.key(of: adapter) else { return "record key must be the \(adapter.kind.rawValue) it names (\(adapter.id))" }
        guard inputPartition(of: adapter) == record.topicPartition else {
            return "record is on partition \(record.partition), not the one its key \(adapter.id) hashes to"
        }
        return nil
    }
}
