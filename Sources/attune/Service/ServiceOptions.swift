import ArgumentParser
import AttuneEventLog
import Foundation
import Logging

/// What every long-running command shares: its logs and the topics it reads and writes.
struct ServiceOptions: ParsableArguments {
    @Option(help: "Prefix of every topic name but the DLQ's (e.g. staging.), as given to topics apply.")
    var topicPrefix = ""
    @Option(name: .customLong("topics-dir"), help: "Directory of topic definitions and schemas (default: the contracts built into attune).")
    var topicsDirectory: String?
    @OptionGroup var logging: LoggingOptions

    /// Sends swift-log output to standard error (or `destination`) in the chosen format and level.
    func bootstrapLogging(to destination: FileHandle = .standardError) {
        logging.bootstrap(to: destination)
    }

    /// The topic contracts (built in, or `--topics-dir`, which must exist).
    func catalog() throws -> TopicCatalog {
        try TopicCatalog.load(directory: topicsDirectory, namePrefix: topicPrefix)
    }
}

/// How a long-running command logs: level and line format.
struct LoggingOptions: ParsableArguments {
    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.") var logLevel = "info"
    @Option(help: "Log lines as text or json.") var logFormat: LogFormat = .text

    func validate() throws {
        guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("--log-level \(logLevel) is not a level") }
    }

    /// Sends swift-log output to standard error (or `destination`) in the chosen format and level.
    func bootstrap(to destination: FileHandle = .standardError) {
        LineLogHandler.bootstrap(format: logFormat, level: Logger.Level(rawValue: logLevel) ?? .info, destination: destination)
    }
}
