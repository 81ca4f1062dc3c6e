import Synchronization

/// Whether an event log answers, for a process's `/readyz`: a probe (one partition's
/// watermarks) runs every `interval`; the log counts as not answering once no probe has
/// succeeded for `silence` — a probe can hang for as long as a broker is away, so silence,
/// not an error, is the signal.
public final class LogHealth: Sendable {
    private let lastAnswer = Mutex(ContinuousClock.now)
    public let silence: Duration

    public init(silence: Duration = .seconds(8)) {
        self.silence = silence
    }

    /// Whether a probe succeeded within `silence`.
    public var answering: Bool { ContinuousClock.now - lastAnswer.withLock { $0 } < silence }

    /// Probes until cancelled; `changed` hears when the log stops or starts answering again.
    public func watch(every interval: Duration = .seconds(2), probe: @Sendable () async throws -> Void,
                      changed: @Sendable (_ answering: Bool, _ error: (any Error)?) -> Void = { _, _ in }) async {
        lastAnswer.withLock { $0 = .now }
        var failing = false
        while !Task.isCancelled {
            do {
                try await probe()
                lastAnswer.withLock { $0 = .now }
                if failing { changed(true, nil) }
                failing = false
            } catch {
                if !failing { changed(false, error) }
                failing = true
            }
            try? await Task.sleep(for: interval)
        }
    }
}
