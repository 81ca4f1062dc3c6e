import AttuneEvaluation
import AttuneEventLog
import AttuneModel
import AttuneTestSupport
import AttuneTokenizer
import AttuneTraining
import Foundation
import Testing

private let tiny = TinyLogFixture.config

@Test func transferMatrixByHand() {
    // Accuracy after each of three steps on the three sets; the initial model scores 0.1, 0.2, 0.3.
    let m = TransferMatrix(value: [[0.9, 0.3, 0.2],
                                   [0.7, 0.8, 0.4],
                                   [0.6, 0.75, 0.85]], initial: [0.1, 0.2, 0.3])
    // BWT = ((0.6 − 0.9) + (0.75 − 0.8)) / 2; FWT = ((0.3 − 0.2) + (0.4 − 0.3)) / 2.
    #expect(abs(m.backwardTransfer! - (-0.175)) < 1e-12)
    #expect(abs(m.forwardTransfer! - 0.1) < 1e-12)
    #expect(zip(m.forgetting, [0.3, 0.05, 0]).allSatisfy { abs($0 - $1) < 1e-12 })
    #expect(TransferMatrix(value: [[0.5]], initial: [0.1]).backwardTransfer == nil)
}

/// The evaluator's loss and accuracy (one prefill over the whole example, logits at every
/// position) equal a token-by-token decode through the KV cache, an independent code path.
/// Dense weights, so both paths run fp32 arithmetic (quantized decode uses 8-bit activations,
/// checked in the model tests). Tolerance: 2e-3 nats mean.
@Test func likelihoodAgreesWithTokenByTokenDecoding() throws {
    let model = try RandomModel.load(tiny, mode: .dense)
    let tokenizer = try testTokenizer()
    let builder = ExampleBuilder(tokenizer: tokenizer)
    let items = [
        EvaluationItem(example: builder.interaction(prompt: "what is due", response: "rent, by friday.")!),
        EvaluationItem(example: builder.corpus("the tenant pays the rent on time.")),
    ]
    let metrics = try ModelEvaluator(model: model, tokenizer: tokenizer).likelihood(items)

    var nll = 0.0, tokens = 0, correct = 0, nearTies = 0
    for item in items {
        let cache = model.makeCache(capacity: item.example.tokens.count)
        for i in 0..<(item.example.tokens.count - 1) {
            let logits = try model.forward(tokens: [[item.example.tokens[i]]], caches: [cache], logits: .last)
            guard item.example.learn[i + 1] else { continue }
            let target = Int(item.example.tokens[i + 1])
            let top = logits.max()!
            let logSum = Double(top) + log(logits.reduce(0.0) { $0 + exp(Double($1 - top)) })
            nll += logSum - Double(logits[target])
            tokens += 1
            let sorted = logits.sorted(by: >)
            if sorted[0] - sorted[1] < 1e-3 { nearTies += 1 }
            if logits[target] == top { correct += 1 }
        }
    }
    #expect(metrics.tokens == tokens)
    #expect(abs(metrics.loss - nll / Double(tokens)) < 2e-3, "evaluator \(metrics.loss) vs decode \(nll / Double(tokens))")
    #expect(abs(metrics.correct - correct) <= nearTies, "accuracy \(metrics.correct) vs \(correct) (\(nearTies) near ties)")
    #expect(abs(metrics.perplexity - exp(metrics.loss)) < 1e-9)
}

@Test func evaluationFilesSayWhatIsWrong() throws {
    let builder = ExampleBuilder(tokenizer: try testTokenizer())
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("attune-evalfile-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    let good = dir.appendingPathComponent("good.jsonl")
    try """
    {"prompt": "hi", "response": "hello"}
    {"prompt": "hi", "response": "bad", "feedback": "down"}
    {"prompt": "hi", "response": "bad", "feedback": "down", "correction": "hello there"}
    {"text": "a document"}
    """.write(to: good, atomically: true, encoding: .utf8)
    let set = try EvaluationSet(file: good.path, builder: builder)
    #expect(set.items.count == 3, "a rejected answer without a correction teaches nothing")
    #expect(set.interactions.map(\.reference) == ["hello", "hello there"])

    let bad = dir.appendingPathComponent("bad.jsonl")
    try "{\"prompt\": \"hi\", \"response\": \"ok\"}\n{\"prompt\": 3}\n".write(to: bad, atomically: true, encoding: .utf8)
    #expect(throws: EvaluationError("\(bad.path):2: not a JSON object with string fields")) {
        try EvaluationSet(file: bad.path, builder: builder)
    }
}

