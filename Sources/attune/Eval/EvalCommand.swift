import ArgumentParser
import AttuneEvaluation
import AttuneEventLog
import AttuneModel
import AttuneRegistry
import AttuneTokenizer
import AttuneTraining
import Foundation

/// `attune eval …`: how well models do on data, what a lineage forgot, what users accepted.
struct EvalCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "Evaluate models (loss, perplexity, accuracy; answers by exact match, token F1, BLEU, chrF), a lineage's forgetting, and acceptance rates.",
        subcommands: [Models.self, Lineage.self, Acceptance.self], defaultSubcommand: Models.self)

    struct Models: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Evaluate models on files or on a tenant's or domain's records: one row per model and set.",
            discussion: "MODEL is base, domain/<id>, tenant/<id> (latest), <name>@<version>, an adapter folder, or a stack joined by + (lowest first). A tenant version stands on the domain version its release names.")
        @OptionGroup var registryOptions: RegistryOptions
        @OptionGroup var baseModel: BaseModelOption
        @Argument(help: "Models to evaluate (default: base).") var models: [String] = []
        @Option(help: "An evaluation file: .jsonl of {\"text\"} documents or {\"prompt\", \"response\"} interactions, or a text file (repeatable).")
        var data: [String] = []
        @Option(help: "Evaluate on this tenant's interactions on attune.interactions (repeatable).") var tenant: [String] = []
        @Option(help: "Evaluate on this domain's documents on attune.corpora (repeatable).") var domain: [String] = []
        @OptionGroup var range: TimeRangeOptions
        @Flag(help: "Also generate greedy answers to the interactions' prompts and score them against the references.")
        var generate = false
        @Option(help: "Most tokens of a generated answer.") var maxTokens = 64
        @Flag(help: "One JSON object per model and set.") var json = false

        func validate() throws {
            guard !data.isEmpty || !tenant.isEmpty || !domain.isEmpty else {
                throw ValidationError("give an evaluation set: --data FILE, --tenant ID or --domain ID")
            }
            guard maxTokens > 0 else { throw ValidationError("--max-tokens must be positive") }
            _ = try range.bounds()
        }

        func run() async throws {
            let specs = try (models.isEmpty ? ["base"] : models).map { try ModelSpec(parsing: $0) }
            let (model, tokenizer) = try baseModel.load()
            let builder = ExampleBuilder(tokenizer: tokenizer)
            try await reportingErrors {
                var sets = try data.map { try EvaluationSet(file: $0, builder: builder) }
                let topicSets = !tenant.isEmpty || !domain.isEmpty
                let registry = specs.contains(where: \.needsRegistry) ? try await registryOptions.open() : nil
                if topicSets {
                    let log = try registryOptions.transport.existingLog()
                    let (from, to) = try range.bounds()
                    let slice = TopicSlice(log: log)
                    for id in tenant {
                        let records = try await slice.records(of: registryOptions.topicPrefix + "attune.interactions", from: from, to: to)
                        sets.append(try topicSet("tenant/\(id)", records.filter { decode(Interaction.self, $0)?.tenant == id }, builder))
                    }
                    for id in domain {
                        let records = try await slice.records(of: registryOptions.topicPrefix + "attune.corpora", from: from, to: to)
                        sets.append(try topicSet("domain/\(id)", records.filter { decode(CorpusDocument.self, $0)?.domain == id }, builder))
                    }
                }
                var table = TextTable(["model", "versions", "set", "examples", "tokens", "loss", "perplexity", "accuracy"]
                                      + (generate ? ["answers", "exact", "F1", "BLEU", "chrF"] : []))
                for spec in specs {
                    let (adapter, versions) = try await spec.load(for: model, registry: registry)
                    let evaluator = ModelEvaluator(model: model, tokenizer: tokenizer, adapter: adapter)
                    for set in sets {
                        let likelihood = try evaluator.likelihood(set.items)
                        let interactions = set.interactions
                        let answers = generate && !interactions.isEmpty
                            ? try evaluator.generation(interactions, maxTokens: maxTokens).0 : nil
                        if json {
                            let row = EvaluationRow(model: spec.description, versions: versions, set: set.name, examples: set.items.count,
                                                    likelihood: likelihood, generation: answers)
                            emit(String(decoding: try JSONEncoder.sorted.encode(row), as: UTF8.self))
                            continue
                        }
                        var row = [spec.description, versions.isEmpty ? "-" : versions.joined(separator: "+"), set.name, "\(set.items.count)",
                                   "\(likelihood.tokens)", String(format: "%.4f", likelihood.loss), String(format: "%.3f", likelihood.perplexity),
                                   String(format: "%.4f", likelihood.accuracy)]
                        if let a = answers {
                            row += ["\(a.answers)", String(format: "%.3f", a.exactMatch), String(format: "%.3f", a.tokenF1),
                                    String(format: "%.2f", a.bleu), String(format: "%.2f", a.chrF)]
                        }
                        table.add(row)
                    }
                }
                if !json { table.lines.forEach(emit) }
                await registry?.close()
            }
        }

        private func topicSet(_ name: String, _ records: [ConsumerRecord], _ builder: ExampleBuilder) throws -> EvaluationSet {
            let set = try EvaluationSet(name: name, records: records, builder: builder)
            guard !set.items.isEmpty else { throw ValidationError("\(name) has no records to evaluate\(range.isBounded ? " in that time range" : "")") }
            return set
        }
    }

    struct Lineage: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "The forgetting view of an adapter's lineage: its last versions × what each trained on, with backward and forward transfer.",
            discussion: "Row i is version i, column j the records version j covers; the initial model is the first version's parent (else its domain, else the base). BWT and FWT follow Lopez-Paz & Ranzato (2017), as Avalanche reports them, on next-token accuracy and on the negated loss.")
        @OptionGroup var registryOptions: RegistryOptions
        @OptionGroup var baseModel: BaseModelOption
        @Argument(help: "Adapter name, e.g. tenant/acme.") var name: String
        @Option(help: "How many of the latest versions that trained on input.") var last = 8
        @Flag(help: "The report as one JSON object.") var json = false

        func validate() throws {
            guard AdapterName(parsing: name) != nil else { throw ValidationError("\(name): expected domain/<id> or tenant/<id>") }
            guard last >= 1 else { throw ValidationError("--last must be at least 1") }
        }

        func run() async throws {
            let (model, tokenizer) = try baseModel.load()
            try await reportingErrors {
                let registry = try await registryOptions.open()
                let report: LineageReport
                do {
                    report = try await LineageReport.evaluate(AdapterName(parsing: name)!, registry: registry,
                                                              log: try registryOptions.transport.existingLog(), model: model,
                                                              tokenizer: tokenizer, limit: last)
                } catch let error as RegistryError {
                    await registry.close()
                    FileHandle.standardError.write(Data("attune: \(error)\n".utf8))
                    throw ExitCode.failure
                }
                await registry.close()
                if json {
                    emit(String(decoding: try JSONEncoder.sorted.encode(report), as: UTF8.self))
                    return
                }
                emit("next-token accuracy (rows: versions, columns: what each version trained on; initial: \(report.initialModel))")
                emit(Self.table(report, report.accuracy, report.initialAccuracy))
                emit("loss")
                emit(Self.table(report, report.loss, report.initialLoss))
                func fmt(_ v: Double?) -> String { v.map { String(format: "%+.4f", $0) } ?? "-" }
                emit("accuracy: BWT \(fmt(report.accuracyTransfer.backwardTransfer))  FWT \(fmt(report.accuracyTransfer.forwardTransfer))"
                     + "   loss (negated): BWT \(fmt(report.negatedLossTransfer.backwardTransfer))  FWT \(fmt(report.negatedLossTransfer.forwardTransfer))")
            }
        }

        static func table(_ report: LineageReport, _ values: [[Double]], _ initial: [Double]) -> String {
            let width = max(18, (report.versions + [report.initialModel]).map(\.count).max()! + 1)
            func pad(_ s: String) -> String { s.padding(toLength: width, withPad: " ", startingAt: 0) }
            var lines = [pad("") + report.versions.map { pad($0) }.joined()]
            lines.append(pad("examples") + report.setSizes.map { pad("\($0)") }.joined())
            lines.append(pad(report.initialModel) + initial.map { pad(String(format: "%.4f", $0)) }.joined())
            for (version, row) in zip(report.versions, values) {
                lines.append(pad(version) + row.map { pad(String(format: "%.4f", $0)) }.joined())
            }
            return lines.joined(separator: "\n")
        }
    }

    struct Acceptance: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Acceptance rate of served answers per adapter version, from the feedback on attune.interactions.",
            discussion: "An interaction rated up is accepted, down rejected; its version is the served_by that attune serve records (unattributed otherwise).")
        @OptionGroup var registryOptions: RegistryOptions
        @Option(help: "Only this tenant's feedback.") var tenant: String?
        @OptionGroup var range: TimeRangeOptions
        @Flag(help: "One JSON object per version.") var json = false

        func validate() throws { _ = try range.bounds() }

        func run() async throws {
            try await reportingErrors {
                let (from, to) = try range.bounds()
                let records = try await TopicSlice(log: try registryOptions.transport.existingLog())
                    .records(of: registryOptions.topicPrefix + "attune.interactions", from: from, to: to)
                var tally = AcceptanceTally()
                tally.add(records, tenant: tenant)
                if tally.versions.isEmpty {
                    FileHandle.standardError.write(Data("attune: no rated interactions\(tenant.map { " of tenant \($0)" } ?? "")\n".utf8))
                }
                var table = TextTable(["version", "accepted", "rejected", "rate"])
                for version in tally.versions {
                    let count = tally.byVersion[version]!
                    if json {
                        struct Row: Encodable { var version: String; var accepted: Int; var rejected: Int; var rate: Double? }
                        emit(String(decoding: try JSONEncoder.sorted.encode(Row(version: version, accepted: count.accepted,
                                                                                    rejected: count.rejected, rate: count.rate)), as: UTF8.self))
                    } else {
                        table.add([version, "\(count.accepted)", "\(count.rejected)", count.rate.map { String(format: "%.3f", $0) } ?? "-"])
                    }
                }
                if !json { table.lines.forEach(emit) }
            }
        }
    }
}

