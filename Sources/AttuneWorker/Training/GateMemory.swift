import AttuneTraining

/// What the gate keeps of an adapter between its versions, so that a small batch does not pay
/// for evaluating the replay memory twice: a sample of the replay memory (redrawn once the
/// memory has seen twice as many examples as when it was drawn, or after `redrawAfter`
/// versions) and the losses the current version scored on each gate set as a candidate —
/// its losses as the next candidate's parent, valid while that set is unchanged.
struct GateMemory: Codable, Equatable {
    private(set) var replaySample: [TrainingExample] = []
    private var drawnAtSeen = 0
    private var versionsSinceDraw = 0
    private var scored: Scored?

    /// A version's losses on the gate's sets when it was the candidate.
    private struct Scored: Codable, Equatable {
        var version: Int
        var sets: [String: [TrainingExample]]
        var losses: [String: Double]
    }

    /// The replay sample the next candidate is gated on, drawn from `replay` when due.
    mutating func replaySet(from replay: inout ReplayBuffer, size: Int, redrawAfter: Int) -> [TrainingExample] {
        let due = replaySample.isEmpty || replay.seen >= 2 * max(1, drawnAtSeen) || versionsSinceDraw >= redrawAfter
        if due && !replay.items.isEmpty {
            replaySample = replay.distinct(size)
            drawnAtSeen = replay.seen
            versionsSinceDraw = 0
        }
        return replaySample
    }

    /// The parent's losses on those of `sets` it was scored on as a candidate (as `version`).
    func parentLosses(version: Int?, sets: [String: [TrainingExample]]) -> [String: Double] {
        guard let scored, let version, scored.version == version else { return [:] }
        return scored.losses.filter { name, _ in sets[name] != nil && scored.sets[name] == sets[name] }
    }

    /// Remembers a published candidate's losses on the gate's sets: it is the next parent.
    mutating func published(version: Int, sets: [String: [TrainingExample]], losses: [String: Double]) {
        scored = Scored(version: version, sets: sets, losses: losses)
        versionsSinceDraw += 1
    }
}
