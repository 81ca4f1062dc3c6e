import AttuneGGUF
import AttuneModel
import Foundation
import Testing
@testable import AttuneTokenizer

/// A small byte-level BPE built in the test: all 256 byte tokens, a few merges, two specials.
private func tinyTokenizer() throws -> BPETokenizer {
    var tokens = ["<|im_start|>", "<|im_end|>"]
    tokens += (0..<256).map { ByteLevel.encode([UInt8($0)]) }
    let merges = ["h e", "l l", "he ll", "hell o", "Ġ w", "Ġw o", "r l", "Ġwo rl", "Ġworl d"]
    for m in merges { tokens.append(m.replacingOccurrences(of: " ", with: "")) }
    return try BPETokenizer(tokens: tokens, merges: merges, tokenTypes: [3, 3] + Array(repeating: 1, count: tokens.count - 2),
                            bosID: 0, eosID: 1)
}

@Test func mergesApplyByRank() throws {
    let t = try tinyTokenizer()
    let ids = t.encode("hello world")
    #expect(ids.map { t.tokens[Int($0)] } == ["hello", "Ġworld"])
    #expect(t.decode(ids) == "hello world")
}

@Test func specialTokensAreParsedOnlyWhenAsked() throws {
    let t = try tinyTokenizer()
    let text = "<|im_start|>hello<|im_end|>"
    #expect(t.encode(text, parseSpecial: true) == [0] + t.encode("hello") + [1])
    #expect(!t.encode(text).contains(0))
    #expect(t.decode(t.encode(text, parseSpecial: true)) == text)
    #expect(t.decode(t.encode(text, parseSpecial: true), skipSpecial: true) == "hello")
}

@Test func preTokenizerFollowsTheGPT2PatternWithSplitDigits() {
    #expect(PreTokenizer.split("Hello world") == ["Hello", " world"])
    #expect(PreTokenizer.split("don't stop") == ["don", "'t", " stop"])
    #expect(PreTokenizer.split("year 2026!") == ["year", " ", "2", "0", "2", "6", "!"])
    #expect(PreTokenizer.split("a  b") == ["a", " ", " b"])
    #expect(PreTokenizer.split("a\n\nb") == ["a", "\n", "\n", "b"])
    #expect(PreTokenizer.split("x   ") == ["x", "   "])
    #expect(PreTokenizer.split(" ?!x") == [" ?!", "x"])
    #expect(PreTokenizer.split("héllo wörld") == ["héllo", " wörld"])
}

/// decode(encode(s)) == s for random strings over ASCII, Latin, CJK, emoji and joiners.
@Test func roundTripIsExactOnRandomUnicode() throws {
    let t = try tinyTokenizer()
    let alphabet: [String] = ["a", "Z", " ", "  ", "\n", "\t", "1", "9", "'", "'s", "!", "é", "ß", "日", "本", "🙂", "👍🏽",
                              "\u{200D}", "🇫🇷", "\u{0301}", "\u{00A0}", "<", "|", "Ω", "\u{10FFFF}", "\u{0}"]
    var rng = TestLCG(state: 99)
    for _ in 0..<500 {
        var s = ""
        for _ in 0..<Int.random(in: 0...24, using: &rng) {
            s += alphabet[Int.random(in: 0..<alphabet.count, using: &rng)]
        }
        #expect(t.decode(t.encode(s)) == s)
        #expect(t.decodeBytes(t.encode(s)) == Array(s.utf8))
    }
}

/// A linear congruential generator for reproducible random test strings.
private struct TestLCG: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        return state
    }
}

@Test func streamingDecoderHoldsBackSplitCharacters() throws {
    let t = try tinyTokenizer()
    let ids = t.encode("🙂é")
    #expect(ids.count == 6, "byte tokens only: no merges apply")
    var d = StreamingDecoder(tokenizer: t)
    let pieces = ids.map { d.push($0) }
    #expect(pieces == ["", "", "", "🙂", "", "é"])
    #expect(d.finish() == "")
    var cut = StreamingDecoder(tokenizer: t)
    _ = cut.push(ids[0])
    #expect(cut.finish() == "\u{FFFD}")
}

@Test func chatTemplateMatchesChatML() {
    let text = ChatTemplate.render([ChatMessage(role: "user", content: "Hi")])
    #expect(text == "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")
    let withSystem = ChatTemplate.render([ChatMessage(role: "system", content: "S"), ChatMessage(role: "user", content: "U")],
                                         addGenerationPrompt: false)
    #expect(withSystem == "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n")
}

@Test func badMergesAreRejected() {
    #expect(throws: TokenizerError.self) {
        try BPETokenizer(tokens: ["a", "b"], merges: ["a c"], tokenTypes: [], bosID: nil, eosID: 0)
    }
}

private struct GoldenCase: Decodable {
    let text: String
    let ids: [Int32]
    let ids_special: [Int32]
}

private struct GoldenFile: Decodable { let cases: [GoldenCase] }

/// Token ids on the real SmolLM2 vocabulary equal Hugging Face `tokenizers` (golden file made
/// by ops/reference/tokenizer_golden.py), with and without special-token parsing.
@Test func matchesHuggingFaceTokenizersOnSmolLM2() throws {
    guard let path = try BaseModelStore.forChecks() else { return }
    let t = try BPETokenizer(gguf: try GGUFFile(path: path))
    let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Golden/smollm2_tokens.json")
    let golden = try JSONDecoder().decode(GoldenFile.self, from: Data(contentsOf: url))
    #expect(golden.cases.count >= 20)
    for c in golden.cases {
        #expect(t.encode(c.text) == c.ids, "\(c.text.debugDescription)")
        #expect(t.encode(c.text, parseSpecial: true) == c.ids_special, "\(c.text.debugDescription)")
        #expect(t.decode(c.ids) == c.text)
    }
    #expect(t.unspellableBytes.contains(0x04) && t.unspellableBytes.contains(0xFF))
    #expect(t.encode("a\u{4}b") == t.encode("a") + t.encode("b"), "a byte without a token is dropped, as in HF tokenizers")
}
