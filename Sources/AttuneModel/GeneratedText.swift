import AttuneTokenizer

/// The text of a generation as its tokens arrive: decoded incrementally (whole UTF-8
/// characters only), cut at the first stop string (which is not returned), and released in
/// pieces that hold back as many characters as the longest stop string, so nothing already
/// released is ever cut.
public struct GeneratedText {
    public private(set) var text = ""
    private var emitted = 0
    private var decoder: StreamingDecoder
    private let stop: [String]
    private let holdBack: Int

    public init(tokenizer: BPETokenizer, stop: [String]) {
        decoder = StreamingDecoder(tokenizer: tokenizer)
        self.stop = stop
        holdBack = stop.map(\.count).max() ?? 0
    }

    /// Adds a generated token; returns the text that can be released now and whether a stop
    /// string ended the generation (the text before it is then released by `finish`).
    public mutating func push(_ token: Int32) -> (piece: String, stopped: Bool) {
        text += decoder.push(token)
        for s in stop {
            if let r = text.range(of: s) {
                text = String(text[..<r.lowerBound])
                return ("", true)
            }
        }
        let safe = text.count - holdBack
        guard safe > emitted else { return ("", false) }
        let piece = String(text.dropFirst(emitted).prefix(safe - emitted))
        emitted = safe
        return (piece, false)
    }

    /// What is left to release when the generation ends; `flush` also decodes a trailing
    /// partial character (generation ended by its length).
    public mutating func finish(flush: Bool) -> String {
        if flush { text += decoder.finish() }
        guard text.count > emitted else { return "" }
        let rest = String(text.dropFirst(emitted))
        emitted = text.count
        return rest
    }
}
