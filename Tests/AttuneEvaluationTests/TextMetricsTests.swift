import AttuneEvaluation
import Foundation
import Testing

/// BLEU, chrF, exact match and token F1 against hand-computed cases and against sacreBLEU
/// (PyPI) on the same strings.
@Suite struct TextMetricsTests {
    @Test func bleuByHand() {
        var perfect = CorpusBLEU()
        perfect.add(hypothesis: "the cat sat on the mat", reference: "the cat sat on the mat")
        #expect(abs(perfect.score - 100) < 1e-9)

        // 1-grams 3/4, 2-grams 2/3, 3-grams 1/2, 4-grams 0/1 → smoothed to 1/(2·1):
        // (75 · 66.67 · 50 · 50)^¼ = 12.5e6^¼ = 59.4604, no brevity penalty.
        var partial = CorpusBLEU()
        partial.add(hypothesis: "a b c d", reference: "a b c e")
        #expect(partial.correct == [3, 2, 1, 0] && partial.total == [4, 3, 2, 1])
        #expect(abs(partial.score - pow(12_500_000, 0.25)) < 1e-9)

        // Half the reference's length: brevity penalty e^(1 − 2) on an otherwise perfect match.
        var short = CorpusBLEU()
        short.add(hypothesis: "a b c d", reference: "a b c d a b c d")
        #expect(abs(short.score - 100 * exp(-1)) < 1e-9)

        var nothing = CorpusBLEU()
        nothing.add(hypothesis: "x y", reference: "a b")
        #expect(nothing.score == 0)
    }

    @Test func thirteenATokenization() {
        #expect(CorpusBLEU.tokenize13a("Hello, world! It's 3.5-4 km.") == "Hello , world ! It's 3.5 - 4 km .")
        #expect(CorpusBLEU.tokenize13a("a&amp;b (x) [y] {z} $5, 1,000.") == "a & b ( x ) [ y ] { z } $ 5 , 1,000 .")
    }

    @Test func chrFByHand() {
        var same = CorpusChrF()
        same.add(hypothesis: "a b", reference: "ab")
        #expect(abs(same.score - 100) < 1e-9, "whitespace is not part of the n-grams")

        // Order 1: 1 of 2 match (P = R = ½); order 2: none (P = R = 0); orders 3–6: the
        // reference has none, so they do not count. Averages P = R = ¼ → F2 = ¼.
        var half = CorpusChrF()
        half.add(hypothesis: "ab", reference: "ac")
        #expect(abs(half.score - 25) < 1e-9)
    }

    @Test func exactMatchAndTokenF1() {
        #expect(AnswerMatch.exactMatch("The cat.", "cat"))
        #expect(!AnswerMatch.exactMatch("a cat", "cats"))
        #expect(abs(AnswerMatch.tokenF1("a big cat", "the cat sat") - 0.5) < 1e-12)
        #expect(AnswerMatch.tokenF1("", "") == 1 && AnswerMatch.tokenF1("x", "") == 0)
        #expect(abs(AnswerMatch.tokenF1("cat cat dog", "cat dog dog") - 2.0 / 3.0) < 1e-12, "tokens are matched as multisets")
    }

    static let pairs: [(String, String)] = [
        ("The contract ends on 31 December 2026.", "The contract ends on December 31, 2026."),
        ("Short answer: yes, you can.", "Short answer: yes."),
        ("Pay 1,500.50 EUR within 30 days!", "Payment of 1,500.50 EUR is due within 30 days."),
        ("It's a well-known fact (see §4).", "It is a well-known fact, see section 4."),
        ("", "An empty answer scores nothing."),
        ("Völlig übereinstimmend — naïve café.", "Völlig übereinstimmend — naive cafe."),
        ("x", "A reference much longer than its hypothesis, to test the brevity penalty."),
        ("a&amp;b <tag> \"quoted\" 3-4", "a & b <tag> \"quoted\" 3 - 4"),
        ("The tenant's adapter learns each interaction.", "The tenant's adapter learns every interaction quickly."),
        ("Checklist:\n1. Wash\n2. Dry", "Checklist: 1. Wash 2. Dry 3. Fold"),
    ]

    @Test func agreesWithSacreBLEU() throws {
        guard let reference = try sacreBLEU(Self.pairs) else { return }
        var bleu = CorpusBLEU(), chrF = CorpusChrF()
        for (h, r) in Self.pairs {
            bleu.add(hypothesis: h, reference: r)
            chrF.add(hypothesis: h, reference: r)
        }
        #expect(abs(bleu.score - reference.bleu) < 1e-9, "BLEU \(bleu.score) vs sacreBLEU \(reference.bleu)")
        #expect(abs(chrF.score - reference.chrF) < 1e-9, "chrF \(chrF.score) vs sacreBLEU \(reference.chrF)")
        // Each pair alone too: corpus statistics of one segment.
        for (i, (h, r)) in Self.pairs.enumerated() {
            var b = CorpusBLEU(), c = CorpusChrF()
            b.add(hypothesis: h, reference: r)
            c.add(hypothesis: h, reference: r)
            #expect(abs(b.score - reference.segmentBLEU[i]) < 1e-9, "pair \(i): BLEU \(b.score) vs \(reference.segmentBLEU[i])")
            #expect(abs(c.score - reference.segmentChrF[i]) < 1e-9, "pair \(i): chrF \(c.score) vs \(reference.segmentChrF[i])")
        }
    }
}

/// sacreBLEU's corpus scores of `pairs` (and of each pair as a one-segment corpus), or nil when
/// it is not installed (`pip install sacrebleu`) and ATTUNE_REQUIRE_SACREBLEU is not set.
func sacreBLEU(_ pairs: [(String, String)]) throws -> (bleu: Double, chrF: Double, segmentBLEU: [Double], segmentChrF: [Double])? {
    let script = """
    import json, sys
    try:
        import sacrebleu
    except ImportError:
        print("missing"); sys.exit(0)
    pairs = json.load(sys.stdin)
    hyps, refs = [h for h, _ in pairs], [r for _, r in pairs]
    print(json.dumps({
        "bleu": sacrebleu.corpus_bleu(hyps, [refs]).score,
        "chrf": sacrebleu.corpus_chrf(hyps, [refs]).score,
        "segment_bleu": [sacrebleu.corpus_bleu([h], [[r]]).score for h, r in pairs],
        "segment_chrf": [sacrebleu.corpus_chrf([h], [[r]]).score for h, r in pairs],
    }))
    """
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["python3", "-c", script]
    let input = Pipe(), output = Pipe()
    process.standardInput = input
    process.standardOutput = output
    try process.run()
    input.fileHandleForWriting.write(try JSONSerialization.data(withJSONObject: pairs.map { [$0.0, $0.1] }))
    try input.fileHandleForWriting.close()
    let data = output.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    let text = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    if text == "missing" || process.terminationStatus != 0 {
        if ProcessInfo.processInfo.environment["ATTUNE_REQUIRE_SACREBLEU"] == "1" {
            Issue.record("sacrebleu is required (ATTUNE_REQUIRE_SACREBLEU=1) but python3 -c 'import sacrebleu' failed")
        }
        return nil
    }
    let object = try JSONSerialization.jsonObject(with: Data(text.utf8)) as! [String: Any]
    return (object["bleu"] as! Double, object["chrf"] as! Double, object["segment_bleu"] as! [Double], object["segment_chrf"] as! [Double])
}