@Test func acceptanceIsCountedPerServedVersion() {
    var tally = AcceptanceTally()
    func interaction(_ tenant: String, _ feedback: String?, _ servedBy: String?) -> Interaction {
        Interaction(tenant: tenant, user: "u", time: "2026-12-01T00:00:00Z", prompt: "p", response: "r", feedback: feedback, served_by: servedBy)
    }
    for i in [interaction("acme", "up", "tenant/acme@2"), interaction("acme", "down", "tenant/acme@2"),
              interaction("acme", "up", "tenant/acme@10"), interaction("acme", "up", nil), interaction("acme", nil, "tenant/acme@2"),
              interaction("bolt", "down", "tenant/bolt@1")] {
        tally.add(i, tenant: "acme")
    }
    #expect(tally.versions == ["tenant/acme@2", "tenant/acme@10", AcceptanceTally.unattributed])
    #expect(tally.byVersion["tenant/acme@2"]?.rate == 0.5 && tally.byVersion["tenant/acme@10"]?.rate == 1)
}

/// A time range reads exactly the records produced in it, through offsets-for-times.
@Test(arguments: TestTransport.selected) func aTopicSliceReadsATimeRange(_ transport: TestTransport) async throws {
    let log = try transport.makeLog()
    let topic = "evalslice-\(UUID().uuidString.prefix(8))"
    let admin = try log.makeAdmin()
    try await admin.createTopic(TopicSpec(name: topic, partitions: 2))
    await admin.close()
    let producer = try log.makeProducer()
    // Recent times: a broker deletes records older than the topic's retention by their timestamps.
    let t0 = currentTimestampMs() - 20_000
    for i in 0..<10 {
        _ = try await producer.send(ProducerRecord(topic: topic, key: "k\(i % 3)", value: "\(i)", timestamp: t0 + Int64(i) * 1000))
    }
    await producer.close()
    let slice = TopicSlice(log: log)
    let all = try await slice.records(of: topic)
    #expect(Set(all.map { String(decoding: $0.value!, as: UTF8.self) }) == Set((0..<10).map(String.init)))
    let some = try await slice.records(of: topic, from: t0 + 3000, to: t0 + 7000)
    #expect(Set(some.map { String(decoding: $0.value!, as: UTF8.self) }) == ["3", "4", "5", "6"])
    let coverage = OffsetCoverage(positions: some.map { ($0.topicPartition, $0.offset) })
    #expect(Set(try await slice.records(at: coverage).map(\.offset)) == Set(some.map(\.offset)))
}

