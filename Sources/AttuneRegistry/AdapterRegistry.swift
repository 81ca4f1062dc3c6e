import AttuneEventLog
import Foundation

/// Why a version's weights could not be had.
public struct RegistryError: Error, CustomStringConvertible, Sendable {
    public enum Kind: Sendable { case unknownAdapter, unknownVersion, notStored, corrupt }
    public let kind: Kind
    public let message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public var description: String { message }
}

/// One known version of an adapter.
public struct AdapterVersion: Sendable {
    /// The full release record (from `attune.adapters`), or what its event carried when the
    /// adapters topic no longer holds it (compacted).
    public var release: AdapterRelease
    /// Where its weights are stored on `attune.adapters`, while they are.
    public var location: StoredLocation?
    /// Whether its `adapter.updated` event has been seen.
    public var announced: Bool
    /// When it was published: the timestamp of its record on `attune.adapters` (else of its event).
    public var publishedAt: TimestampMs?
}

/// A record's place on a topic.
public struct StoredLocation: Sendable, Hashable {
    public let partition: TopicPartition
    public let offset: Int64
}

/// Every published adapter version, rebuilt from `attune.adapters` (weights and full release
/// records, compacted) and `attune.adapter-events` (the announcements) from their beginning,
/// then kept current by `poll`. A version is *live* once it is both stored and announced:
/// training workers write the weights first and announce them second, so an event never names
/// weights that are not there. Weights are fetched on demand and verified against the sha256.
///
/// No consumer group: every reader follows every partition, so nothing is lost with offsets.
/// A version that becomes live is returned once, to the `catchUp` or `poll` call that read it:
/// let one task follow a registry.
public actor AdapterRegistry {
    public let adaptersTopic: String
    public let eventsTopic: String
    private let log: any EventLog
    private let follower: any EventConsumer
    private var fetcher: (any EventConsumer)?
    private let partitions: [TopicPartition]
    private var next: [TopicPartition: Int64] = [:]
    private var versions: [AdapterName: [Int: AdapterVersion]] = [:]
    /// Stored and announced versions not yet returned as live (a tenant waits for its domain version).
    private var waiting: [AdapterReference] = []
    /// Every version read from `attune.adapters`, in the order it was read (announced or not).
    private var storedOrder: [AdapterReference] = []
    /// The weights of the versions read last from `attune.adapters`, newest last, at most
    /// `recentWeightsLimit` bytes: the first fetch of a version just published takes them
    /// instead of reading the topic a second time.
    private var recentWeights: [(version: AdapterReference, bytes: [UInt8])] = []
    private let recentWeightsLimit: Int
    private let report: @Sendable (String) -> Void

    /// Opens both topics (they must exist: `attune topics apply`) and positions at their start;
    /// keeps up to `recentWeights` bytes of the weights it reads last for their first fetch.
    public init(log: any EventLog, adaptersTopic: String = "attune.adapters", eventsTopic: String = "attune.adapter-events",
                recentWeights: Int = 32 << 20, report: @escaping @Sendable (String) -> Void = { _ in }) async throws {
        let admin = try log.makeAdmin()
        var partitions: [TopicPartition] = []
        do {
            for topic in [adaptersTopic, eventsTopic] {
                guard let d = try await admin.describeTopic(topic) else {
                    throw EventLogError(.unknownTopic, "topic \(topic) does not exist (create it with `attune topics apply`)")
                }
                partitions += (0..<d.partitions).map { TopicPartition(topic, $0) }
            }
        } catch {
            await admin.close()
            throw error
        }
        await admin.close()
        let consumer = try log.makeConsumer(ConsumerConfiguration())
        try await consumer.assign(partitions)
        try await consumer.seekToBeginning(partitions)
        self.log = log
        self.adaptersTopic = adaptersTopic
        self.eventsTopic = eventsTopic
        self.partitions = partitions
        follower = consumer
        recentWeightsLimit = recentWeights
        self.report = report
    }

    /// Reads everything up to each partition's end as of now; returns the versions that became
    /// live, in the order they did.
    @discardableResult
    public func catchUp(within limit: Duration = .seconds(120)) async throws -> [AdapterRelease] {
        var ends: [TopicPartition: Int64] = [:]
        for p in partitions {
            let w = try await follower.watermarks(p)
            ends[p] = w.high
            if next[p] == nil { next[p] = w.low }
        }
        let deadline = ContinuousClock.now + limit
        var live: [AdapterRelease] = []
        while partitions.contains(where: { next[$0]! < ends[$0]! }) {
            guard ContinuousClock.now < deadline else {
                throw EventLogError(.timeout, "could not read \(adaptersTopic) and \(eventsTopic) to their end within \(limit)")
            }
            live += try await poll(timeout: .milliseconds(200))
        }
        return live
    }

    /// One poll of both topics; returns the versions that became live.
    public func poll(timeout: Duration) async throws -> [AdapterRelease] {
        for r in try await follower.poll(maxRecords: 256, timeout: timeout) {
            next[r.topicPartition] = r.offset + 1
            if let complete = r.topic == adaptersTopic ? takeStored(r) : takeEvent(r) { waiting.append(complete) }
        }
        var live: [AdapterRelease] = []
        waiting.removeAll { reference in
            guard let version = reference.version, let known = versions[reference.name]?[version], isServable(known) else { return false }
            live.append(known.release)
            return true
        }
        return live
    }

    /// Stored, announced, and — for a tenant — its domain version stored too.
    private func isServable(_ v: AdapterVersion) -> Bool {
        guard v.announced, v.location != nil else { return false }
        guard let domain = v.release.domainReference, let domainVersion = domain.version else { return true }
        return versions[domain.name]?[domainVersion]?.location != nil
    }

    /// Asks the log for one partition's watermarks: throws when the log cannot be reached.
    public func probe() async throws {
        if let first = partitions.first { _ = try await follower.watermarks(first) }
    }

    /// Whether everything written to the topics before the last `catchUp` or poll was read.
    public func lag() async throws -> Int64 {
        var total: Int64 = 0
        for p in partitions {
            let w = try await follower.watermarks(p)
            total += max(0, w.high - (next[p] ?? w.low))
        }
        return total
    }

    /// Indexes a stored version; returns its reference when it is now stored and announced.
    private func takeStored(_ r: ConsumerRecord) -> AdapterReference? {
        guard let release = AdapterRelease.from(r), release.isWellFormed, let name = release.name else {
            report("skipping \(r.topic)[\(r.partition)]@\(r.offset): no well-formed release header")
            return nil
        }
        let location = StoredLocation(partition: r.topicPartition, offset: r.offset)
        let known = versions[name]?[release.version]
        if let known, known.release.sha256 != release.sha256 {
            report("skipping \(r.topic)[\(r.partition)]@\(r.offset): \(release.id) was already published with sha256 \(known.release.sha256.prefix(12))")
            return nil
        }
        let announced = known?.announced ?? false
        versions[name, default: [:]][release.version] = AdapterVersion(release: release, location: location, announced: announced,
                                                                         publishedAt: r.timestamp)
        storedOrder.append(AdapterReference(name, version: release.version))
        keepRecent(AdapterReference(name, version: release.version), r.value ?? [])
        return announced && known?.location == nil ? AdapterReference(name, version: release.version) : nil
    }

    /// Notes an announcement; returns the version's reference when it is now stored and announced.
    private func takeEvent(_ r: ConsumerRecord) -> AdapterReference? {
        guard let event = AdapterEvent(r.value ?? []), let name = event.release.name else {
            report("skipping \(r.topic)[\(r.partition)]@\(r.offset): not an adapter.updated CloudEvent")
            return nil
        }
        let version = event.release.version
        if var known = versions[name]?[version] {
            guard known.release.sha256 == event.release.sha256 else {
                report("refusing the event for \(event.release.id): its sha256 differs from the stored version's")
                return nil
            }
            let becameLive = !known.announced && known.location != nil
            known.announced = true
            versions[name]![version] = known
            return becameLive ? AdapterReference(name, version: version) : nil
        }
        versions[name, default: [:]][version] = AdapterVersion(release: event.release, location: nil, announced: true,
                                                                  publishedAt: r.timestamp)
        return nil
    }

    /// The versions read from `attune.adapters` since `position` (0: all of them), announced or
    /// not, in the order they were read, and the position to ask from next time. For a training
    /// worker, which must also see a version whose publisher died before announcing it.
    public func stored(from position: Int) -> (releases: [AdapterRelease], next: Int) {
        let start = min(max(0, position), storedOrder.count)
        let releases = storedOrder[start...].compactMap { ref in ref.version.flatMap { versions[ref.name]?[$0]?.release } }
        return (releases, storedOrder.count)
    }

    /// Every adapter name known.
    public var names: [AdapterName] { versions.keys.sorted() }

    /// The newest live version of `name` (stored, announced, and its domain version stored).
    public func latest(_ name: AdapterName) -> AdapterRelease? {
        versions[name]?.values.filter(isServable).max { $0.release.version < $1.release.version }?.release
    }

    /// The live versions of `name`, newest first.
    public func liveVersions(_ name: AdapterName) -> [AdapterRelease] {
        (versions[name] ?? [:]).values.filter(isServable).map(\.release).sorted { $0.version > $1.version }
    }

    /// Every known version of `name`, oldest first (live or not; compacted ones from their events).
    public func history(_ name: AdapterName) -> [AdapterVersion] {
        (versions[name] ?? [:]).values.sorted { $0.release.version < $1.release.version }
    }

    /// The release a reference names: its exact version, or the latest live one.
    public func resolve(_ reference: AdapterReference) throws -> AdapterRelease {
        guard let all = versions[reference.name] else {
            throw RegistryError(.unknownAdapter, "no adapter named \(reference.name)")
        }
        guard let version = reference.version else {
            guard let latest = latest(reference.name) else {
                throw RegistryError(.unknownVersion, "\(reference.name) has no announced version yet")
            }
            return latest
        }
        guard let known = all[version] else {
            throw RegistryError(.unknownVersion, "\(reference.name) has no version \(version) (latest: \(all.keys.max() ?? 0))")
        }
        return known.release
    }

    /// The weights of a version, read from `attune.adapters` and checked against its sha256.
    public func weights(of release: AdapterRelease) async throws -> [UInt8] {
        guard let name = release.name, let known = versions[name]?[release.version] else {
            throw RegistryError(.unknownVersion, "\(release.id) is not a known version")
        }
        guard let location = known.location else {
            throw RegistryError(.notStored, "\(release.id) is no longer stored on \(adaptersTopic) (compacted away)")
        }
        if let recent = recentWeights.firstIndex(where: { $0.version == AdapterReference(name, version: release.version) }) {
            return try verified(recentWeights.remove(at: recent).bytes, as: known.release)
        }
        let consumer = try fetcher ?? log.makeConsumer(ConsumerConfiguration())
        fetcher = consumer
        try await consumer.assign([location.partition])
        try await consumer.seek(location.partition, to: location.offset)
        let deadline = ContinuousClock.now + .seconds(60)
        while ContinuousClock.now < deadline {
            for r in try await consumer.poll(maxRecords: 1, timeout: .milliseconds(100)) where r.offset == location.offset {
                return try verified(r.value ?? [], as: known.release)
            }
        }
        throw RegistryError(.notStored, "\(release.id): could not read \(location.partition)@\(location.offset)")
    }

    /// `bytes` when their sha256 is the one `release` was published with.
    private func verified(_ bytes: [UInt8], as release: AdapterRelease) throws -> [UInt8] {
        guard AdapterRelease.digest(bytes) == release.sha256 else {
            throw RegistryError(.corrupt, "\(release.id): stored bytes do not match sha256 \(release.sha256.prefix(12))…")
        }
        return bytes
    }

    /// Keeps a version's stored bytes as the newest recent weights, dropping the oldest past the limit.
    private func keepRecent(_ version: AdapterReference, _ bytes: [UInt8]) {
        recentWeights.removeAll { $0.version == version }
        guard bytes.count <= recentWeightsLimit else { return }
        recentWeights.append((version, bytes))
        var total = recentWeights.reduce(0) { $0 + $1.bytes.count }
        while total > recentWeightsLimit {
            total -= recentWeights.removeFirst().bytes.count
        }
    }

    public func close() async {
        await follower.close()
        await fetcher?.close()
    }
}
