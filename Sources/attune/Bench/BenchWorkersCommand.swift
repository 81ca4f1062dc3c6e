import ArgumentParser
import AttuneEventLog
import AttuneModel
import Foundation

/// `attune bench workers`: a domain adapter trained first, then a tenant interaction stream
/// produced at a fixed rate into a fresh embedded log and trained by 1, 2, … `attune
/// train-worker` processes in turn (each stops after `--idle` seconds without input), with this
/// binary and, alternating, with `--peer` (another release of attune); prints, side by side,
/// throughput and the latency from an interaction's produce time to the `adapter.updated` event
/// of the version that covers it, over the records published (a batch the gate holds back waits
/// for more data of its tenant). Workers run with their default settings plus `--worker-option`s.
struct BenchWorkersCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "workers", abstract: "Measure training-worker throughput and produce→publish latency for 1, 2, … workers.")

    @Option(help: "GGUF base model (default: $ATTUNE_MODEL, else the fetched base model).") var model: String?
    @Option(help: "Directory of topic definitions and schemas (default: the contracts built into attune).") var topicsDir: String?
    @Option(help: "Worker counts to compare, comma-separated.") var workers = "1,2"
    @Option(help: "Tenants in the stream.") var tenants = 8
    @Option(help: "Interactions per tenant.") var perTenant = 12
    @Option(help: "Interactions produced per second (all tenants together).") var rate = 4.0
    @Option(help: "Domain documents trained into a domain adapter before the stream starts (0: none).") var domainDocuments = 8
    @Option(parsing: .unconditionalSingleValue, help: "An option passed to every worker, e.g. --worker-option=--batch-linger=1 (repeatable).")
    var workerOption: [String] = []
    @Option(parsing: .unconditionalSingleValue, help: "An option passed to this binary's workers only, e.g. --own-worker-option=--tenant-memory=256MiB (repeatable).")
    var ownWorkerOption: [String] = []
    @Option(help: "Another attune binary measured in the same run, alternating with this one.") var peer: String?
    @Option(help: "Workers stop after this many seconds without input.") var idle = 45.0
    @Option(help: "Give up on a run after this many seconds.") var timeout = 1800.0
    @Flag(help: "Share the cores among the workers (ATTUNE_THREADS = cores ÷ workers) instead of giving each all of them.")
    var shareCores = false

    func run() async throws {
        let counts = workers.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !counts.isEmpty, counts.allSatisfy({ $0 > 0 }) else { throw ValidationError("--workers takes positive counts, e.g. 1,2") }
        guard tenants > 0, perTenant > 0, rate > 0 else { throw ValidationError("--tenants, --per-tenant and --rate must be positive") }
        let modelPath = try BaseModelStore().resolve(model)
        let catalog = try TopicCatalog.load(directory: topicsDir)
        guard domainDocuments >= 0 else { throw ValidationError("--domain-documents must be ≥ 0") }
        let own = Bundle.main.executablePath ?? CommandLine.arguments[0]
        if let peer, !FileManager.default.isExecutableFile(atPath: peer) { throw ValidationError("--peer \(peer) is not an executable") }
        let binaries = [("attune", own)] + (peer.map { [("peer", $0)] } ?? [])
        var rows: [String] = [], phaseRows: [String] = []
        for count in counts {
            for (label, binary) in binaries {
                let dir = FileManager.default.temporaryDirectory.appendingPathComponent("attune-bench-workers-\(UUID().uuidString)")
                defer { try? FileManager.default.removeItem(at: dir) }
                let (row, phases) = try await measure(count, binary: binary, modelPath: modelPath, catalog: catalog, logDir: dir.path)
                let name = label.padding(toLength: 8, withPad: " ", startingAt: 0)
                rows.append(name + row)
                phaseRows.append(name + String(format: "%7d  ", count) + Self.phaseNames.map { phase in
                    phases[phase].map { String(format: "%14.2f", Self.median($0)) } ?? String(repeating: " ", count: 13) + "-"
                }.joined(separator: " "))
            }
        }
        print("binary   workers  published/records  wall s  records/s  latency p50 s  p95 s  max s  versions  gate rejections  s/version  peak RSS MB")
        for r in rows { print(r) }
        print("median seconds per version, by phase (from the workers' version log lines):")
        print("binary   workers  " + Self.phaseNames.map { $0.padding(toLength: 14, withPad: " ", startingAt: 0) }.joined(separator: " "))
        for r in phaseRows { print(r) }
    }

    /// The phases a worker logs for each version, in order.
    static let phaseNames = ["gate-parent", "train", "gate-candidate", "publish", "checkpoint"]

    /// Each phase's seconds over the versions of a worker log ("…; gate-parent 0.31 s, train 0.52 s, …").
    static func phaseSeconds(_ log: String) -> [String: [Double]] {
        var phases: [String: [Double]] = [:]
        for line in log.split(separator: "\n") where line.contains("; gate-parent ") {
            for part in line.split(separator: ";").last!.split(separator: ",") {
                let words = part.split(separator: " ")
                if words.count >= 2, let seconds = Double(words[1]), phaseNames.contains(String(words[0])) {
                    phases[String(words[0]), default: []].append(seconds)
                }
            }
        }
        return phases
    }

    static func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }

    private func measure(_ count: Int, binary: String, modelPath: String, catalog: TopicCatalog,
                         logDir: String) async throws -> (row: String, phases: [String: [Double]]) {
        let log = EmbeddedEventLog(directory: logDir)
        let admin = try log.makeAdmin()
        _ = try await catalog.apply(to: admin, dryRun: false)
        await admin.close()
        try await trainDomain(binary: binary, log: log, catalog: catalog, modelPath: modelPath, logDir: logDir)
        let threads = shareCores ? max(1, ProcessInfo.processInfo.activeProcessorCount / count) : nil
        let processes = try (0..<count).map { i in
            try startWorker(binary: binary, modelPath: modelPath, logDir: logDir, idle: idle, output: logDir + "/worker\(i).out", threads: threads,
                            options: binary == peer ? [] : ownWorkerOption)
        }
        var peakKB = 0
        func samplePeak() { for p in processes where p.isRunning { peakKB = max(peakKB, Self.peakResidentKB(p.processIdentifier) ?? 0) } }
        defer { for p in processes where p.isRunning { p.terminate() } }

        let producer = ValidatingProducer(try log.makeProducer(), catalog: catalog)
        var inputs: [RecordMetadata] = []
        let start = ContinuousClock.now
        for i in 0..<(tenants * perTenant) {
            let tenant = "t\(i % tenants)", n = i / tenants
            let value = #"{"tenant":"\#(tenant)","user":"u\#(n)","time":"2026-11-29T08:00:00Z","prompt":"What does clause \#(n) of the \#(tenant) contract say about notice periods?","response":"Clause \#(n) gives \#(tenant) customers \#(n + 10) days of written notice before any change takes effect."}"#
            inputs.append(try await producer.send(ProducerRecord(topic: "attune.interactions", key: tenant, value: value)))
            samplePeak()
            try await Task.sleep(until: start + .milliseconds(Int(Double(i + 1) * 1000 / rate)), clock: .continuous)
        }
        await producer.close()
        let deadline = ContinuousClock.now + .seconds(timeout)
        while processes.contains(where: \.isRunning) {
            guard ContinuousClock.now < deadline else { throw ValidationError("the workers were still busy after \(timeout) s") }
            samplePeak()
            try await Task.sleep(for: .milliseconds(200))
        }
        var rejections = 0
        var phases: [String: [Double]] = [:]
        for (i, p) in processes.enumerated() {
            let output = try String(contentsOfFile: logDir + "/worker\(i).out", encoding: .utf8)
            guard p.terminationStatus == 0 else {
                throw ValidationError("worker \(i) exited with status \(p.terminationStatus):\n\(output.split(separator: "\n").suffix(5).joined(separator: "\n"))")
            }
            rejections += output.split(separator: "\n").filter { $0.contains(" gate: ") }.count
            phases.merge(Self.phaseSeconds(output)) { $0 + $1 }
        }

        var publishedAt: [Int: TimestampMs] = [:]
        var versions = 0
        for r in try await readAll(log, "attune.adapter-events") {
            guard let event = try? JSONSerialization.jsonObject(with: Data(r.value ?? [])) as? [String: Any],
                  let data = event["data"] as? [String: Any], (data["adapter"] as? String)?.hasPrefix("tenant/") == true,
                  let covers = data["covers"] as? [String: [[Int64]]] else { continue }
            versions += 1
            for (i, m) in inputs.enumerated() {
                let ranges = covers[TopicPartition(m.topic, m.partition).description] ?? []
                if ranges.contains(where: { $0[0] <= m.offset && m.offset <= $0[1] }) { publishedAt[i] = r.timestamp }
            }
        }
        guard !publishedAt.isEmpty else { throw ValidationError("the workers published nothing") }
        let latencies = publishedAt.map { Double($0.value - inputs[$0.key].timestamp) / 1000 }.sorted()
        let first = inputs.map(\.timestamp).min()!, last = publishedAt.values.max()!
        let wall = Double(last - first) / 1000
        func pct(_ p: Double) -> Double { latencies[min(latencies.count - 1, Int(p * Double(latencies.count)))] }
        let row = String(format: "%7d %11d/%-7d %7.1f %10.2f %14.1f %6.1f %6.1f %9d %16d %10.2f %12.0f", count, publishedAt.count, inputs.count, wall,
                      Double(publishedAt.count) / wall, pct(0.5), pct(0.95), latencies.last!, versions, rejections,
                      wall / Double(max(1, versions)), Double(peakKB) / 1024)
        return (row, phases)
    }

    /// The peak resident set of a running process (VmHWM), in KiB.
    private static func peakResidentKB(_ pid: Int32) -> Int? {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }) else { return nil }
        return line.split(separator: " ").dropFirst().first.flatMap { Int($0) }
    }

    private func readAll(_ log: any EventLog, _ topic: String) async throws -> [ConsumerRecord] {
        let reader = try log.makeConsumer(ConsumerConfiguration())
        let parts = (0..<(try await partitions(log, topic))).map { TopicPartition(topic, $0) }
        try await reader.assign(parts)
        try await reader.seekToBeginning(parts)
        var out: [ConsumerRecord] = []
        while true {
            let batch = try await reader.poll(maxRecords: 500, timeout: .milliseconds(300))
            if batch.isEmpty { break }
            out += batch
        }
        await reader.close()
        return out
    }

    private func partitions(_ log: any EventLog, _ topic: String) async throws -> Int {
        let admin = try log.makeAdmin()
        let d = try await admin.describeTopic(topic)
        await admin.close()
        return d?.partitions ?? 1
    }

    /// Publishes the domain adapter the tenants stand on: `--domain-documents` license
    /// paragraphs trained by one worker of `binary`, which stops once it is idle.
    private func trainDomain(binary: String, log: EmbeddedEventLog, catalog: TopicCatalog, modelPath: String, logDir: String) async throws {
        guard domainDocuments > 0 else { return }
        let producer = ValidatingProducer(try log.makeProducer(), catalog: catalog)
        for i in 0..<domainDocuments {
            let text = "Section \(i). Each party shall give the other written notice of \(i + 10) days before any change to the terms of "
                + "this contract takes effect. Notice is given in writing to the address stated in the order form, and a change "
                + "takes effect only after the notice period has passed, unless both parties agree otherwise in writing."
            let value = String(decoding: try JSONSerialization.data(withJSONObject: ["domain": "contracts", "doc_id": "c\(i)", "text": text, "source": "bench"]),
                               as: UTF8.self)
            _ = try await producer.send(ProducerRecord(topic: "attune.corpora", key: "contracts", value: value))
        }
        await producer.close()
        let worker = try startWorker(binary: binary, modelPath: modelPath, logDir: logDir, idle: 3, output: logDir + "/domain.out", threads: nil)
        while worker.isRunning { try await Task.sleep(for: .milliseconds(200)) }
        guard worker.terminationStatus == 0 else {
            let output = (try? String(contentsOfFile: logDir + "/domain.out", encoding: .utf8)) ?? ""
            throw ValidationError("the domain worker exited with status \(worker.terminationStatus):\n\(output.split(separator: "\n").suffix(5).joined(separator: "\n"))")
        }
    }

    private func startWorker(binary: String, modelPath: String, logDir: String, idle: Double, output: String, threads: Int?,
                             options: [String] = []) throws -> Process {
        let p = Process()
        if let threads { p.environment = ProcessInfo.processInfo.environment.merging(["ATTUNE_THREADS": "\(threads)"]) { $1 } }
        p.executableURL = URL(fileURLWithPath: binary)
        p.arguments = ["train-worker", "--model", modelPath, "--log-dir", logDir, "--idle", "\(idle)", "--domain-wait", "0"]
            + workerOption + options + (topicsDir.map { ["--topics-dir", $0] } ?? [])
        guard FileManager.default.createFile(atPath: output, contents: nil) else { throw ValidationError("cannot write \(output)") }
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: output))
        p.standardOutput = handle
        p.standardError = handle
        try p.run()
        return p
    }
}
