import AttuneModel
import AttuneTestSupport
import Foundation

/// `attune up` on a tiny random model in a temporary folder, for tests that drive the whole
/// system over HTTP (the publication gate is opened wide: a random model's losses say nothing). Stopped with SIGKILL if the test did not stop it.
final class RunningUp {
    let folder: URL
    let dataDirectory: String
    let process: Process
    private(set) var port = 0

    /// `dataDirectory` defaults to a folder inside the test's own; `errors` receives standard error.
    init(_ name: String, extra: [String] = [], dataDirectory: String? = nil, errors: FileHandle? = nil) throws {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("attune-\(name)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let model = folder.appendingPathComponent("tiny.gguf").path
        try RandomModel.write(tiny, to: model, vocabulary: testVocabulary)
        self.dataDirectory = dataDirectory ?? folder.appendingPathComponent("data").path
        let (process, banner) = try startAttune(["up", "--model", model, "--data-dir", self.dataDirectory, "--port", "0", "--steps", "1",
                                                 "--batch-size", "1", "--seq-len", "16", "--batch-seconds", "1", "--domain-wait", "30",
                                                 "--gate-tolerance", "100", "--status-interval", "60"] + extra, until: "/v1 ", errors: errors)
        self.process = process
        guard let match = banner.firstMatch(of: #/127\.0\.0\.1:(\d+)\/v1 /#), let port = Int(match.output.1) else {
            throw LoopbackHTTPError("attune up printed no address: \(banner)")
        }
        self.port = port
    }

    deinit {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        try? FileManager.default.removeItem(at: folder)
    }

    /// Posts NDJSON records; the answer must be 200.
    func post(_ path: String, _ records: [String], headers: [String: String] = [:]) async throws -> HTTPAnswer {
        let answer = try await LoopbackHTTP.request(port: port, "POST", path, body: Data(records.joined(separator: "\n").utf8),
                                                    headers: ["Content-Type": "application/x-ndjson"].merging(headers) { $1 })
        guard answer.status == 200 else { throw LoopbackHTTPError("POST \(path): \(answer.status) \(answer.text)") }
        return answer
    }

    func get(_ path: String) async throws -> HTTPAnswer { try await LoopbackHTTP.request(port: port, "GET", path) }

    /// SIGTERM, then the exit status.
    func stop() -> Int32 {
        kill(process.processIdentifier, SIGTERM)
        process.waitUntilExit()
        return process.terminationStatus
    }
}

/// Starts the `attune` executable and reads its standard output until `marker` appears (or
/// the output ends); returns the running process and what it printed so far.
func startAttune(_ arguments: [String], in folder: URL? = nil, until marker: String, errors: FileHandle? = nil) throws -> (Process, String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: try attuneExecutable())
    process.arguments = arguments
    if let folder { process.currentDirectoryURL = folder }
    let out = Pipe()
    process.standardOutput = out
    process.standardError = errors ?? FileHandle.nullDevice
    try process.run()
    var seen = ""
    while !seen.contains(marker) {
        let chunk = out.fileHandleForReading.availableData
        if chunk.isEmpty { break }
        seen += String(decoding: chunk, as: UTF8.self)
    }
    return (process, seen)
}
