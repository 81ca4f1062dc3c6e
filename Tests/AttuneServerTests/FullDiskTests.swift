import AttuneTestSupport
import Foundation
import Testing

/// Runs one at a time with the other whole-system tests (they each start processes that train and serve).
extension ServerTests {
    /// A full disk under the data folder: `attune up` stops with a clear error and a non-zero
    /// exit instead of retrying forever, the gateway refuses what it cannot store (507), no
    /// half-written version or PEFT folder is left, and once space is freed a restart trains what
    /// was acknowledged into exactly one version. The disk is a small tmpfs (needs root).
    @Suite struct FullDiskTests {
        @Test(.enabled(if: ScratchDisk.available || FleetConfigurationTests.toolsRequired))
        func aFullDiskIsAClearErrorAndLosesNothing() async throws {
            let disk = try ScratchDisk(megabytes: 48)
            let data = disk.path + "/data"
            let errors = disk.outside.appendingPathComponent("stderr")
            _ = FileManager.default.createFile(atPath: errors.path, contents: nil)
            let rank = ["--rank", "64"]
            var up: RunningUp? = try RunningUp("full-disk", extra: rank, dataDirectory: data, errors: try FileHandle(forWritingTo: errors))
            let port = up!.port
            #expect(await waitUntil(.seconds(60)) { (try? await up!.get("/readyz").status) == 200 })

            var expected: [String: Set<String>] = [:]
            func record(_ answer: HTTPAnswer, adapter: String) {
                for result in answer.json["results"] as? [[String: Any]] ?? [] {
                    if let partition = result["partition"] as? Int, let offset = result["offset"] as? Int {
                        expected[adapter, default: []].insert("attune.interactions[\(partition)]@\(offset)")
                    }
                }
            }
            func interaction(_ id: String) -> String {
                #"{"id":"\#(id)","tenant":"t1","user":"u","time":"2026-12-01T00:00:00Z","prompt":"the cat","response":"sat on the mat"}"#
            }
            record(try await up!.post("/v1/interactions", [interaction("first")]), adapter: "tenant/t1")
            #expect(try await waitUntil(.seconds(300), interval: .seconds(1)) {
                try await FaultToleranceTests.uncovered(expected, port: port).isEmpty
            }, "the first interaction was trained while the disk had room")

            // No room at all: the gateway says so, and nothing is acknowledged.
            try disk.fill(leaving: 0)
            let refused = try await LoopbackHTTP.request(port: port, "POST", "/v1/interactions", body: Data(interaction("refused").utf8),
                                                          headers: ["Content-Type": "application/x-ndjson"])
            #expect(refused.status == 507, "\(refused.status) \(refused.text)")
            #expect(refused.text.contains("log_disk_full"), "\(refused.text)")

            // Room for a few records, not for a version of a rank-64 adapter.
            try disk.fill(leaving: 96 * 1024)
            record(try await up!.post("/v1/interactions", [interaction("second")]), adapter: "tenant/t1")
            #expect(await waitUntil(.seconds(300), interval: .seconds(1)) { !up!.process.isRunning }, "attune up kept running on a full disk")
            up!.process.waitUntilExit()
            #expect(up!.process.terminationStatus != 0)
            let said = (try? String(contentsOf: errors, encoding: .utf8)) ?? ""
            #expect(said.contains("is full"), "\(said)")

            // A PEFT folder pulled onto the full disk is refused whole.
            let pulled = try runAttune(["adapter", "pull", "tenant/t1", "--out", disk.path + "/pulled", "--log-dir", data + "/eventlog"])
            #expect(pulled.status != 0)
            #expect(pulled.err.contains("cannot write \(disk.path)/pulled") && pulled.err.contains("space"), "\(pulled.err)")
            #expect(try FileManager.default.contentsOfDirectory(atPath: disk.path).sorted() == ["data", "filler"])

            // Space freed: the same folder resumes and trains the acknowledged record, once.
            try disk.free()
            up = nil
            up = try RunningUp("full-disk-again", extra: rank, dataDirectory: data)
            let again = up!.port
            try await waitUntil(.seconds(300), interval: .seconds(1)) { try await FaultToleranceTests.uncovered(expected, port: again).isEmpty }
            let releases = try await FaultToleranceTests.announced(port: again).filter { $0.adapter == "tenant/t1" }
            for position in expected["tenant/t1"] ?? [] {
                #expect(releases.filter { $0.covers.contains(position) }.count == 1, "\(position)")
            }
            #expect(releases.map(\.version).sorted() == Array(1...releases.count), "versions \(releases.map(\.version))")
            let pulledNow = try runAttune(["adapter", "pull", "tenant/t1", "--out", disk.outside.appendingPathComponent("pulled").path,
                                           "--log-dir", data + "/eventlog"])
            #expect(pulledNow.status == 0, "\(pulledNow.err)")
            #expect(up!.stop() == 0)
        }
    }
}

/// A small tmpfs mounted for one test (root only), with a folder outside it for what must
/// survive; unmounted when released.
final class ScratchDisk {
    let path: String
    let outside: URL

    /// Whether this process may mount a tmpfs (root, and mounts allowed in its container).
    static let available: Bool = {
        guard geteuid() == 0, let disk = try? ScratchDisk(megabytes: 1) else { return false }
        _ = disk
        return true
    }()

    init(megabytes: Int) throws {
        outside = FileManager.default.temporaryDirectory.appendingPathComponent("attune-disk-\(UUID().uuidString)")
        path = outside.appendingPathComponent("mnt").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        let status = try Self.run("/bin/mount", ["-t", "tmpfs", "-o", "size=\(megabytes)m", "tmpfs", path])
        guard status == 0 else {
            try? FileManager.default.removeItem(at: outside)
            throw LoopbackHTTPError("mount -t tmpfs failed (\(status)): this test needs root and a container that allows mounts")
        }
    }

    deinit {
        _ = try? Self.run("/bin/umount", ["-l", path])
        try? FileManager.default.removeItem(at: outside)
    }

    /// Writes a file that leaves `bytes` free on the disk.
    func fill(leaving bytes: Int) throws {
        try? free()
        var stats = statvfs()
        guard statvfs(path, &stats) == 0 else { throw LoopbackHTTPError("statvfs \(path) failed") }
        let free = Int(stats.f_bavail) * Int(stats.f_frsize)
        try Data(count: max(0, free - bytes)).write(to: URL(fileURLWithPath: path + "/filler"))
    }

    func free() throws { try FileManager.default.removeItem(atPath: path + "/filler") }

    private static func run(_ tool: String, _ arguments: [String]) throws -> Int32 {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: tool)
        p.arguments = arguments
        p.standardError = FileHandle.nullDevice
        try p.run()
        p.waitUntilExit()
        return p.terminationStatus
    }
}
