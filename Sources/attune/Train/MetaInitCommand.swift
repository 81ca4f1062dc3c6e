import ArgumentParser
import AttuneModel
import AttuneRegistry
import AttuneTokenizer
import AttuneWorker
import Foundation

/// `attune meta-init --domain X`: learn where the domain's new tenants start.
struct MetaInitCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "meta-init",
        abstract: "Meta-learn (Reptile) a starting point for a domain's new tenants from its existing tenants; publish it as meta/<domain>.",
        discussion: """
        Each iteration fine-tunes a copy of the current starting point on one tenant's data for --inner-steps and \
        moves it toward the result. The version is published as meta/<domain>@N, standing on the domain's latest \
        version; training workers start every new tenant of the domain from it (its first release names it in \
        `initialization`). Run again as tenants accumulate: each version continues from the previous one. Only \
        admin keys may use or follow meta adapters (they are learned from many tenants' data).
        """)
    @OptionGroup var registryOptions: RegistryOptions
    @OptionGroup var worker: WorkerOptions
    @Option(help: "GGUF base model (default: $ATTUNE_MODEL, else the fetched base model).") var model: String?
    @Option(help: "The domain, e.g. legal (or domain/legal).") var domain: String
    @Option(help: "Outer iterations (one tenant's inner fine-tune each).") var iterations = 48
    @Option(help: "Optimizer steps of each inner fine-tune.") var innerSteps = 4
    @Option(help: "Outer step size at the first iteration, annealed linearly to 0.") var metaStep = 1.0
    @Option(help: "Most examples of one tenant per inner fine-tune.") var examplesPerTask = 8
    @Option(help: "Fewest tenants with data the domain needs.") var minTenants = 2

    func validate() throws {
        guard AdapterName.domain(domainID) != nil, !domainID.contains("~") else { throw ValidationError("--domain \(domain): not a domain id") }
        guard iterations >= 1, innerSteps >= 1, examplesPerTask >= 1, minTenants >= 1 else {
            throw ValidationError("--iterations, --inner-steps, --examples-per-task and --min-tenants must be at least 1")
        }
        guard metaStep > 0, metaStep <= 1 else { throw ValidationError("--meta-step must be in (0, 1]") }
    }

    private var domainID: String { domain.hasPrefix("domain/") ? String(domain.dropFirst(7)) : domain }

    func run() async throws {
        let path = try BaseModelStore().resolve(model)
        let base = try LlamaModel(path: path, mode: .quantized)
        let tokenizer = try BPETokenizer(gguf: base.file)
        let c = try worker.configuration(baseModel: URL(fileURLWithPath: path).lastPathComponent,
                                         baseModelSHA256: try BaseModelStore.sha256(of: path), topicPrefix: registryOptions.topicPrefix)
        var settings = MetaLearningSettings()
        settings.iterations = iterations
        settings.innerSteps = innerSteps
        settings.metaStep = metaStep
        settings.examplesPerTask = examplesPerTask
        settings.minimumTenants = minTenants
        try await reportingErrors {
            let registry = try await registryOptions.open()
            do {
                let release = try await MetaInitializer(configuration: c, log: try registryOptions.transport.makeLog(), base: base,
                                                        tokenizer: tokenizer, registry: registry)
                    .run(domain: AdapterName.domain(domainID)!, settings: settings) { emit($0) }
                emit("published \(release.id) on \(release.domain ?? "-") (sha256:\(release.sha256.prefix(12)))")
            } catch {
                await registry.close()
                throw error
            }
            await registry.close()
        }
    }
}
