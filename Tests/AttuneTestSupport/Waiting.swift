/// Checks `condition` every `interval` until it holds or `timeout` passes; returns whether it
/// held. Deadlines are sized for a loaded 2-core machine: a wait ends as soon as its condition
/// holds, so a generous one costs nothing when the machine is fast.
@discardableResult
public func waitUntil(_ timeout: Duration = .seconds(120), interval: Duration = .milliseconds(100),
                      _ condition: () async throws -> Bool) async rethrows -> Bool {
    let deadline = ContinuousClock.now + timeout
    while true {
        if try await condition() { return true }
        if ContinuousClock.now >= deadline { return false }
        try? await Task.sleep(for: interval)
    }
}
