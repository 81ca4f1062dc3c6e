import AttuneEventLog
import AttuneTraining
import Foundation

/// One example to evaluate: its tokens with the positions that are scored, and, for an
/// interaction, the prompt and the answer a generation is compared with.
public struct EvaluationItem: Sendable {
    public var example: TrainingExample
    public var prompt: String?
    /// The correction when the user gave one, else the response.
    public var reference: String?

    public init(example: TrainingExample, prompt: String? = nil, reference: String? = nil) {
        self.example = example
        self.prompt = prompt
        self.reference = reference
    }
}

/// A named set of evaluation items, read from a file or from records of the topics.
public struct EvaluationSet: Sendable {
    public var name: String
    public var items: [EvaluationItem]

    public init(name: String, items: [EvaluationItem]) {
        self.name = name
        self.items = items
    }

    /// Items from records of `attune.corpora` (documents: every token scored) and
    /// `attune.interactions` (the answer scored; a rejected answer without a correction is skipped).
    public init(name: String, records: [ConsumerRecord], builder: ExampleBuilder) throws {
        var items: [EvaluationItem] = []
        for r in records {
            guard let value = r.value else { continue }
            if let document = try? JSONDecoder().decode(CorpusDocument.self, from: Data(value)) {
                items.append(EvaluationItem(example: builder.corpus(document.text)))
            } else if let interaction = try? JSONDecoder().decode(Interaction.self, from: Data(value)) {
                if let item = Self.item(builder, prompt: interaction.prompt, response: interaction.response,
                                        correction: interaction.correction, feedback: interaction.feedback) {
                    items.append(item)
                }
            } else {
                throw EvaluationError("\(r.topic)[\(r.partition)]@\(r.offset) is neither a corpus document nor an interaction")
            }
        }
        self.init(name: name, items: items)
    }

    /// Items from a `.jsonl` file (`{"text"}` documents, `{"prompt", "response", "correction"?, "feedback"?}`
    /// interactions) or a text file (one document). Errors name the file and line.
    public init(file path: String, builder: ExampleBuilder) throws {
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
            throw EvaluationError("\(path) is not a readable UTF-8 file")
        }
        let name = (path as NSString).lastPathComponent
        guard path.hasSuffix(".jsonl") else {
            guard !text.isEmpty else { throw EvaluationError("\(path) is empty") }
            self.init(name: name, items: [EvaluationItem(example: builder.corpus(text))])
            return
        }
        struct Line: Decodable {
            var text: String?
            var prompt: String?
            var response: String?
            var correction: String?
            var feedback: String?
        }
        var items: [EvaluationItem] = []
        for (i, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated()
        where !line.trimmingCharacters(in: .whitespaces).isEmpty {
            guard let row = try? JSONDecoder().decode(Line.self, from: Data(line.utf8)) else {
                throw EvaluationError("\(path):\(i + 1): not a JSON object with string fields")
            }
            if let text = row.text, !text.isEmpty {
                items.append(EvaluationItem(example: builder.corpus(text)))
            } else if let prompt = row.prompt, let response = row.response {
                if let item = Self.item(builder, prompt: prompt, response: response, correction: row.correction, feedback: row.feedback) {
                    items.append(item)
                }
            } else {
                throw EvaluationError("\(path):\(i + 1): expected \"text\" or \"prompt\" and \"response\"")
            }
        }
        guard !items.isEmpty else { throw EvaluationError("\(path) holds nothing to evaluate") }
        self.init(name: name, items: items)
    }

    private static func item(_ builder: ExampleBuilder, prompt: String, response: String, correction: String?,
                             feedback: String?) -> EvaluationItem? {
        guard let example = builder.interaction(prompt: prompt, response: response, correction: correction, feedback: feedback) else {
            return nil
        }
        let reference = (correction?.isEmpty == false) ? correction! : response
        return EvaluationItem(example: example, prompt: prompt, reference: reference)
    }

    /// The interactions of the set (the items generation is scored on).
    public var interactions: [(prompt: String, reference: String)] {
        items.compactMap { item in item.prompt.flatMap { p in item.reference.map { (p, $0) } } }
    }
}
