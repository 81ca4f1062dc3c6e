import Foundation
import Synchronization

/// Set by SIGTERM or SIGINT so a command's loop can finish its step, commit and leave its group cleanly.
final class StopSignal: @unchecked Sendable {
    private let flag = Atomic(false)
    private var sources: [any DispatchSourceSignal] = []

    init() {
        for sig in [SIGTERM, SIGINT] {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler { [weak self] in self?.set() }
            source.resume()
            sources.append(source)
        }
    }

    private func set() { flag.store(true, ordering: .releasing) }
    var stopped: Bool { flag.load(ordering: .acquiring) }
}
