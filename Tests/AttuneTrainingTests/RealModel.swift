import AttuneGGUF
import Foundation

/// Locates the real SmolLM2 GGUF for checks that need it: `$ATTUNE_MODEL`, else the cache of
/// `attune model fetch`. Returns nil when absent, unless `ATTUNE_REQUIRE_MODEL=1` (CI), in which
/// case its absence is an error.
enum RealModel {
    struct Missing: Error, CustomStringConvertible {
        var description: String { "ATTUNE_REQUIRE_MODEL=1 but no model: set ATTUNE_MODEL or run `attune model fetch`" }
    }

    static func path() throws -> String? {
        let env = ProcessInfo.processInfo.environment
        var candidates: [String] = []
        if let p = env["ATTUNE_MODEL"], !p.isEmpty { candidates.append(p) }
        let home = env["ATTUNE_HOME"].map { $0 + "/models" } ?? (NSHomeDirectory() + "/.cache/attune/models")
        candidates.append(home + "/SmolLM2-135M-Instruct.Q4_1.gguf")
        if let found = candidates.first(where: { FileManager.default.fileExists(atPath: $0) }) { return found }
        if env["ATTUNE_REQUIRE_MODEL"] == "1" { throw Missing() }
        return nil
    }
}
