import Hummingbird
import HummingbirdCore
import HummingbirdTLS

/// A PEM certificate chain and private key: with them, a server speaks HTTPS (swift-nio-ssl).
public struct TLSFiles: Sendable {
    public let certificateChain: String
    public let privateKey: String

    public init(certificateChain: String, privateKey: String) {
        self.certificateChain = certificateChain
        self.privateKey = privateKey
    }

    /// HTTP/1.1, over TLS when `tls` is given; a file that cannot be read or parsed is a clear
    /// error. A connection that sends nothing for `idleTimeout` while a request is being read or
    /// between requests is closed (a response in progress, such as an event stream, is not).
    public static func serverBuilder(_ tls: TLSFiles?, idleTimeout: Duration? = nil) throws -> HTTPServerBuilder {
        let channel: HTTP1Channel.Configuration = idleTimeout.map { .init(idleTimeout: .nanoseconds($0.nanosecondCount)) } ?? .init()
        let http1 = HTTPServerBuilder.http1(configuration: channel)
        guard let tls else { return http1 }
        let chain: [NIOSSLCertificate]
        let key: NIOSSLPrivateKey
        do {
            chain = try NIOSSLCertificate.fromPEMFile(tls.certificateChain)
        } catch {
            throw APIError(.internalServerError, "cannot read the TLS certificate chain \(tls.certificateChain): \(error)", code: "tls_certificate")
        }
        do {
            key = try NIOSSLPrivateKey(file: tls.privateKey, format: .pem)
        } catch {
            throw APIError(.internalServerError, "cannot read the TLS private key \(tls.privateKey): \(error)", code: "tls_key")
        }
        guard !chain.isEmpty else { throw APIError(.internalServerError, "no certificate in \(tls.certificateChain)", code: "tls_certificate") }
        return try .tls(http1, tlsConfiguration: .makeServerConfiguration(certificateChain: chain.map { .certificate($0) },
                                                                            privateKey: .privateKey(key)))
    }
}
