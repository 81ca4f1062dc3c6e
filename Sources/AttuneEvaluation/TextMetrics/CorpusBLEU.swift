import Foundation

/// Corpus BLEU with sacreBLEU's defaults (signature `nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp`):
/// the `13a` tokenization of mteval-v13a, n-grams up to 4 counted over the whole corpus
/// (clipped by the reference's counts), NIST "exp" smoothing of empty orders, and the brevity
/// penalty on the corpus lengths. One reference per hypothesis.
public struct CorpusBLEU: Sendable, Equatable {
    public static let maxOrder = 4

    /// Matched n-grams of each order, 1 … 4.
    public private(set) var correct = [Int](repeating: 0, count: maxOrder)
    /// Hypothesis n-grams of each order.
    public private(set) var total = [Int](repeating: 0, count: maxOrder)
    public private(set) var hypothesisLength = 0
    public private(set) var referenceLength = 0

    public init() {}

    /// Adds one hypothesis and its reference.
    public mutating func add(hypothesis: String, reference: String) {
        let hyp = Self.words(Self.tokenize13a(hypothesis))
        let ref = Self.words(Self.tokenize13a(reference))
        hypothesisLength += hyp.count
        referenceLength += ref.count
        for n in 1...Self.maxOrder {
            let refCounts = Self.ngrams(ref, n)
            for (gram, count) in Self.ngrams(hyp, n) {
                total[n - 1] += count
                correct[n - 1] += min(count, refCounts[gram] ?? 0)
            }
        }
    }

    /// Per-order precisions in percent, after smoothing.
    public var precisions: [Double] {
        var out = [Double](repeating: 0, count: Self.maxOrder)
        var smooth = 1.0
        for n in 0..<Self.maxOrder {
            guard total[n] > 0 else { break }
            if correct[n] == 0 {
                smooth *= 2
                out[n] = 100 / (smooth * Double(total[n]))
            } else {
                out[n] = 100 * Double(correct[n]) / Double(total[n])
            }
        }
        return out
    }

    public var brevityPenalty: Double {
        guard hypothesisLength < referenceLength else { return 1 }
        return hypothesisLength > 0 ? exp(1 - Double(referenceLength) / Double(hypothesisLength)) : 0
    }

    /// The score, 0 … 100 (0 when nothing matches, as sacreBLEU reports it).
    public var score: Double {
        guard correct.contains(where: { $0 > 0 }) else { return 0 }
        let logs = precisions.map { $0 > 0 ? log($0) : -9_999_999_999 }
        return brevityPenalty * exp(logs.reduce(0, +) / Double(Self.maxOrder))
    }

    /// The `13a` tokenization: unescapes four XML entities, then splits off punctuation and
    /// symbols, periods and commas not between digits, and a dash after a digit.
    public static func tokenize13a(_ line: String) -> String {
        var s = line
        while let last = s.unicodeScalars.last, Self.isPythonSpace(last) { s.unicodeScalars.removeLast() }
        s = s.replacingOccurrences(of: "<skipped>", with: "")
            .replacingOccurrences(of: "-\n", with: "")
            .replacingOccurrences(of: "\n", with: " ")
        if s.contains("&") {
            s = s.replacingOccurrences(of: "&quot;", with: "\"").replacingOccurrences(of: "&amp;", with: "&")
                .replacingOccurrences(of: "&lt;", with: "<").replacingOccurrences(of: "&gt;", with: ">")
        }
        s = " \(s) "
        for (pattern, template) in rules {
            s = pattern.stringByReplacingMatches(in: s, range: NSRange(s.startIndex..., in: s), withTemplate: template)
        }
        return words(s).joined(separator: " ")
    }

    private nonisolated(unsafe) static let rules: [(NSRegularExpression, String)] = [
        (#"([\{-\~\[-\` -\&\(-\+\:-\@\/])"#, " $1 "),
        (#"([^0-9])([\.,])"#, "$1 $2 "),
        (#"([\.,])([^0-9])"#, " $1 $2"),
        (#"([0-9])(-)"#, "$1 $2 "),
    ].map { (try! NSRegularExpression(pattern: $0.0), $0.1) }

    static func words(_ s: String) -> [Substring] {
        s.split(whereSeparator: { $0.unicodeScalars.allSatisfy(isPythonSpace) })
    }

    /// Python's `str.isspace` on one scalar (what sacreBLEU's `split()` splits on).
    static func isPythonSpace(_ c: Unicode.Scalar) -> Bool {
        (0x09...0x0D).contains(c.value) || (0x1C...0x1F).contains(c.value) || c.properties.isWhitespace
    }

    static func ngrams(_ words: [Substring], _ n: Int) -> [[Substring]: Int] {
        var counts: [[Substring]: Int] = [:]
        guard words.count >= n else { return counts }
        for i in 0...(words.count - n) { counts[Array(words[i..<(i + n)]), default: 0] += 1 }
        return counts
    }
}
