import AttuneEventLog
import AttuneRegistry
import AttuneTraining
import Foundation

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
            guard !adapter.isSideLineage else {
                throw TrainingError.badData("\(r.topic): \"~\" in \(adapter) is reserved for side lineages such as replays")
            }
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
