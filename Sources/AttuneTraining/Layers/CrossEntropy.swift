import AttuneTensor

/// Mean next-token cross-entropy over selected rows of logits, and its gradient.
enum CrossEntropy {
    /// Replaces `logits` (rows × vocab) by dL/dlogits for L = (1/normalizer)·Σ −log softmax(row)[target];
    /// returns Σ −log p(target) (not normalized).
    static func lossAndGradient(_ logits: UnsafeMutablePointer<Float>, targets: [Int32], vocab: Int, normalizer: Float) -> Double {
        var total = 0.0
        let inv = 1 / normalizer
        for (r, t) in targets.enumerated() {
            let row = logits + r * vocab
            Ops.logSoftmax(row, vocab, out: row)
            total -= Double(row[Int(t)])
            let raw = UnsafeMutableRawPointer(row)
            var i = 0
            while i + 8 <= vocab {
                let lp = raw.loadUnaligned(fromByteOffset: 4 * i, as: SIMD8<Float>.self)
                raw.storeBytes(of: exp8(lp) * inv, toByteOffset: 4 * i, as: SIMD8<Float>.self)
                i += 8
            }
            while i < vocab {
                row[i] = exp8(SIMD8(repeating: row[i]))[0] * inv
                i += 1
            }
            row[Int(t)] -= inv
        }
        return total
    }
}
