import AttuneEventLog
import Foundation
import Synchronization

/// A completion a tenant's adapter served, as feedback refers to it.
public struct ServedCompletion: Codable, Sendable, Equatable {
    /// The completion id the API returned (`cmpl-…`, `chatcmpl-…`).
    public var id: String
    public var tenant: String
    public var user: String
    public var prompt: String
    public var response: String
    /// `name@version` that served it.
    public var model: String
    public var time: Date

    public init(id: String, tenant: String, user: String, prompt: String, response: String, model: String, time: Date = Date()) {
        self.id = id
        self.tenant = tenant
        self.user = user
        self.prompt = prompt
        self.response = response
        self.model = model
        self.time = time
    }
}

/// The recent completions of tenant adapters, so that `POST /v1/feedback` can name one by its
/// id: kept in memory (the newest `capacity`) and appended to a JSON-lines file in the state
/// folder, reloaded on start (entries younger than `retention`).
public final class CompletionLog: Sendable {
    private struct State {
        var byID: [String: ServedCompletion] = [:]
        var order: [String] = []
        var handle: FileHandle?
    }

    public let capacity: Int
    private let state: Mutex<State>

    public init(path: String, capacity: Int = 100_000, retention: TimeInterval = 7 * 86_400) throws {
        self.capacity = capacity
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        var loaded = State()
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        let horizon = Date().addingTimeInterval(-retention)
        for line in (FileManager.default.contents(atPath: path) ?? Data()).split(separator: UInt8(ascii: "\n")) {
            guard let c = try? decoder.decode(ServedCompletion.self, from: Data(line)), c.time >= horizon else { continue }
            if loaded.byID.updateValue(c, forKey: c.id) == nil { loaded.order.append(c.id) }
        }
        if loaded.order.count > capacity {
            for id in loaded.order.prefix(loaded.order.count - capacity) { loaded.byID[id] = nil }
            loaded.order.removeFirst(loaded.order.count - capacity)
        }
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        let kept = try loaded.order.map { String(decoding: try encoder.encode(loaded.byID[$0]!), as: UTF8.self) + "\n" }.joined()
        guard FileManager.default.createFile(atPath: path + ".tmp", contents: Data(kept.utf8), attributes: [.posixPermissions: 0o600]),
              rename(path + ".tmp", path) == 0, let handle = FileHandle(forWritingAtPath: path) else {
            throw EventLogError(.storage, "cannot write the completion log \(path)")
        }
        handle.seekToEndOfFile()
        loaded.handle = handle
        state = Mutex(loaded)
    }

    public func record(_ completion: ServedCompletion) {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        guard let line = try? encoder.encode(completion) else { return }
        state.withLock { state in
            try? state.handle?.write(contentsOf: line + Data("\n".utf8))
            if state.byID.updateValue(completion, forKey: completion.id) == nil { state.order.append(completion.id) }
            if state.order.count > capacity { state.byID[state.order.removeFirst()] = nil }
        }
    }

    public func lookup(_ id: String) -> ServedCompletion? {
        state.withLock { $0.byID[id] }
    }

    public func close() {
        state.withLock { state in
            try? state.handle?.close()
            state.handle = nil
        }
    }
}
