import AttuneEventLog
import AttuneModel
import AttuneRegistry
import AttuneTokenizer
import AttuneTraining
import Foundation

/// Settings of first-order meta-learning (Reptile).
public struct MetaLearningSettings: Sendable {
    /// Outer iterations: one tenant's inner fine-tune each.
    public var iterations = 48
    /// Optimizer steps of each inner fine-tune (what a new tenant's first versions do).
    public var innerSteps = 4
    /// The outer step ε at the first iteration, annealed linearly to 0.
    public var metaStep = 1.0
    /// Most examples of one tenant in an inner fine-tune (a sample of its data, redrawn each time).
    public var examplesPerTask = 8
    /// Fewest tenants with data the domain needs.
    public var minimumTenants = 2

    public init() {}
}

/// Learns where a domain's new tenants start: `Reptile` over the tenants that stand on the
/// domain (their records, read back by what their versions cover). The result is published as
/// the next version of `meta/<domain>` (standing on the domain version it was learned on);
/// workers start new tenants of the domain from it and say so in their first release
/// (`initialization`). Run again as tenants accumulate: each version continues from the
/// previous one.
public final class MetaInitializer {
    public let configuration: TrainWorkerConfiguration
    let log: any EventLog
    let base: LlamaModel
    let builder: ExampleBuilder
    let registry: AdapterRegistry
    let reptile: Reptile

    public init(configuration: TrainWorkerConfiguration, log: any EventLog, base: LlamaModel, tokenizer: BPETokenizer, registry: AdapterRegistry) {
        self.configuration = configuration
        self.log = log
        self.base = base
        builder = ExampleBuilder(tokenizer: tokenizer)
        self.registry = registry
        reptile = Reptile(configuration: configuration, base: base)
    }

    /// Learns from the domain's tenants (their records, read back by what their versions cover)
    /// and publishes the next version of `meta/<domain id>`. Its metrics record how many tenants
    /// stood on the domain (`standing_tenants`) and how many of them had data (`tenants`). Once
    /// `stop` says so (checked between iterations), nothing is published and `CancellationError` is thrown.
    public func run(domain: AdapterName, settings: MetaLearningSettings = MetaLearningSettings(), stop: () -> Bool = { false },
                    progress: (String) -> Void = { _ in }) async throws -> AdapterRelease {
        let c = configuration
        guard domain.kind == .domain, !domain.isSideLineage, let name = AdapterName.meta(domain.id) else {
            throw TrainingError.invalid("meta-initializations are learned for a domain, e.g. domain/legal")
        }
        guard let domainRelease = await registry.latest(domain) else { throw TrainingError.badData("\(domain) has no published version") }
        let frozen = try PEFTAdapterFile.decode(published: Data(try await registry.weights(of: domainRelease)), model: base.config)
        var tasks: [(tenant: AdapterName, examples: [TrainingExample])] = []
        var standing = 0
        let decoder = InputDecoder(builder: builder, corporaTopic: c.corporaTopic, interactionsTopic: c.interactionsTopic)
        for tenant in await registry.names where tenant.kind == .tenant && !tenant.isSideLineage {
            guard await registry.latest(tenant)?.domainReference?.name == domain else { continue }
            standing += 1
            var coverage: OffsetCoverage = [:]
            for v in await registry.history(tenant) {
                for (tp, ranges) in v.release.covers { coverage[tp, default: []] += ranges }
            }
            let examples = try await TopicSlice(log: log).records(at: coverage).compactMap { r -> TrainingExample? in
                guard let item = try? decoder.decode(r), item.adapter == tenant else { return nil }
                return item.example
            }
            if !examples.isEmpty { tasks.append((tenant, examples)) }
        }
        guard tasks.count >= settings.minimumTenants else {
            throw TrainingError.badData("meta-learning for \(domain) needs at least \(settings.minimumTenants) tenants with data on it; found \(tasks.count)")
        }
        let previous = await registry.latest(name)
        let start: LoRAAdapter
        if let previous {
            start = try PEFTAdapterFile.decode(published: Data(try await registry.weights(of: previous)), model: base.config)
        } else {
            let nameSeed = UInt64(UInt32(bitPattern: Murmur2.hash(Array(name.description.utf8))))
            start = try LoRAAdapter(config: c.lora, model: base.config, seed: c.seed &+ nameSeed)
        }
        progress("\(name): \(tasks.count) tenants of \(domainRelease.id), \(tasks.map(\.examples.count).reduce(0, +)) examples; "
                 + (previous.map { "continuing from \($0.id)" } ?? "starting from a fresh adapter"))
        let (learned, innerLoss) = try await reptile.learn(tasks.map(\.examples), from: start, frozen: frozen, settings: settings,
                                                           stop: stop, progress: progress)
        let bytes = try TrainWorker.publishedBytes(learned, baseModel: c.baseModel)
        let release = AdapterRelease(
            adapter: name.description, version: (await registry.history(name).last?.release.version ?? 0) + 1, sha256: AdapterRelease.digest(bytes),
            parent: previous?.id, domain: domainRelease.id, baseModel: c.baseModel, baseModelSHA256: c.baseModelSHA256, covers: [:],
            metrics: ["tenants": Double(tasks.count), "standing_tenants": Double(standing), "examples": Double(tasks.map(\.examples.count).reduce(0, +)),
                      "iterations": Double(settings.iterations), "inner_steps": Double(settings.innerSteps), "inner_loss": innerLoss])
        try await ReleasePublisher(adaptersTopic: c.adaptersTopic, eventsTopic: c.eventsTopic, source: c.source + "/meta-init")
            .publish(release, weights: bytes, on: log)
        return release
    }
}
