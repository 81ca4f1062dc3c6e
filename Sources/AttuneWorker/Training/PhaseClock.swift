import AttuneModel
import Foundation

/// Times the phases of one version, from its batch to its checkpoint (measuring the parent on
/// the gate's sets, training, measuring the candidate, publishing), for the version's log line
/// and `attune_worker_phase_seconds{phase}`.
struct PhaseClock {
    private var last = ContinuousClock.now
    private(set) var phases: [(name: String, seconds: Double)] = []

    /// Ends the phase `name` now; the next one starts.
    mutating func lap(_ name: String) {
        let now = ContinuousClock.now
        phases.append((name, (now - last).seconds))
        last = now
    }

    var summary: String {
        phases.map { "\($0.name) \(String(format: "%.2f", $0.seconds)) s" }.joined(separator: ", ")
    }
}
