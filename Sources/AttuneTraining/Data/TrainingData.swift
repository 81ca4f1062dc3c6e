import AttuneModel
import AttuneTokenizer
import Foundation

/// One training example: tokens and which of them are learned as targets.
public struct TrainingExample: Sendable, Equatable, Codable {
    public var tokens: [Int32]
    /// learn[i]: token i is a prediction target (its loss counts).
    public var learn: [Bool]

    public init(tokens: [Int32], learn: [Bool]) {
        self.tokens = tokens
        self.learn = learn
    }
}

/// Turns raw records into examples: corpus text trains on every token; an interaction
/// (prompt/response, ChatML-wrapped) trains on the response only — or on the correction when
/// feedback supplies one; a rejected response without a correction teaches nothing.
public struct ExampleBuilder: Sendable {
    public let tokenizer: BPETokenizer
    public let systemPrompt: String?

    public init(tokenizer: BPETokenizer, systemPrompt: String? = ChatTemplate.defaultSystemPrompt) {
        self.tokenizer = tokenizer
        self.systemPrompt = systemPrompt
    }

    /// A corpus document: all tokens learned, closed by end-of-text.
    public func corpus(_ text: String) -> TrainingExample {
        var tokens = tokenizer.encode(text)
        tokens.append(tokenizer.eosID)
        return TrainingExample(tokens: tokens, learn: [Bool](repeating: true, count: tokens.count))
    }

    /// A chat turn: prompt tokens carry no loss; the answer and its `<|im_end|>` do.
    public func interaction(prompt: String, response: String, correction: String? = nil, feedback: String? = nil) -> TrainingExample? {
        let rejected = ["down", "rejected", "negative", "thumbs_down", "-1"].contains(feedback?.lowercased() ?? "")
        let target: String
        if let correction, !correction.isEmpty {
            target = correction
        } else if rejected {
            return nil
        } else {
            target = response
        }
        let head = tokenizer.encode(ChatTemplate.render([ChatMessage(role: "user", content: prompt)], systemPrompt: systemPrompt),
                                    parseSpecial: true)
        var answer = tokenizer.encode(target)
        answer.append(tokenizer.tokenID("<|im_end|>") ?? tokenizer.eosID)
        return TrainingExample(tokens: head + answer, learn: [Bool](repeating: false, count: head.count) + [Bool](repeating: true, count: answer.count))
    }

    /// Parses one JSON object: `{"text"}` is corpus; `{"prompt", "response", "correction"?, "feedback"?}` is an
    /// interaction. Returns nil for a rejected interaction without correction.
    public func example(fromJSON line: String) throws -> TrainingExample? {
        guard let data = line.data(using: .utf8), let obj = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw TrainingError.badData("not a JSON object: \(line.prefix(80))")
        }
        if let text = obj["text"] as? String {
            guard !text.isEmpty else { throw TrainingError.badData("empty \"text\"") }
            return corpus(text)
        }
        guard let prompt = obj["prompt"] as? String, let response = obj["response"] as? String else {
            throw TrainingError.badData("expected \"text\" or \"prompt\" and \"response\" strings: \(line.prefix(80))")
        }
        return interaction(prompt: prompt, response: response, correction: obj["correction"] as? String,
                           feedback: (obj["feedback"] as? String) ?? (obj["feedback"] as? Int).map(String.init))
    }

    /// Reads a `.jsonl` file, a text file, or a folder of them (sorted by name; `.txt`/`.md`
    /// are corpus documents). Bad JSON lines are errors that name the file and line.
    public func load(path: String) throws -> [TrainingExample] {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else { throw TrainingError.badData("\(path) does not exist") }
        if isDir.boolValue {
            let names = try FileManager.default.contentsOfDirectory(atPath: path).sorted()
            let files = names.filter { $0.hasSuffix(".jsonl") || $0.hasSuffix(".txt") || $0.hasSuffix(".md") }
            guard !files.isEmpty else { throw TrainingError.badData("\(path) has no .jsonl, .txt or .md files") }
            return try files.flatMap { try load(path: (path as NSString).appendingPathComponent($0)) }
        }
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
            throw TrainingError.badData("\(path) is not readable UTF-8 text")
        }
        guard path.hasSuffix(".jsonl") else { return text.isEmpty ? [] : [corpus(text)] }
        var out: [TrainingExample] = []
        for (i, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty { continue }
            do {
                if let e = try example(fromJSON: trimmed) { out.append(e) }
            } catch let e as TrainingError {
                throw TrainingError.badData("\(path):\(i + 1): \(e.description)")
            }
        }
        return out
    }
}

