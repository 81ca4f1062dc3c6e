import AttuneTensor

/// RoPE on adjacent pairs. The rotation is orthogonal, so its backward is the rotation by −θ.
enum RotaryLayer {
    /// Rotates every row of `x` (`rows` × heads·headDim) at position `row % seqLen`.
    static func forward(_ x: UnsafeMutablePointer<Float>, rows: Int, seqLen: Int, heads: Int, headDim: Int, table: RopeTable) {
        apply(x, rows: rows, seqLen: seqLen, heads: heads, headDim: headDim, table: table, sign: 1)
    }

    /// Turns dL/d(rotated) into dL/d(unrotated) in place.
    static func backward(_ dx: UnsafeMutablePointer<Float>, rows: Int, seqLen: Int, heads: Int, headDim: Int, table: RopeTable) {
        apply(dx, rows: rows, seqLen: seqLen, heads: heads, headDim: headDim, table: table, sign: -1)
    }

    private static func apply(_ x: UnsafeMutablePointer<Float>, rows: Int, seqLen: Int, heads: Int, headDim: Int,
                              table: RopeTable, sign: Float) {
        let half = headDim / 2
        for r in 0..<rows {
            let pos = r % seqLen
            let cs = table.cos + pos * half, sn = table.sin + pos * half
            for h in 0..<heads {
                let v = x + r * heads * headDim + h * headDim
                for i in 0..<half {
                    let a = v[2 * i], b = v[2 * i + 1], s = sign * sn[i]
                    v[2 * i] = a * cs[i] - b * s
                    v[2 * i + 1] = a * s + b * cs[i]
                }
            }
        }
    }
}
