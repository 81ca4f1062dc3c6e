import ArgumentParser
import AttuneEventLog
import Foundation

/// Options every event-log command shares: which transport and how to reach it.
struct TransportOptions: ParsableArguments {
    enum Transport: String, ExpressibleByArgument, CaseIterable {
        case embedded, kafka
    }

    @Option(help: "embedded (SQLite, no server) or kafka.")
    var transport: Transport = .embedded

    @Option(help: "Kafka bootstrap servers (default: $ATTUNE_KAFKA_BOOTSTRAP or localhost:9092).")
    var bootstrap: String?

    @Option(name: .customLong("log-dir"), help: "Directory of the embedded log (default: $ATTUNE_LOG_DIR or .attune/eventlog, under attune up its --data-dir).")
    var logDirectory: String?

    @Option(name: .customShort("X"), help: ArgumentHelp("librdkafka property passed through, e.g. -X security.protocol=SASL_SSL.", valueName: "key=value"))
    var properties: [String] = []

    func validate() throws {
        _ = try parsedProperties()
    }

    func parsedProperties() throws -> [String: String] {
        var result: [String: String] = [:]
        for property in properties {
            guard let eq = property.firstIndex(of: "="), eq != property.startIndex else {
                throw ValidationError("-X expects key=value, got \"\(property)\"")
            }
            result[String(property[..<eq])] = String(property[property.index(after: eq)...])
        }
        return result
    }

    /// The event log; the embedded one lives in `--log-dir`, else `$ATTUNE_LOG_DIR`, else `eventlog` in the data folder.
    func makeLog(dataDirectory: String = ".attune") throws -> any EventLog {
        switch transport {
        case .embedded:
            return EmbeddedEventLog(directory: embeddedDirectory(dataDirectory))
        case .kafka:
            let servers = bootstrap ?? ProcessInfo.processInfo.environment["ATTUNE_KAFKA_BOOTSTRAP"] ?? "localhost:9092"
            return KafkaEventLog(KafkaConfiguration(bootstrapServers: servers.split(separator: ",").map(String.init),
                                                    properties: try parsedProperties()))
        }
    }

    /// The event log for a command that reads what is there: an embedded log must exist
    /// already, so a mistyped `--log-dir` is an error rather than a new, empty log.
    func existingLog(dataDirectory: String = ".attune") throws -> any EventLog {
        let directory = embeddedDirectory(dataDirectory)
        if transport == .embedded, !FileManager.default.fileExists(atPath: directory + "/eventlog.sqlite") {
            throw ValidationError("no event log in \(directory): pass the --log-dir of an existing one, or start one with "
                                  + "`attune up` or `attune topics apply --log-dir \(directory)`")
        }
        return try makeLog(dataDirectory: dataDirectory)
    }

    /// The folder a process keeps its state in beside the log: the parent of a chosen embedded
    /// log folder (so `--log-dir D/eventlog` keeps state in D, as under `attune up --data-dir D`),
    /// else `fallback`.
    func stateFolder(fallback: String = ".attune") -> String {
        guard transport == .embedded, let chosen = chosenLogDirectory else { return fallback }
        return URL(fileURLWithPath: chosen).standardizedFileURL.deletingLastPathComponent().path
    }

    /// The embedded log's folder when one was named: `--log-dir`, else `$ATTUNE_LOG_DIR`.
    private var chosenLogDirectory: String? { logDirectory ?? ProcessInfo.processInfo.environment["ATTUNE_LOG_DIR"] }

    private func embeddedDirectory(_ dataDirectory: String) -> String {
        chosenLogDirectory ?? dataDirectory + "/eventlog"
    }
}

/// Options for schema validation against the topic catalog.
struct ValidationOptions: ParsableArguments {
    @Option(name: .customLong("topics-dir"), help: "Directory of topic definitions and schemas (default: the contracts built into attune).")
    var topicsDirectory: String?

    @Option(help: "Prefix of every topic name but the DLQ's (e.g. staging.), as given to topics apply.")
    var topicPrefix = ""

    @Flag(name: .customLong("no-validate"), help: "Skip schema validation.")
    var skipValidation = false

    @Option(help: "What to do with a record that fails its schema: reject or dlq.")
    var invalid: InvalidRecordPolicy = .reject

    /// The catalog (built in, or `--topics-dir`, which must exist), or nil when validation is off.
    func catalog() throws -> TopicCatalog? {
        skipValidation ? nil : try TopicCatalog.load(directory: topicsDirectory, namePrefix: topicPrefix)
    }
}

extension InvalidRecordPolicy: ExpressibleByArgument {}

/// Turns event-log errors into a one-line message on standard error and exit code 1.
func reportingErrors<T>(_ body: () async throws -> T) async throws -> T {
    do {
        return try await body()
    } catch let error as EventLogError {
        FileHandle.standardError.write(Data("attune: \(error.detail)\n".utf8))
        throw ExitCode.failure
    }
}

/// Writes a line to standard output immediately (consumers of `attune consume` read it live).
func emit(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}

/// Parses `name=value` (text) headers; `name:hex=00ff` gives a binary value, `name` alone a null one.
func parseHeader(_ text: String) throws -> EventHeader {
    guard let eq = text.firstIndex(of: "=") else { return EventHeader(text, nil) }
    let name = String(text[..<eq]), value = String(text[text.index(after: eq)...])
    if name.hasSuffix(":hex") {
        guard let bytes = hexBytes(value) else { throw ValidationError("header \(name): \"\(value)\" is not hex") }
        return EventHeader(String(name.dropLast(4)), bytes)
    }
    return EventHeader(name, value)
}

func hexBytes(_ text: String) -> [UInt8]? {
    let digits = Array(text.utf8)
    guard digits.count % 2 == 0 else { return nil }
    var bytes: [UInt8] = []
    for i in stride(from: 0, to: digits.count, by: 2) {
        guard let byte = UInt8(String(decoding: digits[i..<i + 2], as: UTF8.self), radix: 16) else { return nil }
        bytes.append(byte)
    }
    return bytes
}
