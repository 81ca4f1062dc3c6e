import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The Kafka-protocol test broker (noida-db from PyPI) on a fixed port and data folder, so it
/// can be killed and started again with its topics.
public final class RestartableBroker: @unchecked Sendable {
    public let port: Int
    public let data: String
    private var process: Process?

    public init() throws {
        port = try LoopbackHTTP.freePort()
        data = FileManager.default.temporaryDirectory.appendingPathComponent("noida-\(UUID().uuidString)").path
    }

    public var bootstrap: String { "127.0.0.1:\(port)" }

    public func start() async throws {
        let find = Process()
        find.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        find.arguments = ["python3", "-c", "import noida_db, os; print(os.path.join(os.path.dirname(noida_db.__file__), 'noida-db'))"]
        let out = Pipe()
        find.standardOutput = out
        try find.run()
        let binary = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        find.waitUntilExit()
        let p = Process()
        p.executableURL = URL(fileURLWithPath: binary)
        p.arguments = ["start", "--only", "kafka", "--host", "127.0.0.1", "--kafka-port", "\(port)", "--data-dir", data]
        let log = data + ".log"
        if !FileManager.default.fileExists(atPath: log) { FileManager.default.createFile(atPath: log, contents: nil) }
        let output = FileHandle(forWritingAtPath: log)
        output?.seekToEndOfFile()
        p.standardOutput = output ?? FileHandle.nullDevice
        p.standardError = output ?? FileHandle.nullDevice
        try p.run()
        process = p
        let port = self.port
        guard await waitUntil(.seconds(60), { LoopbackHTTP.canConnect(port: port) }) else {
            throw LoopbackHTTPError("the broker did not listen on \(port)")
        }
    }

    /// SIGKILL, as in a crash, once the broker has saved what it acknowledged. noida-db writes
    /// its topics to `kafka.json` on a one-second tick when they changed, and a crash loses the
    /// records acknowledged since the last save (measured: gone when killed 0.5 s after their
    /// acknowledgement, kept after 1 s), which a Kafka broker's page cache and replicas keep.
    /// So the kill waits (at most 30 s) until the file was written after this call, or has not
    /// changed for 3 s (nothing unsaved). A broker that has not saved yet has everything unsaved,
    /// its topics too: the kill waits for its first save.
    public func kill() {
        guard let p = process else { return }
        let snapshot = (data as NSString).appendingPathComponent("kafka.json")
        let called = Date()
        func saved() -> Date? { (try? FileManager.default.attributesOfItem(atPath: snapshot))?[.modificationDate] as? Date }
        while Date().timeIntervalSince(called) < 30 {
            if let at = saved(), at > called || Date().timeIntervalSince(at) > 3 { break }
            usleep(10_000)
        }
        Glibc.kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        process = nil
    }
}
