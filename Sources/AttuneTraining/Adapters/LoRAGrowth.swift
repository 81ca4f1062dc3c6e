import AttuneTensor

extension LoRAAdapter {
    /// A copy with `extra` more rank components: a new adapter block beside the existing ones.
    /// The existing components are copied (rows of A, columns of B) and α is rescaled so the
    /// scale stays the same, so the grown adapter computes what this one does until the new
    /// block (A Kaiming-uniform, B zero, as PEFT initializes) is trained.
    public func grown(by extra: Int, seed: UInt64) throws -> LoRAAdapter {
        guard extra > 0 else { throw TrainingError.invalid("an adapter grows by a positive rank, got \(extra)") }
        let r = config.rank, wider = r + extra
        var c = config
        c.rank = wider
        c.alpha = config.useRSLoRA ? config.alpha * (Float(wider) / Float(r)).squareRoot() : config.alpha * Float(wider) / Float(r)
        let out = try LoRAAdapter(config: c, model: model, seed: seed)
        for l in 0..<model.layers {
            for t in config.targets {
                let (rows, columns) = t.shape(model)
                out.a(l, t).update(from: a(l, t), count: r * columns)
                let b0 = b(l, t), b1 = out.b(l, t)
                for o in 0..<rows { (b1 + o * wider).update(from: b0 + o * r, count: r) }
            }
        }
        return out
    }

    /// 0 for the parameters of the first `frozenRank` rank components (earlier blocks), 1 for
    /// the rest: the optimizer's mask when only the newest block trains.
    public func trainableMask(frozenRank: Int) -> FloatBuffer {
        let mask = FloatBuffer(parameterCount)
        mask.pointer.update(repeating: 1, count: parameterCount)
        let r = config.rank, k = min(frozenRank, r)
        for l in 0..<model.layers {
            for t in config.targets {
                let (rows, columns) = t.shape(model)
                let aOffset = a(l, t) - parameters.pointer, bOffset = b(l, t) - parameters.pointer
                (mask.pointer + aOffset).update(repeating: 0, count: k * columns)
                for o in 0..<rows { (mask.pointer + bOffset + o * r).update(repeating: 0, count: k) }
            }
        }
        return mask
    }
}