/// Examples packed into rows of `seqLen` tokens (sequence packing): the token stream is cut
/// into consecutive rows; targets[i] = next token when that token is learned, else −1.
public struct PackedDataset: Sendable {
    public let seqLen: Int
    public private(set) var rows: [(tokens: [Int32], targets: [Int32])] = []

    public init(examples: [TrainingExample], seqLen: Int, padToken: Int32) {
        self.seqLen = seqLen
        var tokens: [Int32] = [], learn: [Bool] = []
        for e in examples {
            tokens += e.tokens
            learn += e.learn
        }
        var start = 0
        while start + 1 < tokens.count {
            let end = min(tokens.count, start + seqLen + 1)
            var row = Array(tokens[start..<(end - 1)])
            var targets = (start..<(end - 1)).map { learn[$0 + 1] ? tokens[$0 + 1] : Int32(-1) }
            if row.count < seqLen {
                targets += [Int32](repeating: -1, count: seqLen - row.count)
                row += [Int32](repeating: padToken, count: seqLen - row.count)
            }
            if targets.contains(where: { $0 >= 0 }) { rows.append((row, targets)) }
            start = end - 1
        }
    }

    private init(seqLen: Int, rows: [(tokens: [Int32], targets: [Int32])]) {
        self.seqLen = seqLen
        self.rows = rows
    }

    /// Examples packed without padding: the token stream is cut into the fewest rows of at most
    /// `maxSeqLen` tokens, all of one length (the stream's length divided evenly among them);
    /// when it does not divide exactly, the last row ends at the stream's end and overlaps the
    /// row before it by less than a row's count of tokens, learning only the targets no earlier
    /// row learned. A batch then costs about the tokens it holds, not a fixed shape.
    public static func fitted(_ examples: [TrainingExample], maxSeqLen: Int) -> PackedDataset {
        precondition(maxSeqLen > 0, "sequence length must be positive")
        var tokens: [Int32] = [], learn: [Bool] = []
        for e in examples {
            tokens += e.tokens
            learn += e.learn
        }
        let positions = tokens.count - 1
        guard positions > 0 else { return PackedDataset(seqLen: maxSeqLen, rows: []) }
        let rowCount = (positions + maxSeqLen - 1) / maxSeqLen
        let length = (positions + rowCount - 1) / rowCount
        func target(_ i: Int) -> Int32 { learn[i + 1] ? tokens[i + 1] : -1 }
        var rows: [(tokens: [Int32], targets: [Int32])] = []
        var start = 0
        while start < positions {
            let rowStart = min(start, positions - length)
            let targets = (rowStart..<(rowStart + length)).map { $0 >= start ? target($0) : -1 }
            if targets.contains(where: { $0 >= 0 }) { rows.append((Array(tokens[rowStart..<(rowStart + length)]), targets)) }
            start += length
        }
        return PackedDataset(seqLen: length, rows: rows)
    }

    /// Tokens in all rows (what one pass over the dataset computes on).
    public var tokenCount: Int { rows.count * seqLen }

    /// Learned positions in all rows.
    public var targetCount: Int { rows.reduce(0) { $0 + $1.targets.filter { $0 >= 0 }.count } }

    /// The batch made of the given row indices.
    public func batch(_ indices: [Int]) -> TrainingBatch {
        TrainingBatch(tokens: indices.flatMap { rows[$0].tokens }, targets: indices.flatMap { rows[$0].targets },
                      batch: indices.count, seqLen: seqLen)
    }
}
