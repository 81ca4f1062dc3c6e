import AttuneModel
import AttuneTestSupport
import Foundation
import Testing

/// Runs one at a time with the other whole-system tests (they each start processes that train and serve).
extension ServerTests {
    /// `attune up --demo` on the real base model, from a fresh folder, as the README runs it (with
    /// few training steps): killed with SIGKILL while training, then run to the end twice.
    @Suite struct UpCommandTests {
        static let small = ["--port", "0", "--steps", "1", "--batch-size", "2", "--seq-len", "64", "--demo-documents", "8",
                            "--batch-seconds", "2", "--domain-wait", "120", "--status-interval", "60"]

        @Test func theDemoSurvivesSIGKILLAndResumesToTheSameVersions() async throws {
            guard let model = try BaseModelStore.forChecks() else { return }
            let folder = FileManager.default.temporaryDirectory.appendingPathComponent("attune-up-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: folder) }
            let arguments = ["up", "--demo", "--model", model] + Self.small

            // Killed once its records are in and training runs: nothing it acknowledged may be lost.
            let (first, seen) = try startAttune(arguments, in: folder, until: "== 3.")
            #expect(seen.contains("/v1/corpora: 8 accepted"), "\(seen)")
            kill(first.processIdentifier, SIGKILL)
            first.waitUntilExit()
            #expect(first.terminationReason == .uncaughtSignal)

            let second = try runAttune(arguments, in: folder)
            #expect(second.status == 0, "\(second.out)\n\(second.err)")
            #expect(second.out.contains("/v1/corpora: 0 accepted, 8 already there"), "\(second.out)")
            #expect(second.out.contains("/v1/interactions: 0 accepted, 8 already there"), "\(second.out)")
            let versions = Self.versions(second.out)
            #expect(Set(versions.map { $0.split(separator: "@")[0] }) == ["domain/licenses", "tenant/acme", "tenant/globex"], "\(second.out)")
            for model in ["base", "domain/licenses@", "tenant/acme@", "tenant/globex@"] {
                #expect(second.out.contains("   \(model)"), "no answer from \(model)")
            }
            let table = Self.lossTable(second.out)
            #expect(Set(table.keys) == ["licenses", "acme", "globex"], "\(second.out)")
            for (set, row) in table {
                #expect(row.count == 4 && row.allSatisfy { $0.isFinite && $0 > 0 && $0 < 20 }, "\(set): \(row)")
            }
            #expect(second.out.contains("== done."))

            // Nothing new to train: the same versions, announced once each.
            let third = try runAttune(arguments, in: folder)
            #expect(third.status == 0, "\(third.err)")
            #expect(Self.versions(third.out).sorted() == versions.sorted(), "\(third.out)")
            let log = try String(contentsOf: folder.appendingPathComponent(".attune/attune.log"), encoding: .utf8)
            let stops = log.split(separator: "\n").filter { $0.contains(" info stopped ") }
            #expect(stops.count == 2 && stops.last?.contains(" published=0 ") == true, "the last run published nothing: \(stops)")
        }

        @Test func aDataFolderThatCannotBeWrittenIsAClearError() throws {
            let folder = FileManager.default.temporaryDirectory.appendingPathComponent("attune-up-ro-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: folder) }
            let file = folder.appendingPathComponent("not-a-folder")
            try Data("x".utf8).write(to: file)
            let result = try runAttune(["up", "--data-dir", file.path + "/data", "--port", "0"], in: folder)
            #expect(result.status != 0)
            #expect(result.err.contains("cannot create the data folder"), "\(result.err)")
        }

        /// `name@version` of every version line the demo printed.
        static func versions(_ output: String) -> [String] {
            output.split(separator: "\n").compactMap { line in
                let words = line.split(separator: " ")
                guard words.count > 2, words[1] == "on", words[0].contains("@"), line.contains(" records") else { return nil }
                return String(words[0])
            }
        }

        /// Held-out loss rows: set → losses of base, domain and the two tenants.
        static func lossTable(_ output: String) -> [String: [Double]] {
            var rows: [String: [Double]] = [:]
            for line in output.split(separator: "\n") {
                let words = line.split(separator: " ")
                guard let first = words.first, ["licenses", "acme", "globex"].contains(first) else { continue }
                rows[String(first)] = words.dropFirst().prefix(4).compactMap { Double($0) }
            }
            return rows
        }
    }
}
