import Foundation
import Prometheus
import ServiceLifecycle
import Synchronization

/// Standard output shared by the demo's lines and the live status line: on a terminal the
/// status line is redrawn in place under the printed lines; elsewhere it is printed as a line
/// of its own whenever it changed.
final class Console: Sendable {
    private struct State {
        var status = ""
        var lastPrinted = ""
    }
    private let state = Mutex(State())
    let isTerminal = isatty(STDOUT_FILENO) == 1

    /// Prints a line (above the status line on a terminal).
    func line(_ text: String) {
        state.withLock { s in
            write(isTerminal ? "\r\u{1B}[K" + text + "\n" + s.status : text + "\n")
        }
    }

    /// Replaces the status line.
    func status(_ text: String) {
        state.withLock { s in
            s.status = text
            if isTerminal {
                write("\r\u{1B}[K" + text)
            } else if text != s.lastPrinted {
                s.lastPrinted = text
                write(text + "\n")
            }
        }
    }

    /// Ends the status line so the shell prompt starts on a fresh line.
    func finish() {
        state.withLock { s in
            if isTerminal, !s.status.isEmpty { write("\n") }
            s.status = ""
        }
    }

    private func write(_ text: String) {
        FileHandle.standardOutput.write(Data(text.utf8))
    }
}

/// The live view of `attune up`: every few seconds, one line summed up from the process's own
/// Prometheus metrics (the numbers the fleet dashboard charts).
struct LiveView: Service {
    let registry: PrometheusCollectorRegistry
    let console: Console
    var interval: Duration

    func run() async throws {
        await cancelWhenGracefulShutdown { [registry, console, interval] in
            while !Task.isCancelled {
                console.status(Self.summary(MetricsSnapshot(registry.emitToBuffer())))
                try? await Task.sleep(for: console.isTerminal ? .seconds(1) : interval)
            }
        }
        console.finish()
    }

    static func summary(_ m: MetricsSnapshot) -> String {
        let tokensPerSecond = m.sum("attune_worker_training_tokens_per_second")
        return [
            "in \(Int(m.sum("attune_gateway_records_total", where: ("status", "accepted")))) records",
            "consumed \(Int(m.sum("attune_worker_records_consumed_total")))",
            "lag \(Int(m.sum("attune_worker_consumer_lag")))",
            "trained \(Int(m.sum("attune_worker_examples_trained_total"))) examples" + (tokensPerSecond > 0 ? String(format: " (%.0f tok/s)", tokensPerSecond) : ""),
            "published \(Int(m.sum("attune_worker_versions_published_total")))",
            "gate rejections \(Int(m.sum("attune_worker_gate_decisions_total", where: ("decision", "rejected"))))",
            "DLQ \(Int(m.sum("attune_worker_records_dead_lettered_total")))",
            "swaps \(Int(m.sum("attune_adapter_swaps_total")))",
            "requests \(Int(m.sum("vllm:e2e_request_latency_seconds_count")))",
        ].joined(separator: " · ")
    }
}

/// Samples parsed from the Prometheus text format: `name{label="value",…} number` lines.
struct MetricsSnapshot {
    struct Sample {
        var name: String
        var labels: [String: String]
        var value: Double
    }
    let samples: [Sample]

    init(_ text: [UInt8]) {
        var samples: [Sample] = []
        for line in String(decoding: text, as: UTF8.self).split(separator: "\n") where !line.hasPrefix("#") {
            guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else { continue }
            let series = line[..<space]
            var name = Substring(series), labels: [String: String] = [:]
            if let open = series.firstIndex(of: "{"), series.hasSuffix("}") {
                name = series[..<open]
                for pair in series[series.index(after: open)..<series.index(before: series.endIndex)].split(separator: ",") {
                    let parts = pair.split(separator: "=", maxSplits: 1)
                    if parts.count == 2 { labels[String(parts[0])] = String(parts[1].trimmingCharacters(in: CharacterSet(charactersIn: "\""))) }
                }
            }
            samples.append(Sample(name: String(name), labels: labels, value: value))
        }
        self.samples = samples
    }

    /// The sum over every series of `name` (optionally only those with a label's value).
    func sum(_ name: String, where label: (String, String)? = nil) -> Double {
        samples.filter { sample in sample.name == name && (label.map { sample.labels[$0.0] == $0.1 } ?? true) }.reduce(0) { $0 + $1.value }
    }

    /// Every metric name present.
    var names: Set<String> { Set(samples.map(\.name)) }
}
