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
                var metrics = target.metrics
                metrics["rollback_of"] = Double(current.version)
                metrics["restored"] = Double(target.version)
                let release = AdapterRelease(adapter: current.adapter, version: current.version + 1, sha256: target.sha256,
                                             parent: current.id, domain: target.domain, baseModel: target.baseModel,
                                             baseModelSHA256: target.baseModelSHA256, covers: [:], metrics: metrics, blocks: target.blocks)
                let producer = try registryOptions.transport.makeLog().makeProducer()
                try await ReleasePublisher(adaptersTopic: registryOptions.topicPrefix + "attune.adapters",
                                           eventsTopic: registryOptions.topicPrefix + "attune.adapter-events",
                                           source: "attune/adapter-rollback").publish(release, weights: weights, producer: producer)
                try await producer.flush()
                await producer.close()
                emit("published \(release.id) = the weights of \(target.id) (sha256:\(target.sha256.prefix(12))), after \(current.id)")
            }
        }
    }
}
