import AttuneGGUF
import Synchronization

/// Why a tokenizer could not be built from model metadata.
public enum TokenizerError: Error, CustomStringConvertible {
    case missing(String)
    case unsupportedModel(String)
    case badMerge(index: Int, text: String)

    public var description: String {
        switch self {
        case .missing(let key): return "tokenizer metadata \(key) is missing or has the wrong type"
        case .unsupportedModel(let m): return "tokenizer model \"\(m)\" is not supported (Attune reads byte-level BPE, \"gpt2\")"
        case .badMerge(let i, let text): return "merge \(i) \"\(text)\" does not name two vocabulary tokens"
        }
    }
}

/// Byte-level BPE (GPT-2 family) with merges applied by rank, special tokens, and an exact
/// byte round trip: `decode(encode(s)) == s` for every string made of bytes the vocabulary
/// spells. A byte with no vocabulary token (SmolLM2 lacks 21, e.g. 0x04 and the never-valid
/// UTF-8 bytes 0xC0, 0xC1, 0xF5–0xFF) is dropped, as Hugging Face `tokenizers` does.
public final class BPETokenizer: Sendable {
    public let tokens: [String]
    public let bosID: Int32?
    public let eosID: Int32
    /// Special (control / user-defined) tokens, longest first, for splitting raw text.
    public let specialTokens: [(text: String, id: Int32)]
    private let vocab: [String: Int32]
    private let merges: [UInt64: (rank: Int32, merged: Int32)]
    private let byteTokens: [Int32?]
    /// Bytes the vocabulary cannot spell (dropped when encoding).
    public let unspellableBytes: [UInt8]
    private let tokenBytes: [[UInt8]]
    private let isSpecial: [Bool]
    private let cache = Mutex<[String: [Int32]]>([:])

    public var vocabularySize: Int { tokens.count }

    /// Builds the tokenizer from `tokenizer.ggml.*` metadata.
    public convenience init(gguf: GGUFFile) throws {
        let model = gguf.metadata["tokenizer.ggml.model"]?.string ?? "gpt2"
        guard model == "gpt2" else { throw TokenizerError.unsupportedModel(model) }
        guard let tokenValues = gguf.metadata["tokenizer.ggml.tokens"]?.array else { throw TokenizerError.missing("tokenizer.ggml.tokens") }
        guard let mergeValues = gguf.metadata["tokenizer.ggml.merges"]?.array else { throw TokenizerError.missing("tokenizer.ggml.merges") }
        let tokens = try tokenValues.map { v -> String in
            guard let s = v.string else { throw TokenizerError.missing("tokenizer.ggml.tokens") }
            return s
        }
        let merges = try mergeValues.map { v -> String in
            guard let s = v.string else { throw TokenizerError.missing("tokenizer.ggml.merges") }
            return s
        }
        let types = gguf.metadata["tokenizer.ggml.token_type"]?.array?.map { $0.int ?? 1 } ?? []
        let eos = gguf.metadata["tokenizer.ggml.eos_token_id"]?.int
        let bos = gguf.metadata["tokenizer.ggml.bos_token_id"]?.int
        guard let eos else { throw TokenizerError.missing("tokenizer.ggml.eos_token_id") }
        try self.init(tokens: tokens, merges: merges, tokenTypes: types, bosID: bos.map(Int32.init), eosID: Int32(eos))
    }

