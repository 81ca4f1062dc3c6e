import ArgumentParser
import AttuneGateway
import Foundation
import Logging

/// Where API keys live and how hard callers may push: shared by `serve`, `gateway` and `keys`.
struct AccessOptions: ParsableArguments {
    @Option(name: .customLong("keys-file"), help: "API key file (default: $ATTUNE_KEYS_FILE or .attune/keys.json, under attune up in its --data-dir). Without one, the API is open and must listen on loopback.")
    var keysFile: String?

    @Option(help: "Requests per minute per key when the key sets none (0: unlimited).")
    var rateLimit = 0

    var path: String { path(dataDirectory: ".attune") }

    func path(dataDirectory: String) -> String {
        keysFile ?? ProcessInfo.processInfo.environment["ATTUNE_KEYS_FILE"] ?? dataDirectory + "/keys.json"
    }

    /// Key enforcement when the key file exists (a file given explicitly must), else open
    /// access — refused unless `host` is a loopback address.
    func accessControl(host: String, logger: Logger, dataDirectory: String = ".attune") throws -> AccessControl {
        let path = path(dataDirectory: dataDirectory)
        let explicit = keysFile != nil || ProcessInfo.processInfo.environment["ATTUNE_KEYS_FILE"] != nil
        if FileManager.default.fileExists(atPath: path) || explicit {
            do {
                let store = try KeyStore(path: path)
                logger.info("API keys required", metadata: ["keys-file": "\(path)", "keys": "\(store.keys.filter { $0.revoked == nil }.count)"])
                return AccessControl(keys: store, defaultRateLimit: rateLimit)
            } catch let error as APIError {
                throw ValidationError(error.message)
            }
        }
        guard ["127.0.0.1", "::1", "localhost"].contains(host) else {
            throw ValidationError("no key file at \(path): an open API may only listen on loopback (create a key with `attune keys create`, or pass --host 127.0.0.1)")
        }
        logger.warning("no key file: the API is open to every process on this machine (loopback only); create keys with `attune keys create`",
                       metadata: ["keys-file": "\(path)"])
        return AccessControl(keys: nil, defaultRateLimit: rateLimit)
    }
}

/// Gateway limits and its state folder, shared by `serve` and `gateway`.
struct GatewayOptions: ParsableArguments {
    @Option(name: .customLong("state-dir"), help: "Folder for the gateway's idempotency journal, webhook subscriptions and served completions (default: gateway beside the embedded log's folder, else .attune/gateway; under attune up in its --data-dir).")
    var stateDir: String?

    func stateDirectory(dataDirectory: String = ".attune") -> String { stateDir ?? dataDirectory + "/gateway" }

    @Option(help: "Largest ingestion body in bytes.") var maxIngestBytes = 16 << 20
    @Option(help: "Most records in one ingestion request.") var maxRecords = 10_000
    @Option(help: "Seconds between heartbeats on idle event streams.") var heartbeat = 15
    @Option(help: "Seconds a connection may stay silent while sending a request or between requests.") var idleTimeout = 60
    @Option(help: "PEM certificate chain: serve HTTPS (with --tls-key).") var tlsCert: String?
    @Option(help: "PEM private key of --tls-cert.") var tlsKey: String?
    @Flag(help: "Produce every completion a tenant adapter serves to attune.interactions (attune serve).")
    var logInteractions = false

    func validate() throws {
        guard maxIngestBytes >= 1024 else { throw ValidationError("--max-ingest-bytes must be at least 1024") }
        guard maxRecords >= 1 else { throw ValidationError("--max-records must be at least 1") }
        guard heartbeat >= 1 else { throw ValidationError("--heartbeat must be at least 1 second") }
        guard idleTimeout >= 1 else { throw ValidationError("--idle-timeout must be at least 1 second") }
        guard (tlsCert == nil) == (tlsKey == nil) else { throw ValidationError("--tls-cert and --tls-key go together") }
        for path in [tlsCert, tlsKey].compactMap({ $0 }) where !FileManager.default.isReadableFile(atPath: path) {
            throw ValidationError("cannot read \(path)")
        }
    }

    var tls: TLSFiles? {
        guard let tlsCert, let tlsKey else { return nil }
        return TLSFiles(certificateChain: tlsCert, privateKey: tlsKey)
    }

    func configuration(topicPrefix: String) -> GatewayConfiguration {
        var c = GatewayConfiguration()
        c.topicPrefix = topicPrefix
        c.maxBodyBytes = maxIngestBytes
        c.maxRecords = maxRecords
        c.heartbeat = .seconds(heartbeat)
        c.logInteractions = logInteractions
        return c
    }
}
