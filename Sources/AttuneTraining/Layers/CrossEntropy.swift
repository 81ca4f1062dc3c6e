import AttuneTensor

/// Mean next-token cross-entropy over selected rows of logits, and its gradient.
enum CrossEntropy {
    /// Replaces `logits` (rows × vocab) by dL/dlogits for L = (1/normalizer)·Σ −log softmax(row)[target];
    /// returns Σ −log p(target) (not normalized).
    static func lossAndGradient(_ logits: UnsafeMutablePointer<Float>, targets: [Int32], vocab: Int, normalizer: Float) -> Double {
        let inv = 1 / normalizer
        var losses = [Double](repeating: 0, count: targets.count)
        losses.withUnsafeMutableBufferPointer { losses in
            // Rows split across the cores (each row alone, so the split changes no bit); the
            // losses are summed in row order below.
            Parallel.chunks(targets.count, minPerChunk: 8) { rows in
                for r in rows {
                    let t = Int(targets[r])
                    let row = logits + r * vocab
                    Ops.logSoftmax(row, vocab, out: row)
                    losses[r] = -Double(row[t])
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
                    row[t] -= inv
                }
            }
        }
        return losses.reduce(0, +)
    }
}
