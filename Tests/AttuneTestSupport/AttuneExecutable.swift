import AttuneEventLog
import Foundation

/// The built `attune` executable next to the test bundle (or `$ATTUNE_BIN`).
public func attuneExecutable() throws -> String {
    if let path = ProcessInfo.processInfo.environment["ATTUNE_BIN"] { return path }
    var directory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    for _ in 0..<4 {
        let candidate = directory.appendingPathComponent("attune").path
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        directory.deleteLastPathComponent()
    }
    throw EventLogError(.invalidConfiguration, "attune executable not found near \(CommandLine.arguments[0]); build it (swift build --product attune) or set ATTUNE_BIN")
}
