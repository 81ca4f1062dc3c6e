import AttuneEventLog
import AttuneTraining
import Foundation

/// A validated input record turned into a training example for one adapter.
struct WorkItem {
    /// `domain/<name>` or `tenant/<name>`.
    let adapter: String
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
        guard let value = r.value, let obj = try JSONSerialization.jsonObject(with: Data(value)) as? [String: Any] else {
            throw TrainingError.badData("record is not a JSON object")
        }
        if r.topic == corporaTopic {
            guard let domain = obj["domain"] as? String, let text = obj["text"] as? String else {
                throw TrainingError.badData("corpus document without domain or text")
            }
            return WorkItem(adapter: "domain/" + domain, example: builder.corpus(text), source: r.topicPartition, offset: r.offset, timestamp: r.timestamp,
                            key: r.key, value: r.value)
        }
        guard let tenant = obj["tenant"] as? String, let prompt = obj["prompt"] as? String, let response = obj["response"] as? String else {
            throw TrainingError.badData("interaction without tenant, prompt or response")
        }
        guard let example = builder.interaction(prompt: prompt, response: response, correction: obj["correction"] as? String,
                                                feedback: obj["feedback"] as? String) else { return nil }
        return WorkItem(adapter: "tenant/" + tenant, example: example, source: r.topicPartition, offset: r.offset, timestamp: r.timestamp, key: r.key, value: r.value)
    }
}
