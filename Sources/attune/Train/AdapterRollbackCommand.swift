import ArgumentParser
import AttuneEventLog
import AttuneRegistry
import Foundation

extension AdapterCommand {
    /// `attune adapter rollback NAME --to VERSION`: re-points an adapter at an earlier version.
    struct Rollback: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Publish an earlier version's weights as the adapter's next version (servers swap to it; its worker trains on from it).",
            discussion: """
            Versions are immutable, so a rollback is a new version: the weights of --to (verified against their \
            sha256), standing on the same domain version, with the current version as parent and \
            rollback_of/restored metrics. It is stored and announced like any other version: every `attune serve` \
            swaps to it, and the training worker that owns the adapter adopts it and continues from it.
            """)
        @OptionGroup var registryOptions: RegistryOptions
        @Argument(help: "Adapter name, e.g. tenant/acme.") var name: String
        @Option(help: "The version whose weights become current again.") var to: Int

        func run() async throws {
            guard let adapter = AdapterName(parsing: name) else { throw ValidationError("\(name): expected domain/<id> or tenant/<id>") }
            try await reportingErrors {
                let registry = try await registryOptions.open()
                let current = await registry.latest(adapter)
                let lookup: Result<(AdapterRelease, [UInt8]), RegistryError> = await {
                    do {
                        let release = try await registry.resolve(AdapterReference(adapter, version: to))
                        return .success((release, try await registry.weights(of: release)))
                    } catch let error as RegistryError { return .failure(error) } catch { return .failure(RegistryError(.corrupt, "\(error)")) }
                }()
                await registry.close()
                guard let current else { throw ValidationError("no published version of \(name)") }
                guard to < current.version else {
                    throw ValidationError("\(name) is at version \(current.version); --to must name an earlier one")
                }
                let (target, weights): (AdapterRelease, [UInt8])
                switch lookup {
                case .success(let found): (target, weights) = found
                case .failure(let error): throw ValidationError("\(name)@\(to): \(error)")
                }
                let release = try await registryOptions.publishWeights(of: target, weights, after: current,
                                                                       metrics: ["rollback_of": Double(current.version), "restored": Double(target.version)],
                                                                       source: "attune/adapter-rollback")
                emit("published \(release.id) = the weights of \(target.id) (sha256:\(target.sha256.prefix(12))), after \(current.id)")
            }
        }
    }
}

extension RegistryOptions {
    /// Publishes `target`'s weights (already verified) as the next version of `current`'s adapter:
    /// same domain version, `current` as parent, no inputs covered, `target`'s metrics plus `metrics`.
    func publishWeights(of target: AdapterRelease, _ weights: [UInt8], after current: AdapterRelease, metrics: [String: Double],
                        source: String) async throws -> AdapterRelease {
        let release = AdapterRelease(adapter: current.adapter, version: current.version + 1, sha256: target.sha256,
                                     parent: current.id, domain: target.domain, baseModel: target.baseModel,
                                     baseModelSHA256: target.baseModelSHA256, covers: [:],
                                     metrics: target.metrics.merging(metrics) { $1 }, blocks: target.blocks)
        try await ReleasePublisher(adaptersTopic: topicPrefix + "attune.adapters", eventsTopic: topicPrefix + "attune.adapter-events",
                                   source: source).publish(release, weights: weights, on: try transport.makeLog())
        return release
    }
}
