import AttuneEventLog
import AttuneRegistry
import AttuneTraining
import Foundation

/// An interaction on `attune.interactions` (schema `interaction.v1`): what a tenant's user
/// asked, what the model answered, and what the user made of it.
public struct Interaction: Codable, Sendable, Equatable {
    public var id: String?
    public var tenant: String
    public var user: String
    public var time: String
    public var prompt: String
    public var response: String
    /// `accepted`, `rejected` or `edited`.
    public var feedback: String?
    /// The answer the user wanted instead.
    public var correction: String?
}

/// A document (or one chunk of one) of a domain corpus on `attune.corpora` (schema `corpus-document.v1`).
public struct CorpusDocument: Codable, Sendable, Equatable {
    public var domain: String
    public var doc_id: String
    public var chunk: Int?
    public var chunks: Int?
    public var text: String
    public var source: String
    public var license: String?
}

/// A validated input record turned into a training example for one adapter.
struct WorkItem {
    let adapter: AdapterName
    let example: TrainingExample
    let source: TopicPartition
    let offset: Int64
    /// The record's produce time.
    let timestamp: TimestampMs
    /// The record as consumed, for the DLQ should the gate give up on its batch.
    let key: [UInt8]?
    let value: [UInt8]?
}

/// Decodes corpus documents and interactions (already schema-checked) into work items.
struct InputDecoder {
    let builder: ExampleBuilder
    let corporaTopic: String
    let interactionsTopic: String

    /// The work item, or nil for a record that teaches nothing (a rejected answer without correction).
    func decode(_ r: ConsumerRecord) throws -> WorkItem? {
        guard let value = r.value else { throw TrainingError.badData("record without a value") }
        func item(_ adapter: AdapterName?, _ example: TrainingExample) throws -> WorkItem {
            guard let adapter else { throw TrainingError.badData("\(r.topic): the tenant or domain is not a valid adapter name") }
            return WorkItem(adapter: adapter, example: example, source: r.topicPartition, offset: r.offset, timestamp: r.timestamp,
                            key: r.key, value: r.value)
        }
        if r.topic == corporaTopic {
            let document = try Self.decode(CorpusDocument.self, value, "corpus document")
            return try item(.domain(document.domain), builder.corpus(document.text))
        }
        let interaction = try Self.decode(Interaction.self, value, "interaction")
        guard let example = builder.interaction(prompt: interaction.prompt, response: interaction.response,
                                                correction: interaction.correction, feedback: interaction.feedback) else { return nil }
        return try item(.tenant(interaction.tenant), example)
    }

    private static func decode<T: Decodable>(_ type: T.Type, _ bytes: [UInt8], _ what: String) throws -> T {
        do {
            return try JSONDecoder().decode(type, from: Data(bytes))
        } catch let error as DecodingError {
            throw TrainingError.badData("not a valid \(what): \(Self.reason(error))")
        }
    }

    private static func reason(_ error: DecodingError) -> String {
        switch error {
        case .keyNotFound(let key, _): return "no \(key.stringValue)"
        case .typeMismatch(_, let context), .valueNotFound(_, let context):
            return "\(context.codingPath.map(\.stringValue).joined(separator: ".")): \(context.debugDescription)"
        case .dataCorrupted(let context): return context.debugDescription
        @unknown default: return "\(error)"
        }
    }
}
