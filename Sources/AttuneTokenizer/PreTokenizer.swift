/// The `smollm` pre-tokenizer: every numeric character is split off on its own, then each
/// piece is split by the GPT-2 pattern
/// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`,
/// implemented as a hand-written scanner over Unicode scalars (leftmost alternative wins).
public enum PreTokenizer {
    public static func split(_ text: String) -> [String] {
        var out: [String] = []
        var piece: [Unicode.Scalar] = []
        for s in text.unicodeScalars {
            if isNumber(s) {
                splitPiece(piece, into: &out)
                piece.removeAll(keepingCapacity: true)
                out.append(String(Character(s)))
            } else {
                piece.append(s)
            }
        }
        splitPiece(piece, into: &out)
        return out
    }

    static func isLetter(_ s: Unicode.Scalar) -> Bool {
        switch s.properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return true
        default: return false
        }
    }

    static func isNumber(_ s: Unicode.Scalar) -> Bool {
        switch s.properties.generalCategory {
        case .decimalNumber, .letterNumber, .otherNumber: return true
        default: return false
        }
    }

    static func isSpace(_ s: Unicode.Scalar) -> Bool { s.properties.isWhitespace }

    static func isOther(_ s: Unicode.Scalar) -> Bool { !isSpace(s) && !isLetter(s) && !isNumber(s) }

    private static func splitPiece(_ s: [Unicode.Scalar], into out: inout [String]) {
        let n = s.count
        var i = 0
        func emit(_ end: Int) {
            var view = String.UnicodeScalarView()
            view.append(contentsOf: s[i..<end])
            out.append(String(view))
            i = end
        }
        /// End of ` ?class+` starting at i, or nil.
        func run(_ cls: (Unicode.Scalar) -> Bool) -> Int? {
            var j = i
            if s[j] == " ", j + 1 < n, cls(s[j + 1]) { j += 1 }
            guard cls(s[j]) else { return nil }
            while j < n, cls(s[j]) { j += 1 }
            return j
        }
        while i < n {
            if s[i] == "'", i + 1 < n {
                let a = s[i + 1]
                if a == "s" || a == "t" || a == "m" || a == "d" {
                    emit(i + 2)
                    continue
                }
                if i + 2 < n {
                    let b = s[i + 2]
                    if (a == "r" && b == "e") || (a == "v" && b == "e") || (a == "l" && b == "l") {
                        emit(i + 3)
                        continue
                    }
                }
            }
            if let end = run(isLetter) ?? run(isNumber) ?? run(isOther) {
                emit(end)
                continue
            }
            var k = i
            while k < n, isSpace(s[k]) { k += 1 }
            if k < n, k - i >= 2 {
                emit(k - 1)
            } else {
                emit(k)
            }
        }
    }
}
