import ArgumentParser
import AttuneGateway
import Foundation

/// `attune keys`: API keys bound to tenants and roles.
struct KeysCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keys",
        abstract: "Create, list and revoke API keys (stored hashed; a secret is shown once, at creation).",
        subcommands: [Create.self, List.self, Revoke.self])

    struct Create: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a key; its secret is printed once on standard output.",
            discussion: "Example: attune keys create --name acme-app --tenant acme --role ingest --role infer --role subscribe")

        @OptionGroup var access: AccessOptions
        @Option(help: "A name to recognise the key by.") var name: String
        @Option(help: "A tenant the key acts for (repeatable); * for every tenant.") var tenant: [String] = []
        @Option(help: "A role (repeatable): ingest, infer, subscribe, admin.") var role: [Role] = []
        @Option(name: .customLong("key-rate-limit"), help: "Requests per minute for this key (default: the server's --rate-limit).")
        var keyRateLimit: Int?

        func validate() throws {
            if tenant.isEmpty && !role.contains(.admin) { throw ValidationError("give at least one --tenant (or * for all)") }
            if role.isEmpty { throw ValidationError("give at least one --role") }
            if let keyRateLimit, keyRateLimit < 0 { throw ValidationError("--key-rate-limit must be ≥ 0") }
        }

        func run() throws {
            let store = try open(access.path, create: true)
            let (key, secret) = try keysCall { try store.create(name: name, tenants: tenant.isEmpty ? ["*"] : tenant, roles: role,
                                                               rateLimit: keyRateLimit) }
            print(secret)
            FileHandle.standardError.write(Data("""
                created \(key.id) (\(key.name)): tenants \(key.tenants.list.joined(separator: ",")), roles \(key.roles.map(\.rawValue).joined(separator: ","))
                the secret above is shown only now; \(access.path) keeps its SHA-256

                """.utf8))
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List keys (never their secrets).")

        @OptionGroup var access: AccessOptions
        @Flag(help: "One JSON object per key.") var json = false

        func run() throws {
            let store = try open(access.path, create: false)
            let formatter = ISO8601DateFormatter()
            for key in store.keys {
                if json {
                    let encoder = JSONEncoder()
                    encoder.dateEncodingStrategy = .iso8601
                    encoder.outputFormatting = .sortedKeys
                    struct Shown: Encodable {
                        let id, name: String
                        let tenants: [String]
                        let roles: [Role]
                        let rateLimit: Int?
                        let created: Date
                        let revoked: Date?
                    }
                    let shown = Shown(id: key.id, name: key.name, tenants: key.tenants.list, roles: key.roles, rateLimit: key.rateLimit,
                                      created: key.created, revoked: key.revoked)
                    print(String(decoding: try encoder.encode(shown), as: UTF8.self))
                } else {
                    let state = key.revoked.map { "revoked " + formatter.string(from: $0) } ?? "active"
                    print([key.id, key.name, "tenants=" + key.tenants.list.joined(separator: ","),
                           "roles=" + key.roles.map(\.rawValue).joined(separator: ","),
                           "rate=" + (key.rateLimit.map { "\($0)/min" } ?? "default"), "created " + formatter.string(from: key.created), state]
                        .joined(separator: "  "))
                }
            }
        }
    }

    struct Revoke: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Revoke a key by id; servers refuse it within a second.")

        @OptionGroup var access: AccessOptions
        @Argument(help: "The key id (key_…), as `attune keys list` shows it.") var id: String

        func run() throws {
            let key = try keysCall { try open(access.path, create: false).revoke(id: id) }
            print("revoked \(key.id) (\(key.name))")
        }
    }
}

private func open(_ path: String, create: Bool) throws -> KeyStore {
    try keysCall { try KeyStore(path: path, create: create) }
}

private func keysCall<T>(_ body: () throws -> T) throws -> T {
    do {
        return try body()
    } catch let error as APIError {
        FileHandle.standardError.write(Data("attune: \(error.message)\n".utf8))
        throw ExitCode.failure
    }
}

extension Role: ExpressibleByArgument {}
