import Foundation
import AttuneTestSupport
import Testing
@testable import AttuneEventLog

func uniqueName(_ prefix: String) -> String {
    "\(prefix)-\(UUID().uuidString.prefix(8).lowercased())"
}

/// Creates a uniquely named topic and returns its name.
func makeTopic(_ log: any EventLog, partitions: Int, configs: [String: String] = [:], prefix: String = "conf") async throws -> String {
    let name = uniqueName(prefix)
    let admin = try log.makeAdmin()
    try await admin.createTopic(TopicSpec(name: name, partitions: partitions, configs: configs))
    try await waitUntil(interval: .milliseconds(50)) { try await admin.describeTopic(name)?.partitions == partitions }
    await admin.close()
    return name
}

/// Polls until `count` records arrived or `timeout` passed (generous: a group join on a loaded
/// machine can take tens of seconds; the wait ends as soon as the records are in).
func collect(_ consumer: any EventConsumer, count: Int, timeout: Duration = .seconds(120)) async throws -> [ConsumerRecord] {
    var records: [ConsumerRecord] = []
    let deadline = ContinuousClock.now + timeout
    while records.count < count && ContinuousClock.now < deadline {
        records += try await consumer.poll(maxRecords: count - records.count, timeout: .milliseconds(200))
    }
    return records
}

/// Records rebalance events in order, for assertions.
final class RebalanceLog: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: [RebalanceEvent] = []
    private var ownedNow: Set<TopicPartition> = []

    var events: [RebalanceEvent] { lock.withLock { stored } }
    var owned: Set<TopicPartition> { lock.withLock { ownedNow } }

    var handler: @Sendable (RebalanceEvent) async -> Void {
        { event in self.record(event) }
    }

    func record(_ event: RebalanceEvent) {
        lock.withLock {
            stored.append(event)
            switch event {
            case .assigned(let tps): ownedNow.formUnion(tps)
            case .revoked(let tps): ownedNow.subtract(tps)
            }
        }
    }
}

/// Polls a consumer until `condition` holds or the timeout passes; returns what it read.
func pollUntil(_ consumer: any EventConsumer, timeout: Duration = .seconds(120), _ condition: () -> Bool) async throws -> [ConsumerRecord] {
    var records: [ConsumerRecord] = []
    let deadline = ContinuousClock.now + timeout
    while !condition() && ContinuousClock.now < deadline {
        records += try await consumer.poll(maxRecords: 500, timeout: .milliseconds(100))
    }
    return records
}

func writeFile(atPath path: String, contents: Data) throws {
    try contents.write(to: URL(fileURLWithPath: path))
}
