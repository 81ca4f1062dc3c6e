import AttuneTokenizer

/// Letters, digits, space, newline and a little punctuation, unused fillers, and the ChatML
/// specials: the 80 ids of the tiny test models.
public let testVocabulary: (tokens: [String], types: [Int], eos: Int) = {
    let chars = Array(" \nabcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,?'-".utf8)
    var tokens = chars.map { ByteLevel.encode([$0]) }
    tokens += (0..<(78 - tokens.count)).map { "<unused\($0)>" } + ["<|im_start|>", "<|im_end|>"]
    return (tokens, Array(repeating: 1, count: 78) + [3, 3], 79)
}()

/// A merge-free tokenizer over `testVocabulary`.
public func testTokenizer() throws -> BPETokenizer {
    try BPETokenizer(tokens: testVocabulary.tokens, merges: [], tokenTypes: testVocabulary.types, bosID: 78, eosID: Int32(testVocabulary.eos))
}
