import AttuneEventLog
import AttuneRegistry

/// The published versions this worker knows of — the latest `kept` of each adapter, the newest
/// carrying what older ones trained and is not yet committed — and whether an input is
/// already trained into one of them.
struct Lineage {
    let kept: Int
    private(set) var releases: [AdapterName: [AdapterRelease]] = [:]

    init(kept: Int) { self.kept = kept }

    /// Adds a release (once; releases of no known adapter kind are ignored).
    mutating func remember(_ release: AdapterRelease) {
        guard let name = release.name else { return }
        var list = releases[name, default: []]
        guard !list.contains(where: { $0.id == release.id }) else { return }
        list.append(release)
        releases[name] = Array(list.suffix(kept))
    }

    /// Whether a known version of `name` trained the input at `offset` of `partition`.
    func trained(_ name: AdapterName, _ partition: TopicPartition, _ offset: Int64) -> Bool {
        (releases[name] ?? []).contains { $0.accountsFor(partition, offset) }
    }
}
