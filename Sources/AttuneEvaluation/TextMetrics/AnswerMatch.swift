/// Exact match and token F1 of an answer against a reference, after the normalization of the
/// SQuAD evaluation: lowercase, punctuation removed, the articles a/an/the removed, whitespace
/// collapsed. F1 counts the tokens the two share (as multisets).
public enum AnswerMatch {
    public static func normalize(_ text: String) -> [String] {
        let lowered = text.lowercased()
        var kept = String.UnicodeScalarView()
        for c in lowered.unicodeScalars where !punctuation.contains(c) { kept.append(c) }
        return String(kept).split(whereSeparator: { $0.isWhitespace }).map(String.init)
            .filter { !["a", "an", "the"].contains($0) }
    }

    public static func exactMatch(_ answer: String, _ reference: String) -> Bool {
        normalize(answer) == normalize(reference)
    }

    /// Token F1 in 0 … 1 (1 when both are empty after normalization).
    public static func tokenF1(_ answer: String, _ reference: String) -> Double {
        let a = normalize(answer), r = normalize(reference)
        if a.isEmpty || r.isEmpty { return a.isEmpty && r.isEmpty ? 1 : 0 }
        var counts: [String: Int] = [:]
        for t in r { counts[t, default: 0] += 1 }
        var common = 0
        for t in a where (counts[t] ?? 0) > 0 {
            counts[t]! -= 1
            common += 1
        }
        guard common > 0 else { return 0 }
        let precision = Double(common) / Double(a.count), recall = Double(common) / Double(r.count)
        return 2 * precision * recall / (precision + recall)
    }

    /// ASCII punctuation and symbols (Python's `string.punctuation`).
    private static let punctuation = Set(##"!"#$%&'()*+,-./:;<=>?@[\]^_`{|}~"##.unicodeScalars)
}
