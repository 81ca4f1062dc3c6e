import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// An HTTP response as a test reads it.
public struct HTTPAnswer: Sendable {
    public let status: Int
    /// Header names lowercased.
    public let headers: [String: String]
    public let body: Data
    public var json: [String: Any] { (try? JSONSerialization.jsonObject(with: body)) as? [String: Any] ?? [:] }
    public var text: String { String(decoding: body, as: UTF8.self) }
}

/// A failure of the test client.
public struct LoopbackHTTPError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// A minimal blocking HTTP/1.1 client over a loopback TCP socket, for tests: one request per
/// connection (`Connection: close`), the response read to EOF, chunked bodies decoded.
public enum LoopbackHTTP {
    /// One exchange, run on its own thread so the caller's executor is not blocked.
    public static func request(port: Int, _ method: String, _ path: String, body: Data? = nil,
                               headers: [String: String] = [:]) async throws -> HTTPAnswer {
        try await withCheckedThrowingContinuation { continuation in
            Thread {
                continuation.resume(with: Result { try exchange(port: port, method: method, path: path, body: body, headers: headers) })
            }.start()
        }
    }

    /// Opens a server-sent-event stream and reads it until `until` holds for the text received
    /// so far or `timeout` passes, then drops the connection (as a client that goes away does).
    /// Returns the status line's code and the raw body text.
    public static func readStream(port: Int, _ path: String, headers: [String: String] = [:], timeout: Duration = .seconds(60),
                                  until: @escaping @Sendable (String) -> Bool) async throws -> (status: Int, text: String) {
        try await withCheckedThrowingContinuation { continuation in
            Thread {
                continuation.resume(with: Result {
                    let fd = try connectLoopback(port: port)
                    defer { close(fd) }
                    var tv = timeval(tv_sec: 0, tv_usec: 200_000)
                    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
                    var request = "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nAccept: text/event-stream\r\n"
                    for (name, value) in headers { request += "\(name): \(value)\r\n" }
                    request += "\r\n"
                    try sendAll(fd, Array(request.utf8))
                    var received: [UInt8] = []
                    var buffer = [UInt8](repeating: 0, count: 65536)
                    let deadline = ContinuousClock.now + timeout
                    while ContinuousClock.now < deadline {
                        let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                        if n == 0 { break }
                        if n > 0 { received += buffer[0..<n] }
                        if let answer = try? parse(received), until(answer.text) { return (answer.status, answer.text) }
                    }
                    let answer = try parse(received)
                    return (answer.status, answer.text)
                })
            }.start()
        }
    }

    /// Sends `partial` (an unfinished request) and waits up to `timeout` for the server to close
    /// the connection; true if it did.
    public static func serverCloses(port: Int, after partial: String, timeout: Duration) async throws -> Bool {
        try await withCheckedThrowingContinuation { continuation in
            Thread {
                continuation.resume(with: Result {
                    let fd = try connectLoopback(port: port)
                    defer { close(fd) }
                    var tv = timeval(tv_sec: 0, tv_usec: 200_000)
                    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
                    try sendAll(fd, Array(partial.utf8))
                    var buffer = [UInt8](repeating: 0, count: 4096)
                    let deadline = ContinuousClock.now + timeout
                    while ContinuousClock.now < deadline {
                        let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                        if n == 0 { return true }
                    }
                    return false
                })
            }.start()
        }
    }

    /// Whether something accepts connections on 127.0.0.1:`port`.
    public static func canConnect(port: Int) -> Bool {
        guard let fd = try? connectLoopback(port: port) else { return false }
        close(fd)
        return true
    }

    static func connectLoopback(port: Int) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw LoopbackHTTPError("socket() failed") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else {
            close(fd)
            throw LoopbackHTTPError("connect to 127.0.0.1:\(port) failed")
        }
        return fd
    }

    static func sendAll(_ fd: Int32, _ bytes: [UInt8]) throws {
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { throw LoopbackHTTPError("send failed") }
            sent += n
        }
    }

    /// A port that was free a moment ago on 127.0.0.1.
    public static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        guard ok else { throw LoopbackHTTPError("no free port") }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    static func exchange(port: Int, method: String, path: String, body: Data?, headers: [String: String]) throws -> HTTPAnswer {
        let fd = try connectLoopback(port: port)
        defer { close(fd) }
        var request = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nConnection: close\r\n"
        if let body {
            if headers.keys.first(where: { $0.lowercased() == "content-type" }) == nil { request += "Content-Type: application/json\r\n" }
            request += "Content-Length: \(body.count)\r\n"
        }
        for (name, value) in headers { request += "\(name): \(value)\r\n" }
        request += "\r\n"
        var bytes = Array(request.utf8)
        if let body { bytes += Array(body) }
        try? sendAll(fd, bytes)
        var response: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            response += buffer[0..<n]
        }
        return try parse(response)
    }

    static func parse(_ response: [UInt8]) throws -> HTTPAnswer {
        let separator: [UInt8] = [13, 10, 13, 10]
        guard let end = (0..<max(0, response.count - 3)).first(where: { Array(response[$0..<$0 + 4]) == separator }) else {
            throw LoopbackHTTPError("no HTTP header in \(response.count) bytes")
        }
        let lines = String(decoding: response[0..<end], as: UTF8.self).components(separatedBy: "\r\n")
        guard let statusLine = lines.first, statusLine.split(separator: " ").count >= 2, let status = Int(statusLine.split(separator: " ")[1]) else {
            throw LoopbackHTTPError("bad status line")
        }
        var headers: [String: String] = [:]
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        var body = Array(response[(end + 4)...])
        if headers["transfer-encoding"]?.lowercased() == "chunked" { body = dechunk(body) }
        return HTTPAnswer(status: status, headers: headers, body: Data(body))
    }

    private static func dechunk(_ data: [UInt8]) -> [UInt8] {
        var out: [UInt8] = [], i = 0
        while i < data.count {
            guard let lineEnd = (i..<max(i, data.count - 1)).first(where: { data[$0] == 13 && data[$0 + 1] == 10 }),
                  let size = Int(String(decoding: data[i..<lineEnd], as: UTF8.self).split(separator: ";")[0]
                      .trimmingCharacters(in: .whitespaces), radix: 16), size > 0 else { break }
            let start = lineEnd + 2
            out += data[start..<min(data.count, start + size)]
            i = start + size + 2
        }
        return out
    }
}
