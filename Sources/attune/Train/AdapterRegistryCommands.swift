import ArgumentParser
import AttuneEventLog
import AttuneRegistry
import AttuneTraining
import Foundation

/// Options of the commands that read the published adapters.
struct RegistryOptions: ParsableArguments {
    @OptionGroup var transport: TransportOptions
    @Option(help: "Prefix of every topic name (as given to topics apply).") var topicPrefix = ""

    /// The registry, read to the end of its topics.
    func open() async throws -> AdapterRegistry {
        let registry = try await AdapterRegistry(log: try transport.existingLog(), adaptersTopic: topicPrefix + "attune.adapters",
                                                 eventsTopic: topicPrefix + "attune.adapter-events",
                                                 report: { FileHandle.standardError.write(Data("attune: \($0)\n".utf8)) })
        try await registry.catchUp()
        return registry
    }
}

extension AdapterCommand {
    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Every published adapter: latest version, parent, domain, sha256, metrics.")
        @OptionGroup var registryOptions: RegistryOptions
        @Flag(help: "One JSON object per adapter (its latest release record).") var json = false

        func run() async throws {
            try await reportingErrors {
                let registry = try await registryOptions.open()
                if await registry.names.isEmpty {
                    FileHandle.standardError.write(Data("attune: no adapter is published yet (attune up, or attune train-worker, publishes them)\n".utf8))
                }
                for name in await registry.names {
                    let history = await registry.history(name)
                    guard let latest = await registry.latest(name) ?? history.last?.release else { continue }
                    if json {
                        emit(String(decoding: try JSONEncoder.sorted.encode(latest), as: UTF8.self))
                        continue
                    }
                    let metrics = latest.metrics.sorted { $0.key < $1.key }.map { String(format: "%@=%.4g", $0.key, $0.value) }
                    emit([latest.id, "sha256:\(latest.sha256.prefix(12))", "parent:\(latest.parent ?? "-")",
                          "domain:\(latest.domain ?? "-")", "versions:\(history.count)", metrics.joined(separator: " ")]
                        .joined(separator: "  "))
                }
                await registry.close()
            }
        }
    }

    struct History: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Every version of one adapter, oldest first.")
        @OptionGroup var registryOptions: RegistryOptions
        @Argument(help: "Adapter name, e.g. tenant/acme.") var name: String
        @Flag(help: "One JSON release record per version.") var json = false

        func run() async throws {
            guard let adapter = AdapterName(parsing: name) else { throw ValidationError("\(name): expected domain/<id> or tenant/<id>") }
            try await reportingErrors {
                let registry = try await registryOptions.open()
                let history = await registry.history(adapter)
                await registry.close()
                guard !history.isEmpty else {
                    FileHandle.standardError.write(Data("attune: no adapter named \(adapter)\n".utf8))
                    throw ExitCode.failure
                }
                for v in history {
                    if json {
                        emit(String(decoding: try JSONEncoder.sorted.encode(v.release), as: UTF8.self))
                        continue
                    }
                    let state = v.location == nil ? "compacted" : v.announced ? "live" : "unannounced"
                    let inputs = v.release.covers.offsetCount
                    emit([v.release.id, "sha256:\(v.release.sha256.prefix(12))", "parent:\(v.release.parent ?? "-")",
                          "domain:\(v.release.domain ?? "-")", "inputs:\(inputs)", state].joined(separator: "  "))
                }
            }
        }
    }

    struct Pull: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write a published version as a PEFT folder (adapter_config.json + adapter_model.safetensors).",
            discussion: "The folder loads with --adapter, in PEFT, and exports with `attune adapter export-gguf`. For a tenant, pull its domain version (release.json names it) and stack both.")
        @OptionGroup var registryOptions: RegistryOptions
        @Argument(help: "NAME or NAME@VERSION, e.g. tenant/acme or tenant/acme@3.") var reference: String
        @Option(help: "Output folder.") var out: String

        func run() async throws {
            guard let ref = AdapterReference(parsing: reference) else {
                throw ValidationError("\(reference): expected domain/<id>, tenant/<id>, optionally @<version>")
            }
            try await reportingErrors {
                let registry = try await registryOptions.open()
                do {
                    let release = try await registry.resolve(ref)
                    let bytes = try await registry.weights(of: release)
                    let (config, weights) = try PEFTAdapterFile.split(published: Data(bytes))
                    try AdapterFolder.write([(PEFTAdapterFile.configName, config), (PEFTAdapterFile.weightsName, weights),
                                             ("release.json", try JSONEncoder.sorted.encode(release))],
                                            to: URL(fileURLWithPath: out))
                    emit("\(release.id) sha256:\(release.sha256) → \(out)" + (release.domain.map { " (stands on \($0))" } ?? ""))
                } catch let error as RegistryError {
                    await registry.close()
                    FileHandle.standardError.write(Data("attune: \(error)\n".utf8))
                    throw ExitCode.failure
                } catch let error as TrainingError {
                    await registry.close()
                    FileHandle.standardError.write(Data("attune: \(error)\n".utf8))
                    throw ExitCode.failure
                }
                await registry.close()
            }
        }
    }
}
