import AttuneRegistry
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

/// The losses of a new tenant's parent on the gate's sets, shared by every new tenant of a
/// domain version: a fresh adapter (LoRA B = 0, no meta-initialization) adds exactly nothing
/// to its domain, so its parent scores what the domain version alone scores. One entry per
/// domain, for its latest version; a set counts only when its examples are the same.
struct FreshTenantLosses {
    private var byDomain: [String: (release: String, sets: [String: (examples: [TrainingExample], loss: Double)])] = [:]

    /// The remembered losses of `release` (a domain version's id) on those of `sets` it scored.
    func losses(of release: AdapterRelease, on sets: [String: [TrainingExample]]) -> [String: Double] {
        guard let entry = byDomain[release.adapter], entry.release == release.id else { return [:] }
        return entry.sets.filter { sets[$0.key] == $0.value.examples }.mapValues { $0.loss }
    }

    /// Remembers what `release` scored on `sets` (the names in `losses`).
    mutating func remember(_ release: AdapterRelease, sets: [String: [TrainingExample]], losses: [String: Double]) {
        if byDomain[release.adapter]?.release != release.id { byDomain[release.adapter] = (release.id, [:]) }
        for (name, loss) in losses { if let examples = sets[name] { byDomain[release.adapter]!.sets[name] = (examples, loss) } }
    }
}
