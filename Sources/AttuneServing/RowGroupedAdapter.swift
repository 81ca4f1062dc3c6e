import AttuneModel
import AttuneTensor

/// The adapters of a mixed batch, level by level: each level is consecutive row ranges with
/// one adapter each (level 0: the domain versions, level 1: the tenant versions stacked on
/// them). The base model's products run once over every row; each group then adds its
/// low-rank terms to its own rows only — the gathered shrink (x·A) and expand (·B) of Punica's
/// SGMV. The scheduler orders rows by (domain version, tenant version), so the tenants of one
/// domain share one domain group: its product runs once over all their rows.
struct RowGroupedAdapter: LinearAdapter {
    struct Group {
        let rows: Range<Int>
        let adapter: any LinearAdapter
    }

    /// One group of a batch whose adapters are all a server's LoRAs (`ServingLoRA`, whose kernel
    /// computes each row by the same operations whatever m is, so rows may be split across calls
    /// and cores without changing a bit), held unretained (the groups keep them alive): the
    /// decode walk visits every group for every projection of every layer, and retaining each on
    /// the way cost 3% of a step.
    private struct ServingGroup {
        let rows: Range<Int>
        let lora: Unmanaged<ServingLoRA>
    }

    let config: LlamaConfig
    let levels: [[Group]]
    /// Every level's groups in order when all are a server's LoRAs, else nil.
    private let servingWalk: [ServingGroup]?

    /// Groups rows level by level: `stacks[i]` is the (id, adapter) stack of the i-th
    /// sequence, lowest first, and `rows[i]` its rows; consecutive sequences with the same id
    /// at a level share a group.
    init(config: LlamaConfig, stacks: [[(id: String, adapter: any LinearAdapter)]], rows: [Range<Int>]) {
        self.config = config
        var levels: [[Group]] = []
        for level in 0..<(stacks.map(\.count).max() ?? 0) {
            var groups: [Group] = []
            var lastID: String?
            for (stack, range) in zip(stacks, rows) where stack.count > level {
                let (id, adapter) = stack[level]
                if id == lastID, let last = groups.last, last.rows.upperBound == range.lowerBound {
                    groups[groups.count - 1] = Group(rows: last.rows.lowerBound..<range.upperBound, adapter: adapter)
                } else {
                    groups.append(Group(rows: range, adapter: adapter))
                }
                lastID = id
            }
            levels.append(groups)
        }
        self.levels = levels
        let all = levels.joined()
        servingWalk = all.allSatisfy({ $0.adapter is ServingLoRA })
            ? all.map { ServingGroup(rows: $0.rows, lora: .passUnretained($0.adapter as! ServingLoRA)) } : nil
    }

    func addDelta(layer: Int, target: LinearTarget, x: UnsafePointer<Float>, m: Int, y: UnsafeMutablePointer<Float>) {
        addDeltas(layer: layer, targets: [(target, y)], x: x, m: m)
    }

    /// When every adapter is a server's LoRA (which computes each row alone), the
    /// rows are split across the cores once for all levels and targets: each piece adds its rows'
    /// terms level by level (domain, then tenant), the order a row gets alone, so each row gets
    /// the same bits in any split; a group adds all targets before the next group, reading its
    /// adapter's weights for them (contiguous per layer) as one stream while the next group's
    /// weights are loaded.
    /// Other adapters go level by level, and split only a level of single-row groups (decode: one
    /// tenant, one sequence), where each group is one row's small product either way.
    func addDeltas(layer: Int, targets: [(LinearTarget, UnsafeMutablePointer<Float>)], x: UnsafePointer<Float>, m: Int) {
        let inFeatures = targets[0].0.shape(config).in
        if m > 1, let walk = servingWalk {
            func add(_ rows: Range<Int>, _ lora: Unmanaged<ServingLoRA>, loading next: Unmanaged<ServingLoRA>?) {
                for (target, y) in targets {
                    let (xr, yr) = (x + rows.lowerBound * inFeatures, y + rows.lowerBound * target.shape(config).out)
                    lora._withUnsafeGuaranteedRef { $0.addDelta(layer: layer, target: target, x: xr, m: rows.count, y: yr, loading: next) }
                }
            }
            Parallel.pieces(m, minPerPiece: 2) { part in
                var pending: ServingGroup?
                for g in walk {
                    let rows = g.rows.clamped(to: part)
                    if rows.isEmpty { continue }
                    if let p = pending { add(p.rows, p.lora, loading: g.lora) }
                    pending = ServingGroup(rows: rows, lora: g.lora)
                }
                if let p = pending { add(p.rows, p.lora, loading: nil) }
            }
            return
        }
        func add(_ g: Group) {
            for (target, y) in targets {
                g.adapter.addDelta(layer: layer, target: target, x: x + g.rows.lowerBound * inFeatures,
                                   m: g.rows.count, y: y + g.rows.lowerBound * target.shape(config).out)
            }
        }
        for groups in levels {
            if groups.count > 1 && groups.allSatisfy({ $0.rows.count == 1 }) {
                Parallel.pieces(groups.count, minPerPiece: 2) { range in
                    for g in groups[range] { add(g) }
                }
            } else {
                for g in groups { add(g) }
            }
        }
    }

    func adaptSublayer(layer: Int, afterAttention: Bool, h: UnsafeMutablePointer<Float>, m: Int) {
        for groups in levels {
            for g in groups {
                g.adapter.adaptSublayer(layer: layer, afterAttention: afterAttention, h: h + g.rows.lowerBound * config.dim,
                                        m: g.rows.count)
            }
        }
    }
}
