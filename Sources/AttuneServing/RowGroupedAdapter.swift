import AttuneModel

/// The adapters of a mixed batch: consecutive row ranges, each with its own adapter (or none).
/// The base model's products run once over every row; each group then adds its low-rank term
/// to its own rows only — the gathered shrink (x·A) and expand (·B) of Punica's SGMV, with the
/// rows of one adapter made contiguous by the scheduler so each group is one pair of products.
struct RowGroupedAdapter: LinearAdapter {
    struct Group {
        let rows: Range<Int>
        let adapter: any LinearAdapter
    }

    let config: LlamaConfig
    let groups: [Group]

    func addDelta(layer: Int, target: LinearTarget, x: UnsafePointer<Float>, m: Int, y: UnsafeMutablePointer<Float>) {
        let (out, inFeatures) = target.shape(config)
        for g in groups {
            g.adapter.addDelta(layer: layer, target: target, x: x + g.rows.lowerBound * inFeatures, m: g.rows.count,
                               y: y + g.rows.lowerBound * out)
        }
    }

    func adaptSublayer(layer: Int, afterAttention: Bool, h: UnsafeMutablePointer<Float>, m: Int) {
        for g in groups {
            g.adapter.adaptSublayer(layer: layer, afterAttention: afterAttention, h: h + g.rows.lowerBound * config.dim,
                                    m: g.rows.count)
        }
    }
}
