import ArgumentParser
import AttuneEvaluation
import AttuneEventLog
import AttuneModel
import AttuneRegistry
import AttuneTokenizer
import AttuneTraining
import AttuneWorker
import Foundation

/// `attune replay`: rebuild an adapter from its inputs on the topics into a side lineage.
struct ReplayCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replay",
        abstract: "Retrain an adapter from its records on the topics (a time range, minus excluded records) into a side lineage beside the live one.",
        discussion: """
        The versions are published as NAME~replay-<date> (or --as): served and evaluated like any other adapter, never \
        trained on by the workers, and never touching the live versions or the live consumer group's offsets. Stopped \
        (Ctrl-C) and run again with the same arguments, it resumes after its last published version. It ends with the \
        replay's loss next to the live adapter's on the replayed records (and on --held-out). `attune adapter promote` \
        makes the replay the live adapter's next version.
        """)
    @OptionGroup var registryOptions: RegistryOptions
    @OptionGroup var worker: WorkerOptions
    @Option(help: "GGUF base model (default: $ATTUNE_MODEL, else the fetched base model).") var model: String?
    @Argument(help: "The live adapter to replay, e.g. tenant/acme or domain/legal.") var name: String
    @Option(name: .customLong("as"), help: "The side lineage to publish (default: NAME~replay-<today's date>).") var target: String?
    @OptionGroup var range: TimeRangeOptions
    @Option(help: "Leave out this user's interactions (repeatable): forgetting a user's data.") var excludeUser: [String] = []
    @Option(help: "Leave out the interaction (or document) with this id (repeatable).") var excludeID: [String] = []
    @Option(help: "Leave out the record at topic[partition]@offset (repeatable).") var excludeOffset: [String] = []
    @Option(help: "For a tenant: the domain version to stand on (default: the live tenant's domain, its latest version).") var domain: String?
    @Option(help: "An evaluation file (.jsonl) the replay and the live adapter are also compared on.") var heldOut: String?

    func validate() throws {
        guard let source = AdapterName(parsing: name), source.kind != .meta, !source.isSideLineage else {
            throw ValidationError("\(name): expected a live adapter, domain/<id> or tenant/<id> (without ~)")
        }
        if let target {
            guard let t = AdapterName(parsing: target), t.kind == source.kind, t.isSideLineage else {
                throw ValidationError("--as \(target): expected a side lineage of the same kind, e.g. \(source)~replay-1")
            }
        }
        for o in excludeOffset where RecordPosition(parsing: o) == nil {
            throw ValidationError("--exclude-offset \(o): expected topic[partition]@offset, e.g. attune.interactions[3]@120")
        }
        if let domain {
            guard source.kind == .tenant, AdapterReference(parsing: domain)?.name.kind == .domain else {
                throw ValidationError("--domain \(domain): a tenant replay stands on domain/<id> or domain/<id>@<version>")
            }
        }
        _ = try range.bounds()
    }

    func run() async throws {
        let source = AdapterName(parsing: name)!
        let day = ISO8601DateFormatter.string(from: Date(), timeZone: TimeZone(identifier: "UTC")!, formatOptions: [.withFullDate])
        let target = AdapterName(parsing: self.target ?? "\(source)~replay-\(day)")!
        let path = try BaseModelStore().resolve(model)
        let base = try LlamaModel(path: path, mode: .quantized)
        let tokenizer = try BPETokenizer(gguf: base.file)
        let c = try worker.configuration(baseModel: URL(fileURLWithPath: path).lastPathComponent,
                                         baseModelSHA256: try BaseModelStore.sha256(of: path), topicPrefix: registryOptions.topicPrefix)
        var plan = ReplayPlan(source: source, target: target)
        (plan.from, plan.to) = try range.bounds()
        plan.excludedUsers = Set(excludeUser)
        plan.excludedIDs = Set(excludeID)
        plan.excludedPositions = Set(excludeOffset.compactMap(RecordPosition.init(parsing:)))
        plan.domain = domain.flatMap(AdapterReference.init(parsing:))
        let stop = StopSignal()
        try await reportingErrors {
            let log = try registryOptions.transport.makeLog()
            let registry = try await registryOptions.open()
            do {
                let summary = try await Replayer(configuration: c, log: log, base: base, tokenizer: tokenizer, registry: registry)
                    .run(plan, stop: { stop.stopped }) { emit($0) }
                if stop.stopped {
                    emit("stopped: \(summary.covered.count) records covered; run the same command again to resume")
                } else if summary.covered.isEmpty {
                    emit("nothing to replay: no record of \(source) in that range")
                } else {
                    try await registry.catchUp()
                    try await compare([source, target], on: summary.covered, registry: registry, modelPath: path, tokenizer: tokenizer)
                }
            } catch {
                await registry.close()
                throw error
            }
            await registry.close()
        }
    }

    /// The loss and accuracy of each adapter's latest version on the replayed records (and --held-out).
    private func compare(_ names: [AdapterName], on records: [ConsumerRecord], registry: AdapterRegistry, modelPath: String,
                         tokenizer: BPETokenizer) async throws {
        let builder = ExampleBuilder(tokenizer: tokenizer)
        var sets = [try EvaluationSet(name: "replayed", records: records, builder: builder)]
        if let heldOut { sets.append(try EvaluationSet(file: heldOut, builder: builder)) }
        let dense = try LlamaModel(path: modelPath, mode: .dense)
        var table = TextTable(["model", "set", "examples", "loss", "accuracy"])
        for name in names where await registry.latest(name) != nil {
            let (adapter, versions) = try await ModelSpec(parsing: name.description).load(for: dense, registry: registry)
            let evaluator = ModelEvaluator(model: dense, tokenizer: tokenizer, adapter: adapter)
            for set in sets {
                let m = try evaluator.likelihood(set.items)
                table.add([versions.last ?? name.description, set.name, "\(set.items.count)", String(format: "%.4f", m.loss),
                           String(format: "%.4f", m.accuracy)])
            }
        }
        table.lines.forEach(emit)
    }
}
