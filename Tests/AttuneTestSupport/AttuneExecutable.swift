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

/// Runs the `attune` executable with `arguments` (in `folder`, if given, with `environment`
/// added to this process's and the variables in `unset` removed) and returns its exit status,
/// standard output and standard error.
public func runAttune(_ arguments: [String], in folder: URL? = nil, environment: [String: String],
                      unset: [String] = []) throws -> (status: Int32, out: String, err: String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: try attuneExecutable())
    p.arguments = arguments
    if let folder { p.currentDirectoryURL = folder }
    if !environment.isEmpty || !unset.isEmpty {
        p.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }.filter { !unset.contains($0.key) }
    }
    let out = Pipe(), err = Pipe()
    p.standardOutput = out
    p.standardError = err
    try p.run()
    let o = out.fileHandleForReading.readDataToEndOfFile(), e = err.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
}

/// Runs the `attune` executable with `arguments` (in `folder`, if given) in this process's environment.
public func runAttune(_ arguments: [String], in folder: URL? = nil) throws -> (status: Int32, out: String, err: String) {
    try runAttune(arguments, in: folder, environment: [:])
}
