/// Turns a stream of token ids into text pieces, holding back bytes of an incomplete UTF-8
/// character until the token that completes it arrives.
public struct StreamingDecoder {
    private let tokenizer: BPETokenizer
    private var pending: [UInt8] = []

    public init(tokenizer: BPETokenizer) {
        self.tokenizer = tokenizer
    }

    /// Text that became complete with this token (may be empty).
    public mutating func push(_ id: Int32) -> String {
        pending.append(contentsOf: tokenizer.bytes(of: id))
        let complete = Self.completePrefixLength(pending)
        let text = String(decoding: pending[..<complete], as: UTF8.self)
        pending.removeFirst(complete)
        return text
    }

    /// Whatever is left, repaired with U+FFFD if incomplete.
    public mutating func finish() -> String {
        defer { pending.removeAll() }
        return String(decoding: pending, as: UTF8.self)
    }

    /// Length of the longest prefix that does not end inside a UTF-8 sequence.
    static func completePrefixLength(_ b: [UInt8]) -> Int {
        var i = b.count
        var back = 0
        while i > 0, back < 4 {
            let c = b[i - 1]
            if c & 0xC0 == 0x80 {
                i -= 1
                back += 1
                continue
            }
            let need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1
            return need > back + 1 ? i - 1 : b.count
        }
        return b.count
    }
}