/// `attune eval` and `attune report` end to end on a tiny model from a folder outside the
/// repository: a worker publishes two versions of a tenant; `eval models` scores base and the
/// versions on the tenant's records and on a file (with generated answers), `eval lineage`
/// gives the forgetting view whose transfer numbers follow from its own matrix, `eval
/// acceptance` counts feedback by the version that served it, and the report opens in headless
/// Chromium with its plots drawn and every number on the page equal to its JSON.
@Test func attuneEvalAndReportEndToEnd() async throws {
    let fixture = try await TinyLogFixture("eval")
    defer { fixture.remove() }
    let (dir, model, logDir, log, catalog) = (fixture.dir, fixture.model, fixture.logDir, fixture.log, fixture.catalog)

    func produce(_ values: [String]) async throws {
        let producer = ValidatingProducer(try log.makeProducer(), catalog: catalog)
        for v in values { _ = try await producer.send(ProducerRecord(topic: "attune.interactions", key: "acme", value: v)) }
        await producer.close()
    }
    func interaction(_ i: Int, feedback: String? = nil, servedBy: String? = nil) -> String {
        var object: [String: Any] = ["tenant": "acme", "user": "u\(i % 2)", "time": "2026-12-01T00:00:0\(i)Z",
                                     "prompt": "question \(i)?", "response": "answer \(i)."]
        if let feedback { object["feedback"] = feedback }
        if feedback == "down" { object["correction"] = "a better answer \(i)." }
        if let servedBy { object["served_by"] = servedBy }
        return String(decoding: try! JSONSerialization.data(withJSONObject: object, options: .sortedKeys), as: UTF8.self)
    }
    let worker = ["train-worker", "--model", model, "--log-dir", logDir, "--idle", "1", "--steps", "2", "--seq-len", "48",
                  "--batch-size", "2", "--rank", "2", "--gate-tolerance", "100", "--domain-wait", "0"]
    try await produce((0..<3).map { interaction($0) })
    #expect(try runAttune(worker, in: dir).status == 0)
    try await produce((3..<6).map { interaction($0, feedback: $0 == 3 ? "down" : "up", servedBy: "tenant/acme@1") })
    #expect(try runAttune(worker, in: dir).status == 0)

    let common = ["--base-model", model, "--log-dir", logDir, "--json"]
    let lineageRun = try runAttune(["eval", "lineage", "tenant/acme"] + common, in: dir)
    #expect(lineageRun.status == 0, "\(lineageRun.err)")
    let lineage = try JSONSerialization.jsonObject(with: Data(lineageRun.out.utf8)) as! [String: Any]
    let versions = lineage["versions"] as! [String]
    #expect(versions.count >= 2 && versions.first == "tenant/acme@1")
    #expect((lineage["setSizes"] as! [Int]).reduce(0, +) == 6, "each interaction is in the set of the version that trained it")
    #expect(lineage["initialModel"] as? String == "base")
    let accuracy = lineage["accuracy"] as! [[Double]]
    let transfer = lineage["accuracyTransfer"] as! [String: Any]
    let recomputed = TransferMatrix(value: accuracy, initial: lineage["initialAccuracy"] as! [Double])
    #expect((transfer["value"] as! [[Double]]) == accuracy && recomputed.backwardTransfer != nil)

    let file = dir.appendingPathComponent("held-out.jsonl")
    try (interaction(7) + "\n").write(to: file, atomically: true, encoding: .utf8)
    let models = try runAttune(["eval", "models", "base", "tenant/acme@1", "tenant/acme", "--tenant", "acme", "--data", file.path,
                                "--generate", "--max-tokens", "6"] + common, in: dir)
    #expect(models.status == 0, "\(models.err)")
    let rows = models.out.split(separator: "\n").map { try! JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
    #expect(rows.count == 6)
    #expect(rows.map { $0["model"] as! String } == ["base", "base", "tenant/acme@1", "tenant/acme@1", "tenant/acme", "tenant/acme"])
    #expect((rows[2]["versions"] as! [String]) == ["tenant/acme@1"] && (rows[4]["versions"] as! [String]) == [versions.last!])
    #expect(rows.filter { $0["set"] as? String == "tenant/acme" }.allSatisfy { ($0["examples"] as? Int) == 6 })
    for row in rows {
        let likelihood = row["likelihood"] as! [String: Any]
        #expect((likelihood["loss"] as! Double).isFinite && (likelihood["tokens"] as! Int) > 0)
        let generation = row["generation"] as! [String: Any]
        #expect((0...100).contains(generation["chrF"] as! Double))
    }
    let trained = rows.first { $0["model"] as? String == "tenant/acme" && $0["set"] as? String == "tenant/acme" }!
    let untrained = rows.first { $0["model"] as? String == "base" && $0["set"] as? String == "tenant/acme" }!
    #expect(((trained["likelihood"] as! [String: Any])["loss"] as! Double) < ((untrained["likelihood"] as! [String: Any])["loss"] as! Double),
            "the tenant's adapter fits what it trained on better than the base")

    let acceptance = try runAttune(["eval", "acceptance", "--tenant", "acme", "--log-dir", logDir, "--json"], in: dir)
    #expect(acceptance.status == 0, "\(acceptance.err)")
    let counts = acceptance.out.split(separator: "\n").map { try! JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
    #expect(counts.count == 1 && counts[0]["version"] as? String == "tenant/acme@1" && counts[0]["accepted"] as? Int == 2
            && counts[0]["rejected"] as? Int == 1)

    let unknown = try runAttune(["eval", "models", "tenant/acme@99", "--tenant", "acme"] + common, in: dir)
    #expect(unknown.status != 0 && unknown.err.contains("has no version 99"), "\(unknown.err)")
    let nonsense = try runAttune(["eval", "models", "./no-such-folder", "--tenant", "acme"] + common, in: dir)
    #expect(nonsense.status != 0 && nonsense.err.contains("is not base, domain/<id>"), "\(nonsense.err)")

    let reportDir = dir.appendingPathComponent("report")
    let report = try runAttune(["report", "--out", reportDir.path, "--base-model", model, "--log-dir", logDir], in: dir)
    #expect(report.status == 0, "\(report.err)")
    let json = try JSONSerialization.jsonObject(with: Data(contentsOf: reportDir.appendingPathComponent("report.json"))) as! [String: Any]
    let timeline = (json["adapters"] as! [[String: Any]]).first { $0["adapter"] as? String == "tenant/acme" }!
    let points = timeline["versions"] as! [[String: Any]]
    #expect(points.count == versions.count && points.allSatisfy { ($0["metrics"] as! [String: Double])["train_loss"] != nil })
    #expect(points.allSatisfy { ($0["freshnessSeconds"] as? Double).map { $0 >= 0 } == true }, "every version covers inputs produced before it")
    let comparison = (json["tenants"] as! [[String: Any]]).first!
    #expect((comparison["scores"] as! [[String: Any]]).map { $0["role"] as! String } == ["base", "personalized"])
    try checkReportInChromium(reportDir, json: json)
}

