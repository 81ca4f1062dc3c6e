import ArgumentParser
import NIOCore
#if canImport(Glibc)
import Glibc
#endif

/// Runs `body` (a service group whose HTTP server listens on `host:port`) and turns the socket
/// layer's "address already in use" into a message that names the address and what to do.
func listening(on host: String, port: Int, _ body: () async throws -> Void) async throws {
    do {
        try await body()
    } catch let error as IOError where error.errnoCode == EADDRINUSE {
        throw ValidationError("cannot listen on \(host):\(port): the address is in use (is another server running there? "
                              + "choose another --port, or 0 for a free one)")
    }
}
