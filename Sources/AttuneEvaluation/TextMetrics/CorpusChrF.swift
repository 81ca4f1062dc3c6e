/// Corpus chrF with sacreBLEU's defaults (`nrefs:1|case:mixed|eff:yes|nc:6|nw:0|space:no`):
/// character n-grams of orders 1 … 6 over the text with its whitespace removed, statistics
/// summed over the corpus, precision and recall averaged over the orders both sides have,
/// and their F-score with β = 2 (recall weighs more). One reference per hypothesis.
public struct CorpusChrF: Sendable, Equatable {
    public static let order = 6
    public static let beta = 2.0

    /// Per order: hypothesis n-grams (0 when the reference has none), reference n-grams, matches.
    public private(set) var hypothesisGrams = [Int](repeating: 0, count: order)
    public private(set) var referenceGrams = [Int](repeating: 0, count: order)
    public private(set) var matches = [Int](repeating: 0, count: order)

    public init() {}

    public mutating func add(hypothesis: String, reference: String) {
        let hyp = Self.characters(hypothesis), ref = Self.characters(reference)
        for n in 1...Self.order {
            let refCounts = Self.ngrams(ref, n)
            var hypCount = 0, matched = 0
            for (gram, count) in Self.ngrams(hyp, n) {
                hypCount += count
                matched += min(count, refCounts[gram] ?? 0)
            }
            hypothesisGrams[n - 1] += refCounts.isEmpty ? 0 : hypCount
            referenceGrams[n - 1] += refCounts.values.reduce(0, +)
            matches[n - 1] += matched
        }
    }

    /// The score, 0 … 100.
    public var score: Double {
        var precision = 0.0, recall = 0.0, orders = 0
        for n in 0..<Self.order where hypothesisGrams[n] > 0 && referenceGrams[n] > 0 {
            precision += Double(matches[n]) / Double(hypothesisGrams[n])
            recall += Double(matches[n]) / Double(referenceGrams[n])
            orders += 1
        }
        guard orders > 0 else { return 0 }
        precision /= Double(orders)
        recall /= Double(orders)
        guard precision + recall > 0 else { return 0 }
        let b2 = Self.beta * Self.beta
        return 100 * (1 + b2) * precision * recall / (b2 * precision + recall)
    }

    static func characters(_ s: String) -> [Unicode.Scalar] {
        s.unicodeScalars.filter { !CorpusBLEU.isPythonSpace($0) }
    }

    static func ngrams(_ chars: [Unicode.Scalar], _ n: Int) -> [String: Int] {
        var counts: [String: Int] = [:]
        guard chars.count >= n else { return counts }
        for i in 0...(chars.count - n) {
            var gram = String.UnicodeScalarView()
            gram.append(contentsOf: chars[i..<(i + n)])
            counts[String(gram), default: 0] += 1
        }
        return counts
    }
}
