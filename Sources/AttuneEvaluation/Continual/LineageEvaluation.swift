import AttuneEventLog
import AttuneModel
import AttuneRegistry
import AttuneTokenizer
import AttuneTraining
import Foundation

/// The forgetting view of one adapter's lineage: each version that trained on new input,
/// evaluated on what every version of the window trained on (the records its release covers),
/// with the model before the window (the first version's parent, else its domain, else the
/// base) as the initial model.
public struct LineageReport: Sendable, Codable {
    public var adapter: String
    /// `name@version` of each step, oldest first; set j is what step j trained on.
    public var versions: [String]
    public var setSizes: [Int]
    public var initialModel: String
    /// Per version × set.
    public var loss: [[Double]]
    public var accuracy: [[Double]]
    public var initialLoss: [Double]
    public var initialAccuracy: [Double]
    /// Transfer of next-token accuracy (higher is better).
    public var accuracyTransfer: TransferMatrix
    /// Transfer of the loss, negated so that higher is better (a negative BWT is forgetting).
    public var negatedLossTransfer: TransferMatrix

    /// Evaluates the last `limit` versions of `name` that cover input.
    public static func evaluate(_ name: AdapterName, registry: AdapterRegistry, log: any EventLog, model: LlamaModel,
                                tokenizer: BPETokenizer, limit: Int = 8) async throws -> LineageReport {
        let releases = Array(await registry.history(name).map(\.release).filter { !$0.covers.isEmpty }.suffix(limit))
        guard let first = releases.first else {
            throw RegistryError(.unknownAdapter, "\(name) has no version that trained on input")
        }
        let builder = ExampleBuilder(tokenizer: tokenizer)
        let slice = TopicSlice(log: log)
        var sets: [EvaluationSet] = []
        for release in releases {
            let records = try await slice.records(at: release.covers).filter { Self.belongs($0, to: name) }
            sets.append(try EvaluationSet(name: release.id, records: records, builder: builder))
        }
        func row(_ spec: String) async throws -> (loss: [Double], accuracy: [Double]) {
            let (adapter, _) = try await ModelSpec(parsing: spec).load(for: model, registry: registry)
            let evaluator = ModelEvaluator(model: model, tokenizer: tokenizer, adapter: adapter)
            let metrics = try sets.map { try evaluator.likelihood($0.items) }
            return (metrics.map(\.loss), metrics.map(\.accuracy))
        }
        let initialSpec = first.parent ?? first.domain ?? "base"
        let initial = try await row(initialSpec)
        var loss: [[Double]] = [], accuracy: [[Double]] = []
        for release in releases {
            let r = try await row(release.id)
            loss.append(r.loss)
            accuracy.append(r.accuracy)
        }
        return LineageReport(adapter: name.description, versions: releases.map(\.id), setSizes: sets.map(\.items.count),
                             initialModel: initialSpec, loss: loss, accuracy: accuracy, initialLoss: initial.loss,
                             initialAccuracy: initial.accuracy,
                             accuracyTransfer: TransferMatrix(value: accuracy, initial: initial.accuracy),
                             negatedLossTransfer: TransferMatrix(value: loss.map { $0.map { -$0 } }, initial: initial.loss.map { -$0 }))
    }

    /// Whether a covered record is this adapter's own input (a tenant's interaction, a domain's document).
    static func belongs(_ record: ConsumerRecord, to name: AdapterName) -> Bool {
        guard let value = record.value else { return false }
        switch name.kind {
        case .tenant: return (try? JSONDecoder().decode(Interaction.self, from: Data(value)))?.tenant == name.id
        case .domain: return (try? JSONDecoder().decode(CorpusDocument.self, from: Data(value)))?.domain == name.id
        case .meta: return false
        }
    }
}
