import AttuneTraining

/// The publication gate: a candidate's loss on each evaluation set — held-out new data, the
/// replay sample, the domain probe — against its parent's; any rise beyond the tolerance
/// (a fraction of the parent's loss) rejects it.
struct PublicationGate {
    let sets: [(name: String, data: PackedDataset)]
    let tolerance: Double

    init(sets: [(String, PackedDataset)], tolerance: Double) {
        self.sets = sets.filter { !$0.1.rows.isEmpty }.map { (name: $0.0, data: $0.1) }
        self.tolerance = tolerance
    }

    /// Loss of `model` on every non-empty set.
    func losses(_ model: TrainableLlama) -> [String: Double] {
        Dictionary(uniqueKeysWithValues: sets.map { ($0.name, Trainer.evaluate(model, $0.data).loss) })
    }

    /// The sets on which the candidate regresses beyond the tolerance.
    func regressions(candidate: [String: Double], parent: [String: Double]) -> [String] {
        sets.map(\.name).filter { name in
            guard let c = candidate[name], let p = parent[name] else { return false }
            return c > p * (1 + tolerance)
        }
    }

    /// Evaluation numbers for a release: `<set>_loss` and `<set>_loss_parent`.
    static func metrics(candidate: [String: Double], parent: [String: Double]) -> [String: Double] {
        var m: [String: Double] = [:]
        for (k, v) in candidate { m[k + "_loss"] = v }
        for (k, v) in parent { m[k + "_loss_parent"] = v }
        return m
    }
}
