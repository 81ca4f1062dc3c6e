import ArgumentParser
import AttuneEventLog
import AttuneRegistry
import Foundation

extension AdapterCommand {
    /// `attune adapter promote SIDE`: a replay's (side lineage's) weights become the live adapter's next version.
    struct Promote: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Publish a side lineage's version (e.g. a replay) as the live adapter's next version.",
            discussion: """
            The weights of SIDE (its latest version, or SIDE@VERSION; verified against their sha256) are published as \
            the next version of the live adapter (the name before ~, or --to), standing on the same domain version, with \
            the live adapter's current version as parent and a promoted_version metric. Servers swap to it \
            and the owning worker adopts it and trains on from it.
            """)
        @OptionGroup var registryOptions: RegistryOptions
        @Argument(help: "The side lineage, e.g. tenant/acme~replay-2026-12-03 or …@3.") var side: String
        @Option(help: "The live adapter (default: the name before ~).") var to: String?

        func run() async throws {
            guard let reference = AdapterReference(parsing: side), reference.name.isSideLineage else {
                throw ValidationError("\(side): expected a side lineage such as tenant/acme~replay-2026-12-03, optionally @<version>")
            }
            let liveText = to ?? "\(reference.name.kind.rawValue)/\(reference.name.id.prefix { $0 != "~" })"
            guard let live = AdapterName(parsing: liveText), !live.isSideLineage, live.kind == reference.name.kind else {
                throw ValidationError("--to \(liveText): expected a live adapter of the same kind as \(reference.name)")
            }
            try await reportingErrors {
                let registry = try await registryOptions.open()
                let current = await registry.latest(live)
                let found: Result<(AdapterRelease, [UInt8]), RegistryError> = await {
                    do {
                        let release = try await registry.resolve(reference)
                        return .success((release, try await registry.weights(of: release)))
                    } catch let error as RegistryError { return .failure(error) } catch { return .failure(RegistryError(.corrupt, "\(error)")) }
                }()
                await registry.close()
                let (target, weights): (AdapterRelease, [UInt8])
                switch found {
                case .success(let pair): (target, weights) = pair
                case .failure(let error): throw ValidationError("\(side): \(error)")
                }
                guard let current else { throw ValidationError("\(live) has no published version to follow") }
                let release = try await registryOptions.publishWeights(
                    of: target, weights, after: current, metrics: ["promoted_version": Double(target.version)], source: "attune/adapter-promote")
                emit("published \(release.id) = the weights of \(target.id) (sha256:\(target.sha256.prefix(12))), after \(current.id)")
            }
        }
    }
}
