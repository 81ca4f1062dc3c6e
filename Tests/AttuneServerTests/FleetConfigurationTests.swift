import AttuneTestSupport
import Foundation
import Testing
import Yams

/// Runs one at a time with the other whole-system tests (they each start processes that train and serve).
extension ServerTests {
    /// The compose fleet's files: Compose, Prometheus and Grafana configurations well formed (and
    /// accepted by docker-compose and promtool where they are installed; CI installs both), and
    /// every metric the dashboard charts exported by a running `attune up` under real traffic.
    @Suite struct FleetConfigurationTests {
        static let compose = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("compose")
        static let toolsRequired = ProcessInfo.processInfo.environment["ATTUNE_REQUIRE_FLEET_TOOLS"] == "1"

        private func yaml(_ path: String) throws -> [String: Any] {
            try #require(try Yams.load(yaml: String(contentsOf: Self.compose.appendingPathComponent(path), encoding: .utf8)) as? [String: Any])
        }

        private func dashboard() throws -> [String: Any] {
            try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: Self.compose.appendingPathComponent("grafana/dashboards/attune.json"))) as? [String: Any])
        }

        @Test func theFleetFilesAreWellFormedAndAgree() throws {
            let services = try #require(try yaml("docker-compose.yml")["services"] as? [String: Any])
            for name in ["kafka-1", "kafka-2", "kafka-3", "topics", "keys", "train-worker", "meta-init", "inference", "gateway", "api", "prometheus",
                         "grafana"] {
                #expect(services[name] != nil, "compose has no \(name) service")
            }
            func command(_ service: String) -> [String] { ((services[service] as? [String: Any])?["command"] as? [String]) ?? [] }
            func port(after flag: String, in service: String) -> Int? {
                let words = command(service)
                return words.firstIndex(of: flag).flatMap { Int(words[$0 + 1]) }
            }
            // Prometheus scrapes each Attune service on the port its command listens on.
            let scrape = try #require(try yaml("prometheus/prometheus.yml")["scrape_configs"] as? [[String: Any]])
            var ports: [String: Int] = [:]
            for job in scrape {
                let sd = try #require((job["dns_sd_configs"] as? [[String: Any]])?.first)
                ports[(sd["names"] as? [String])?.first ?? ""] = sd["port"] as? Int
            }
            #expect(ports["train-worker"] == port(after: "--metrics-port", in: "train-worker"))
            #expect(ports["meta-init"] == port(after: "--metrics-port", in: "meta-init"))
            #expect(ports["inference"] == port(after: "--port", in: "inference"))
            #expect(ports["gateway"] == port(after: "--port", in: "gateway"))

            // Grafana: the provisioned datasource is the one every panel names, the dashboards path is mounted.
            let datasource = try #require((try yaml("grafana/provisioning/datasources/prometheus.yml")["datasources"] as? [[String: Any]])?.first)
            let provider = try #require((try yaml("grafana/provisioning/dashboards/attune.yml")["providers"] as? [[String: Any]])?.first)
            let mounts = ((services["grafana"] as? [String: Any])?["volumes"] as? [String]) ?? []
            #expect(mounts.contains { $0.hasSuffix(":" + ((provider["options"] as? [String: Any])?["path"] as? String ?? "?") + ":ro") })
            let panels = try #require(try dashboard()["panels"] as? [[String: Any]])
            let charts = panels.filter { $0["type"] as? String != "row" }
            #expect(charts.count >= 20)
            for panel in charts {
                let targets = panel["targets"] as? [[String: Any]] ?? []
                #expect(!targets.isEmpty, "\(panel["title"] ?? "?") has no query")
                for target in targets {
                    #expect((target["datasource"] as? [String: Any])?["uid"] as? String == datasource["uid"] as? String)
                    #expect(!(target["expr"] as? String ?? "").isEmpty)
                }
            }

            if let compose = tool("docker-compose") {
                let run = try execute(compose, ["-f", Self.compose.appendingPathComponent("docker-compose.yml").path, "config", "-q"])
                #expect(run.status == 0, "docker-compose config: \(run.output)")
            } else {
                #expect(!Self.toolsRequired, "ATTUNE_REQUIRE_FLEET_TOOLS=1 but docker-compose is not installed")
            }
            if let promtool = tool("promtool") {
                let run = try execute(promtool, ["check", "config", Self.compose.appendingPathComponent("prometheus/prometheus.yml").path])
                #expect(run.status == 0, "promtool: \(run.output)")
            } else {
                #expect(!Self.toolsRequired, "ATTUNE_REQUIRE_FLEET_TOOLS=1 but promtool is not on PATH")
            }
        }

        /// Every attune command the fleet files run is a valid command line under the configuration
        /// those files give it (compose: its environment; Kubernetes: the ConfigMap's attune.yaml).
        @Test func everyFleetCommandLineParses() throws {
            let services = try #require(try yaml("docker-compose.yml")["services"] as? [String: Any])
            let composeEnvironment = ["ATTUNE_TRANSPORT": "kafka", "ATTUNE_BOOTSTRAP": "kafka-1:9092", "ATTUNE_LOG_FORMAT": "json"]
            for name in ["topics", "train-worker", "meta-init", "inference", "gateway"] {
                let command = try #require((services[name] as? [String: Any])?["command"] as? [String], "\(name) has no command")
                let run = try runAttune(["config", "print"] + command, environment: composeEnvironment)
                #expect(run.status == 0, "compose \(name): attune \(command.joined(separator: " ")): \(run.err)")
            }

            let k8s = Self.compose.deletingLastPathComponent().appendingPathComponent("ops/k8s")
            let configMap = try #require(try Yams.load(yaml: String(contentsOf: k8s.appendingPathComponent("config.yaml"), encoding: .utf8)) as? [String: Any])
            let attuneYAML = try #require((configMap["data"] as? [String: Any])?["attune.yaml"] as? String)
            let configFile = FileManager.default.temporaryDirectory.appendingPathComponent("attune-k8s-\(UUID().uuidString).yaml")
            try Data(attuneYAML.utf8).write(to: configFile)
            defer { try? FileManager.default.removeItem(at: configFile) }
            var checked = 0
            for file in try FileManager.default.contentsOfDirectory(atPath: k8s.path) where file.hasSuffix(".yaml") {
                for document in try Yams.load_all(yaml: String(contentsOf: k8s.appendingPathComponent(file), encoding: .utf8)) {
                    let object = try #require(document as? [String: Any], "\(file): not a mapping")
                    #expect(object["apiVersion"] != nil && object["kind"] != nil, "\(file): apiVersion and kind")
                    let spec = object["spec"] as? [String: Any]
                    let pod = ((spec?["template"] as? [String: Any])?["spec"] as? [String: Any])
                    for container in pod?["containers"] as? [[String: Any]] ?? [] where container["image"] as? String == "attune:latest" {
                        let args = try #require(container["args"] as? [String])
                        let run = try runAttune(["--config", configFile.path, "config", "print"] + args)
                        #expect(run.status == 0, "\(file): attune \(args.joined(separator: " ")): \(run.err)")
                        checked += 1
                    }
                }
            }
            #expect(checked == 5, "topics job, train-worker, meta-init, inference and gateway")
        }

        /// Runs `attune up` on a tiny model, sends corpus documents, interactions, a record the
        /// worker must dead-letter and a completion, then scrapes /metrics: each metric a chart
        /// queries must be there (histograms as `_bucket`/`_count`/`_sum` of an exported histogram).
        @Test func everyChartedMetricIsExportedByARunningSystem() async throws {
            let up = try RunningUp("fleet")
            let port = up.port
            let documents = (0..<3).map { #"{"domain":"d1","doc_id":"doc-\#($0)","text":"the cat sat on the mat and the dog ran","source":"test"}"# }
            _ = try await up.post("/v1/corpora", documents, headers: ["Idempotency-Key": "fleet-1"])
            let interactions = (0..<2).map { #"{"id":"i-\#($0)","tenant":"t1","user":"u","time":"2026-12-01T00:00:00Z","prompt":"the cat","response":"sat on the mat"}"# }
            _ = try await up.post("/v1/interactions", interactions)
            let bad = try runAttune(["produce", "--log-dir", up.dataDirectory + "/eventlog", "-t", "attune.interactions", "-k", "t1", "--no-validate",
                                     "--value", #"{"tenant":"t1"}"#])
            #expect(bad.status == 0, "\(bad.err)")

            func scrape() async throws -> String { try await up.get("/metrics").text }
            try await waitUntil(.seconds(240), interval: .milliseconds(500)) {
                let m = try await scrape()
                return m.contains("attune_worker_records_dead_lettered_total") && m.contains("attune_worker_consumer_lag{")
                    && Self.value(m, "attune_worker_versions_published_total") >= 2
            }
            let completion = try await LoopbackHTTP.request(
                port: port, "POST", "/v1/chat/completions",
                body: Data(#"{"model":"tenant/t1","messages":[{"role":"user","content":"the cat"}],"max_tokens":4}"#.utf8),
                headers: ["Content-Type": "application/json"])
            #expect(completion.status == 200, "\(completion.text)")

            let exported = Self.families(try await scrape())
            let charted = Self.chartedMetrics(try dashboard())
            #expect(charted.count >= 25)
            for name in charted.sorted() {
                let histogramPart = ["_bucket", "_count", "_sum"].first { name.hasSuffix($0) }
                if let part = histogramPart {
                    #expect(exported[String(name.dropLast(part.count))] == "histogram", "\(name): no such histogram exported")
                } else {
                    #expect(exported[name] != nil, "\(name) is charted but not exported")
                }
            }
            #expect(up.stop() == 0)
        }

        /// `# TYPE name kind` of a Prometheus text exposition.
        static func families(_ text: String) -> [String: String] {
            var result: [String: String] = [:]
            for line in text.split(separator: "\n") where line.hasPrefix("# TYPE ") {
                let words = line.split(separator: " ")
                if words.count == 4 { result[String(words[2])] = String(words[3]) }
            }
            return result
        }

        static func value(_ text: String, _ name: String) -> Double {
            text.split(separator: "\n").filter { $0.hasPrefix(name + " ") || $0.hasPrefix(name + "{") }
                .compactMap { $0.split(separator: " ").last.flatMap { Double($0) } }.reduce(0, +)
        }

        /// Metric names in every panel query.
        static func chartedMetrics(_ dashboard: [String: Any]) -> Set<String> {
            var names = Set<String>()
            for panel in dashboard["panels"] as? [[String: Any]] ?? [] {
                for target in panel["targets"] as? [[String: Any]] ?? [] {
                    let expr = target["expr"] as? String ?? ""
                    for match in expr.matches(of: #/(attune_[a-z0-9_]+|vllm:[a-z0-9_]+)/#) { names.insert(String(match.output.0)) }
                }
            }
            return names
        }

        private func tool(_ name: String) -> String? {
            (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":").map { "\($0)/\(name)" }
                .first { FileManager.default.isExecutableFile(atPath: $0) }
        }

        private func execute(_ path: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: path)
            p.arguments = arguments
            let pipe = Pipe()
            p.standardOutput = pipe
            p.standardError = pipe
            try p.run()
            let output = pipe.fileHandleForReading.readDataToEndOfFile()
            p.waitUntilExit()
            return (p.terminationStatus, String(decoding: output, as: UTF8.self))
        }
    }
}
