import ArgumentParser
import Foundation
import Logging

/// How long-running commands write their logs.
enum LogFormat: String, ExpressibleByArgument, CaseIterable {
    /// `2026-12-02T08:00:00.123Z info message key=value …`
    case text
    /// One JSON object per line: time, level, label, message and the metadata.
    case json
}

/// A swift-log handler writing one line per message to standard error (or a file).
struct LineLogHandler: LogHandler {
    let label: String
    let format: LogFormat
    var destination = FileHandle.standardError
    var logLevel: Logger.Level = .info
    var metadata: Logger.Metadata = [:]

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    /// Bootstraps swift-log with this handler for the whole process.
    static func bootstrap(format: LogFormat, level: Logger.Level, destination: FileHandle = .standardError) {
        LoggingSystem.bootstrap { label in
            var handler = LineLogHandler(label: label, format: format, destination: destination)
            handler.logLevel = level
            return handler
        }
    }

    func log(event: LogEvent) {
        let all = metadata.merging(event.metadata ?? [:]) { $1 }
        let time = Date().formatted(.iso8601.year().month().day().time(includingFractionalSeconds: true))
        let line: String
        switch format {
        case .text:
            let pairs = all.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
            line = ([time, event.level.rawValue, "\(event.message)"] + pairs).joined(separator: " ")
        case .json:
            var object: [String: String] = ["time": time, "level": event.level.rawValue, "label": label, "message": "\(event.message)"]
            for (key, value) in all where object[key] == nil { object[key] = "\(value)" }
            line = String(decoding: (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data(), as: UTF8.self)
        }
        // A line that cannot be written (a full disk) is dropped; the service goes on.
        try? destination.write(contentsOf: Data((line + "\n").utf8))
    }
}
