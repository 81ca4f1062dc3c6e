import AsyncHTTPClient
import Foundation
import NIOCore

/// The demo's way into Attune: the public HTTP API, called as any client would.
struct APIClient: Sendable {
    let base: String
    let key: String?
    var http: HTTPClient = .shared

    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    /// POSTs `body` and returns the decoded JSON answer; a status other than 200/207 is an error.
    func post(_ path: String, _ body: Data, contentType: String = "application/json",
              headers extra: [(String, String)] = []) async throws -> [String: Any] {
        var request = self.request(path)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: contentType)
        for (name, value) in extra { request.headers.add(name: name, value: value) }
        request.body = .bytes(ByteBuffer(data: body))
        return try await send(request)
    }

    func post(_ path: String, json: [String: Any]) async throws -> [String: Any] {
        try await post(path, try JSONSerialization.data(withJSONObject: json))
    }

    func get(_ path: String) async throws -> [String: Any] {
        try await send(request(path))
    }

    /// The `data` fields (JSON) of a server-sent event stream, as they arrive.
    func events(_ path: String) -> AsyncThrowingStream<Data, any Error> {
        let request = self.request(path)
        return AsyncThrowingStream { continuation in
            let task = Task {
                do {
                    let response = try await http.execute(request, timeout: .hours(24))
                    guard response.status.code == 200 else { throw Failure(description: "GET \(path): HTTP \(response.status.code)") }
                    var pending: [UInt8] = []
                    for try await chunk in response.body {
                        pending += chunk.readableBytesView
                        while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                            let line = String(decoding: pending[..<newline], as: UTF8.self)
                            pending.removeFirst(newline + 1)
                            if line.hasPrefix("data: ") { continuation.yield(Data(line.dropFirst(6).utf8)) }
                        }
                    }
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }

    private func request(_ path: String) -> HTTPClientRequest {
        var request = HTTPClientRequest(url: base + path)
        if let key { request.headers.add(name: "Authorization", value: "Bearer \(key)") }
        return request
    }

    private func send(_ request: HTTPClientRequest) async throws -> [String: Any] {
        let response = try await http.execute(request, timeout: .minutes(5))
        let bytes = try await response.body.collect(upTo: 64 << 20)
        let object = (try? JSONSerialization.jsonObject(with: Data(buffer: bytes))) as? [String: Any] ?? [:]
        guard [200, 207].contains(response.status.code) else {
            let message = (object["error"] as? [String: Any])?["message"] as? String ?? String(buffer: bytes)
            throw Failure(description: "\(request.method) \(request.url): HTTP \(response.status.code): \(message)")
        }
        return object
    }
}
