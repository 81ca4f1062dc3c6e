import AttuneEventLog
import Foundation
import Testing

/// The transports a test runs against: the embedded log always, Kafka when
/// `ATTUNE_KAFKA_BOOTSTRAP` names a broker (or `ATTUNE_REQUIRE_KAFKA=1` demands one).
public enum TestTransport: String, CaseIterable, CustomTestStringConvertible, Sendable {
    case embedded, kafka

    public static var bootstrap: String? {
        ProcessInfo.processInfo.environment["ATTUNE_KAFKA_BOOTSTRAP"].flatMap { $0.isEmpty ? nil : $0 }
    }

    public static var kafkaRequired: Bool { ProcessInfo.processInfo.environment["ATTUNE_REQUIRE_KAFKA"] == "1" }

    public static var selected: [TestTransport] {
        bootstrap != nil || kafkaRequired ? [.embedded, .kafka] : [.embedded]
    }

    public var testDescription: String { rawValue }

    /// A fresh log: a new directory for the embedded one, the configured broker for Kafka.
    public func makeLog(directory: String = TestTransport.temporaryDirectory()) throws -> any EventLog {
        switch self {
        case .embedded:
            return EmbeddedEventLog(directory: directory)
        case .kafka:
            guard let bootstrap = Self.bootstrap else {
                throw EventLogError(.invalidConfiguration, "ATTUNE_REQUIRE_KAFKA=1 but ATTUNE_KAFKA_BOOTSTRAP is unset")
            }
            return KafkaEventLog(KafkaConfiguration(bootstrapServers: [bootstrap]))
        }
    }

    public static func temporaryDirectory() -> String {
        let path = NSTemporaryDirectory() + "attune-eventlog-\(UUID().uuidString)"
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }
}