/// Opens the report in headless Chromium (Debian's `chromium`): the DOM it builds has every
/// number of a `data-path` cell equal to the JSON value at that path (to the printed digits),
/// and a screenshot (saved beside the report and copied to `$ATTUNE_TEST_ARTIFACTS` when set)
/// is not blank: Pillow counts its non-white pixels and colours. Skipped without Chromium unless
/// ATTUNE_REQUIRE_CHROMIUM=1.
func checkReportInChromium(_ reportDir: URL, json: [String: Any]) throws {
    let required = ProcessInfo.processInfo.environment["ATTUNE_REQUIRE_CHROMIUM"] == "1"
    guard let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"].first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
        if required { Issue.record("chromium is required (ATTUNE_REQUIRE_CHROMIUM=1) but not installed") }
        return
    }
    let page = "file://" + reportDir.appendingPathComponent("report.html").path
    let flags = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--user-data-dir=\(reportDir.path)/profile"]
    let dom = try run(chromium, flags + ["--dump-dom", page])
    var checked = 0
    let cells = try NSRegularExpression(pattern: #"data-path="([^"]+)">([^<]+)<"#)
    for match in cells.matches(in: dom, range: NSRange(dom.startIndex..., in: dom)) {
        let path = String(dom[Range(match.range(at: 1), in: dom)!]), text = String(dom[Range(match.range(at: 2), in: dom)!])
        var node: Any? = json
        for key in path.split(separator: ".") {
            if let index = Int(key), let list = node as? [Any] { node = index < list.count ? list[index] : nil } else { node = (node as? [String: Any])?[String(key)] }
        }
        let value = try #require((node as? NSNumber)?.doubleValue, "\(path) is not a number in report.json")
        let shown = try #require(Double(text), "\(path): \(text)")
        let decimals = text.split(separator: ".").dropFirst().first?.count ?? 0
        #expect(abs(shown - value) <= 0.5 * pow(10, -Double(decimals)) + 1e-12, "\(path): page \(text), JSON \(value)")
        checked += 1
    }
    #expect(checked >= 20, "the page shows the report's numbers (\(checked) checked)")
    #expect(dom.components(separatedBy: "<svg").count - 1 >= 5, "freshness, losses, personalization, forgetting and acceptance plots")

    let screenshot = reportDir.appendingPathComponent("report.png")
    _ = try run(chromium, flags + ["--screenshot=\(screenshot.path)", "--window-size=1100,2600", "--hide-scrollbars", page])
    if let artifacts = ProcessInfo.processInfo.environment["ATTUNE_TEST_ARTIFACTS"] {
        try FileManager.default.createDirectory(atPath: artifacts, withIntermediateDirectories: true)
        let copy = URL(fileURLWithPath: artifacts).appendingPathComponent("report.png")
        try? FileManager.default.removeItem(at: copy)
        try FileManager.default.copyItem(at: screenshot, to: copy)
    }
    let census = try run("/usr/bin/env", ["python3", "-c", """
    import sys
    try:
        from PIL import Image
    except ImportError:
        print("missing"); sys.exit(0)
    im = Image.open(sys.argv[1]).convert("RGB")
    px = list(im.getdata())
    print(sum(1 for p in px if p != (255, 255, 255)) / len(px), len(set(px)))
    """, screenshot.path])
    if census.hasPrefix("missing") {
        if required { Issue.record("Pillow is required to check the screenshot (pip install pillow)") }
        return
    }
    let numbers = census.split(separator: " ").compactMap { Double($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
    #expect(numbers.count == 2 && numbers[0] > 0.03 && numbers[1] >= 16, "the screenshot shows plots, not a blank page: \(census)")
}

private func run(_ executable: String, _ arguments: [String]) throws -> String {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: executable)
    p.arguments = arguments
    let out = Pipe()
    p.standardOutput = out
    p.standardError = FileHandle.nullDevice
    try p.run()
    let data = out.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    #expect(p.terminationStatus == 0, "\(executable) \(arguments.joined(separator: " ")) exited \(p.terminationStatus)")
    return String(decoding: data, as: UTF8.self)
}
