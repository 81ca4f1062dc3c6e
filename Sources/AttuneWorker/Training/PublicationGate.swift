import AttuneTraining

/// The publication gate: a candidate's loss on each evaluation set — held-out new data, the
/// replay sample, the domain probe — against its parent's; a rise beyond the tolerance (a
/// fraction of the parent's loss) that is also larger than `minimumRise` nats rejects it. The
/// floor keeps noise on a set the parent already fits almost perfectly (a small loss, whose
/// fraction is a few hundredths of a nat) from rejecting every candidate.
struct PublicationGate {
    let sets: [(name: String, data: PackedDataset)]
    let tolerance: Double
    let minimumRise: Double

    init(sets: [(String, PackedDataset)], tolerance: Double, minimumRise: Double = 0) {
        self.sets = sets.filter { !$0.1.rows.isEmpty }.map { (name: $0.0, data: $0.1) }
        self.tolerance = tolerance
        self.minimumRise = minimumRise
    }

    /// Loss of `model` on every non-empty set (or on those of `names`).
    func losses(_ model: TrainableLlama, only names: Set<String>? = nil) -> [String: Double] {
        Dictionary(uniqueKeysWithValues: sets.filter { names?.contains($0.name) ?? true }.map {
            ($0.name, Trainer.evaluate(model, $0.data).loss)
        })
    }

    /// The sets on which the candidate regresses beyond the tolerance.
    func regressions(candidate: [String: Double], parent: [String: Double]) -> [String] {
        sets.map(\.name).filter { name in
            guard let c = candidate[name], let p = parent[name] else { return false }
            return c > p * (1 + tolerance) && (minimumRise == 0 || c - p > minimumRise)
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