/// One row of `attune eval models --json`.
struct EvaluationRow: Encodable {
    var model: String
    var versions: [String]
    var set: String
    var examples: Int
    var likelihood: LikelihoodMetrics
    var generation: GenerationMetrics?
}

/// The base model (GGUF) that evaluated adapters stand on.
struct BaseModelOption: ParsableArguments {
    @Option(name: .customLong("base-model"), help: "GGUF base model (default: $ATTUNE_MODEL, else the fetched base model).")
    var path: String?

    func load() throws -> (LlamaModel, BPETokenizer) {
        let llama = try LlamaModel(path: try BaseModelStore().resolve(path), mode: .dense)
        return (llama, try BPETokenizer(gguf: llama.file))
    }
}

/// `--from` / `--to`: a time range of records by their timestamps (ISO 8601).
struct TimeRangeOptions: ParsableArguments {
    @Option(help: "Only records produced at or after this time (ISO 8601, e.g. 2026-11-01T00:00Z).") var from: String?
    @Option(help: "Only records produced before this time (ISO 8601).") var to: String?

    var isBounded: Bool { from != nil || to != nil }

    /// The bounds in milliseconds since the epoch.
    func bounds() throws -> (TimestampMs?, TimestampMs?) {
        let lower = try from.map { try Self.parse($0, "--from") }, upper = try to.map { try Self.parse($0, "--to") }
        if let lower, let upper, lower >= upper { throw ValidationError("--from must be before --to") }
        return (lower, upper)
    }

    static func parse(_ text: String, _ option: String) throws -> TimestampMs {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        for format in ["yyyy-MM-dd'T'HH:mm:ss.SSSXXXXX", "yyyy-MM-dd'T'HH:mm:ssXXXXX", "yyyy-MM-dd'T'HH:mmXXXXX", "yyyy-MM-dd"] {
            formatter.dateFormat = format
            if let date = formatter.date(from: text) { return TimestampMs((date.timeIntervalSince1970 * 1000).rounded()) }
        }
        throw ValidationError("\(option) \(text): not an ISO 8601 time (e.g. 2026-11-01T00:00Z)")
    }
}

private func decode<T: Decodable>(_ type: T.Type, _ record: ConsumerRecord) -> T? {
    record.value.flatMap { try? JSONDecoder().decode(type, from: Data($0)) }
}
