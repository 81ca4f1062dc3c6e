import AttuneTestSupport
import Foundation
import Testing

/// Configuration layers on the real executable: defaults < attune.yaml (top level, then the
/// command's section) < environment (ATTUNE_<OPTION>, then ATTUNE_<COMMAND>_<OPTION>) < command line.
struct ConfigCommandTests {
    private func folder(_ yaml: String?) throws -> URL {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("attune-config-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        if let yaml { try Data(yaml.utf8).write(to: folder.appendingPathComponent("attune.yaml")) }
        return folder
    }

    private func effective(_ arguments: [String], in folder: URL, environment: [String: String] = [:]) throws -> [String: (String, String)] {
        let result = try runAttune(["config", "print", "--format", "json"] + arguments, in: folder, environment: environment)
        #expect(result.status == 0, "\(result.err)")
        let object = try JSONSerialization.jsonObject(with: Data(result.out.utf8)) as? [String: Any]
        var rows: [String: (String, String)] = [:]
        for row in object?["options"] as? [[String: Any]] ?? [] {
            rows[row["option"] as! String] = ((row["values"] as! [String]).joined(separator: ","), row["source"] as! String)
        }
        return rows
    }

    @Test func eachLayerOverridesTheOneBelow() throws {
        let dir = try folder("""
            steps: 5
            seq-len: 96
            lr: 0.002
            train-worker:
              seq-len: 80
              tenant-domain: [acme=law, bolt=cook]
              grow-on-drift: true
            """)
        defer { try? FileManager.default.removeItem(at: dir) }
        let rows = try effective(["train-worker", "--lr", "0.003"], in: dir,
                                 environment: ["ATTUNE_STEPS": "6", "ATTUNE_BATCH_SIZE": "3", "ATTUNE_TRAIN_WORKER_BATCH_SIZE": "7"])
        #expect(rows["--rank"]! == ("8", "default"))
        #expect(rows["--steps"]! == ("6", "env ATTUNE_STEPS"))
        #expect(rows["--seq-len"]! == ("80", "file attune.yaml [train-worker]"))
        #expect(rows["--batch-size"]! == ("7", "env ATTUNE_TRAIN_WORKER_BATCH_SIZE"))
        #expect(rows["--lr"]! == ("0.003", "command line"))
        #expect(rows["--tenant-domain"]! == ("acme=law,bolt=cook", "file attune.yaml [train-worker]"))
        #expect(rows["--grow-on-drift"]! == ("true", "file attune.yaml [train-worker]"))
        // The top-level value reaches other commands; a section does not.
        let serve = try effective(["up"], in: dir)
        #expect(serve["--seq-len"]! == ("96", "file attune.yaml"))
        #expect(serve["--tenant-domain"]! == ("", "default"))
    }

    @Test func fileValuesReachTheCommand() throws {
        let dir = try folder("topics apply:\n  log-dir: from-config\n")
        defer { try? FileManager.default.removeItem(at: dir) }
        let applied = try runAttune(["topics", "apply"], in: dir)
        #expect(applied.status == 0, "\(applied.err)")
        #expect(FileManager.default.fileExists(atPath: dir.appendingPathComponent("from-config").path))
        #expect(!FileManager.default.fileExists(atPath: dir.appendingPathComponent(".attune/eventlog").path))
        let elsewhere = dir.appendingPathComponent("elsewhere.yaml")
        try Data("log-dir: \(dir.appendingPathComponent("from-config").path)\n".utf8).write(to: elsewhere)
        let other = try runAttune(["--config", elsewhere.path, "topics", "list"])
        #expect(other.status == 0, "\(other.err)")
        #expect(other.out.contains("attune.interactions"))
    }

    @Test(arguments: [
        ("up:\n  prot: 9000\n", "attune up has no option --prot (did you mean --port?)"),
        ("stpes: 9\n", "no command has an option --stpes"),
        ("servee:\n  port: 1\n", "\"servee\" is neither an option nor a command"),
        ("up: [1,2\n", "is not valid YAML"),
        ("up:\n  port: [1, 2]\n", "--port takes one value, got 2"),
        ("up:\n  port: abc\n", "invalid for '--port <port>' (set by file attune.yaml [up])"),
        ("up:\n  demo: maybe\n", "--demo is a flag: expected true or false"),
    ])
    func badConfigurationIsAClearError(yaml: String, message: String) throws {
        let dir = try folder(yaml)
        defer { try? FileManager.default.removeItem(at: dir) }
        let result = try runAttune(["config", "print", "up"], in: dir)
        #expect(result.status != 0)
        #expect(result.err.contains(message), "\(result.err)")
    }

    @Test func aMissingConfigFileAndABadEnvironmentValueAreErrors() throws {
        let missing = try runAttune(["--config", "/nonexistent/attune.yaml", "topics", "list"])
        #expect(missing.status != 0 && missing.err.contains("configuration file /nonexistent/attune.yaml does not exist"), "\(missing.err)")
        let env = try runAttune(["config", "print", "serve"], environment: ["ATTUNE_SERVE_PORT": "many"])
        #expect(env.status != 0 && env.err.contains("(set by env ATTUNE_SERVE_PORT)"), "\(env.err)")
    }

    /// A mistyped option is named as unknown, with the spelling it is close to, rather than
    /// reported as a missing required one; `config print` still passes its command line through.
    @Test func aMistypedOptionIsNamedWithASuggestion() throws {
        let typo = try runAttune(["generate", "--promt", "hi"])
        #expect(typo.status == 64)
        #expect(typo.err.contains("attune generate has no option --promt (did you mean --prompt?)"), "\(typo.err)")
        #expect(!typo.err.contains("Missing expected argument"), "\(typo.err)")
        let nested = try runAttune(["adapter", "history", "tenant/acme", "--log-dirr=x"])
        #expect(nested.status == 64 && nested.err.contains("attune adapter history has no option --log-dirr (did you mean --log-dir?)"), "\(nested.err)")
        let completion = try runAttune(["--generate-completion-script", "bash"])
        #expect(completion.status == 0 && completion.out.contains("attune"), "\(completion.err)")
        #expect(try runAttune(["serve", "--help-hidden"]).status == 0)
        let passedThrough = try runAttune(["config", "print", "serve", "--port", "9001"])
        #expect(passedThrough.status == 0 && passedThrough.out.contains("9001"), "\(passedThrough.err)")
    }

    /// The README's option reference is what `attune config reference` prints today.
    @Test func theReadmeReferenceIsCurrent() throws {
        let readme = try String(contentsOf: repositoryRoot().appendingPathComponent("README.md"), encoding: .utf8)
        let begin = try #require(readme.range(of: "<!-- reference:begin -->\n")), end = try #require(readme.range(of: "\n<!-- reference:end -->"))
        let generated = try runAttune(["config", "reference"])
        #expect(String(readme[begin.upperBound..<end.lowerBound]) == generated.out.trimmingCharacters(in: .newlines),
                "README reference is stale: regenerate with `attune config reference`")
    }

    private func repositoryRoot() -> URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    }
}
