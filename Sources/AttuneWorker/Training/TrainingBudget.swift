/// How much a micro-batch trains: its optimizer steps follow the data it holds — `epochs`
/// passes over its rows, at least one step and at most `maxSteps` — unless `fixedSteps` pins
/// them. A batch takes at most `passTokens` (new examples and their replay share together), so
/// one pass over it always fits under the cap: every record is trained on, and a burst is
/// split over several versions instead of being sampled.
struct TrainingBudget: Equatable {
    var fixedSteps: Int?
    var epochs: Double
    var maxSteps: Int
    var batchSize: Int
    var seqLen: Int

    /// The tokens one batch may hold: a full pass over them takes `maxSteps` steps.
    var passTokens: Int { maxSteps * batchSize * seqLen }

    /// The tokens of new examples a batch takes when each brings `replayRatio` replayed ones.
    func newTokens(replayRatio: Double) -> Int { max(1, Int(Double(passTokens) / (1 + replayRatio))) }

    /// Rows per optimizer step for a dataset of `rows` rows (a small batch does not repeat rows).
    func rowsPerStep(_ rows: Int) -> Int { max(1, min(batchSize, rows)) }

    /// Optimizer steps for a dataset of `rows` rows: at least one full pass, `epochs` passes
    /// up to the cap.
    func steps(rows: Int) -> Int {
        if let fixedSteps { return fixedSteps }
        let perStep = Double(rowsPerStep(rows))
        let onePass = Int((Double(rows) / perStep).rounded(.up))
        let wanted = Int((epochs * Double(rows) / perStep).rounded(.up))
        return max(1, onePass, min(maxSteps, wanted))
    }
}
