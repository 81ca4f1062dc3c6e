import AttuneEventLog

/// Writes adapter versions: the weights with their release headers to `attune.adapters`, then
/// the `adapter.updated` CloudEvent to `attune.adapter-events` (in that order, so a subscriber
/// never hears of a version it cannot fetch). Used by the training workers, rollbacks, promotions,
/// replays and meta-initializations.
public struct ReleasePublisher: Sendable {
    public let adaptersTopic: String
    public let eventsTopic: String
    /// CloudEvents `source` of the announcements.
    public let source: String

    public init(adaptersTopic: String = "attune.adapters", eventsTopic: String = "attune.adapter-events", source: String) {
        self.adaptersTopic = adaptersTopic
        self.eventsTopic = eventsTopic
        self.source = source
    }

    /// Stores the version's weights, keyed by adapter name.
    public func store(_ release: AdapterRelease, weights: [UInt8], producer: any EventProducer) async throws {
        _ = try await producer.send(ProducerRecord(topic: adaptersTopic, key: Array(release.adapter.utf8), value: weights,
                                                   headers: try release.headers()))
    }

    /// Announces a stored version.
    public func announce(_ release: AdapterRelease, producer: any EventProducer) async throws {
        _ = try await producer.send(ProducerRecord(topic: eventsTopic, key: Array(release.adapter.utf8),
                                                   value: try release.cloudEvent(source: source),
                                                   headers: [EventHeader("content-type", "application/cloudevents+json")]))
    }

    /// Stores, then announces.
    public func publish(_ release: AdapterRelease, weights: [UInt8], producer: any EventProducer) async throws {
        try await store(release, weights: weights, producer: producer)
        try await announce(release, producer: producer)
    }

    /// Stores and announces with a producer of its own, flushed and closed before it returns
    /// (for one-off publishers: rollbacks, replays, meta-initializations).
    public func publish(_ release: AdapterRelease, weights: [UInt8], on log: any EventLog) async throws {
        let producer = try log.makeProducer()
        do {
            try await publish(release, weights: weights, producer: producer)
            try await producer.flush()
        } catch {
            await producer.close()
            throw error
        }
        await producer.close()
    }
}