    /// Builds the tokenizer from a vocabulary (id order), merges ("left right", rank order) and
    /// GGUF token types (3 = control, 4 = user-defined are special).
    public init(tokens: [String], merges: [String], tokenTypes: [Int], bosID: Int32?, eosID: Int32) throws {
        self.tokens = tokens
        self.bosID = bosID
        self.eosID = eosID
        var vocab: [String: Int32] = [:]
        for (i, t) in tokens.enumerated() where vocab[t] == nil { vocab[t] = Int32(i) }
        self.vocab = vocab
        var mergeTable: [UInt64: (Int32, Int32)] = [:]
        for (rank, m) in merges.enumerated() {
            let parts = m.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: false)
            guard parts.count == 2, let a = vocab[String(parts[0])], let b = vocab[String(parts[1])],
                  let merged = vocab[String(parts[0]) + String(parts[1])] else {
                throw TokenizerError.badMerge(index: rank, text: m)
            }
            let key = Self.pairKey(a, b)
            if mergeTable[key] == nil { mergeTable[key] = (Int32(rank), merged) }
        }
        self.merges = mergeTable
        var special = [Bool](repeating: false, count: tokens.count)
        var specials: [(String, Int32)] = []
        for (i, t) in tokenTypes.enumerated() where i < tokens.count && (t == 3 || t == 4) {
            special[i] = true
            if !tokens[i].isEmpty { specials.append((tokens[i], Int32(i))) }
        }
        self.isSpecial = special
        self.specialTokens = specials.sorted { $0.0.utf8.count > $1.0.utf8.count }
        self.byteTokens = (0..<256).map { vocab[ByteLevel.encode([UInt8($0)])] }
        self.unspellableBytes = (0..<256).filter { vocab[ByteLevel.encode([UInt8($0)])] == nil }.map(UInt8.init)
        self.tokenBytes = tokens.enumerated().map { i, t in
            special[i] ? Array(t.utf8) : (ByteLevel.decode(t) ?? Array(t.utf8))
        }
    }

    @inline(__always)
    private static func pairKey(_ a: Int32, _ b: Int32) -> UInt64 {
        UInt64(UInt32(bitPattern: a)) << 32 | UInt64(UInt32(bitPattern: b))
    }

    /// Token ids of `text`. With `parseSpecial`, special-token spellings in the text
    /// (e.g. `<|im_start|>`) become their ids; otherwise they are encoded as plain text.
    public func encode(_ text: String, parseSpecial: Bool = false) -> [Int32] {
        var out: [Int32] = []
        if parseSpecial && !specialTokens.isEmpty {
            var rest = Substring(text)
            while !rest.isEmpty {
                if let (pos, special) = firstSpecial(in: rest) {
                    encodePlain(String(rest[..<pos]), into: &out)
                    out.append(special.id)
                    rest = rest[rest.utf8.index(pos, offsetBy: special.text.utf8.count)...]
                } else {
                    encodePlain(String(rest), into: &out)
                    break
                }
            }
        } else {
            encodePlain(text, into: &out)
        }
        return out
    }

    private func firstSpecial(in text: Substring) -> (String.Index, (text: String, id: Int32))? {
        var best: (String.Index, (text: String, id: Int32))?
        for special in specialTokens {
            if let r = text.range(of: special.text), best == nil || r.lowerBound < best!.0 {
                best = (r.lowerBound, special)
            }
        }
        return best
    }

    private func encodePlain(_ text: String, into out: inout [Int32]) {
        for piece in PreTokenizer.split(text) {
            if let cached = cache.withLock({ $0[piece] }) {
                out.append(contentsOf: cached)
                continue
            }
            let ids = bpe(Array(piece.utf8))
            cache.withLock { c in
                if c.count > 100_000 { c.removeAll() }
                c[piece] = ids
            }
            out.append(contentsOf: ids)
        }
    }

    /// Applies merges by rank (lowest first, leftmost on ties) to a word's byte tokens.
    private func bpe(_ bytes: [UInt8]) -> [Int32] {
        var symbols = bytes.compactMap { byteTokens[Int($0)] }
        while symbols.count > 1 {
            var bestRank = Int32.max
            var bestAt = -1
            var bestMerged: Int32 = 0
            for i in 0..<(symbols.count - 1) {
                if let m = merges[Self.pairKey(symbols[i], symbols[i + 1])], m.rank < bestRank {
                    bestRank = m.rank
                    bestAt = i
                    bestMerged = m.merged
                }
            }
            if bestAt < 0 { break }
            symbols[bestAt] = bestMerged
            symbols.remove(at: bestAt + 1)
        }
        return symbols
    }

    /// The raw bytes of a token sequence (special tokens as their spelling unless skipped).
    public func decodeBytes(_ ids: [Int32], skipSpecial: Bool = false) -> [UInt8] {
        var out: [UInt8] = []
        for id in ids where id >= 0 && Int(id) < tokenBytes.count {
            if skipSpecial && isSpecial[Int(id)] { continue }
            out.append(contentsOf: tokenBytes[Int(id)])
        }
        return out
    }

    /// Text of a token sequence; invalid UTF-8 (a sequence cut mid-character) is repaired with U+FFFD.
    public func decode(_ ids: [Int32], skipSpecial: Bool = false) -> String {
        String(decoding: decodeBytes(ids, skipSpecial: skipSpecial), as: UTF8.self)
    }

    /// The raw bytes of one token.
    public func bytes(of id: Int32) -> [UInt8] {
        guard id >= 0, Int(id) < tokenBytes.count else { return [] }
        return tokenBytes[Int(id)]
    }

    public func isSpecialToken(_ id: Int32) -> Bool {
        id >= 0 && Int(id) < isSpecial.count && isSpecial[Int(id)]
    }

    /// The id of a token spelled exactly `text` in the vocabulary.
    public func tokenID(_ text: String) -> Int32? { vocab[text] }
}
