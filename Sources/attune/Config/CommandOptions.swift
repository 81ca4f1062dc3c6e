import ArgumentParser
import Foundation

/// The options of every `attune` command, read from ArgumentParser's own description of the
/// command tree: names, defaults and help stay defined once, in the commands.
struct CommandOptions {
    /// One option or flag of a command.
    struct Option: Decodable {
        struct Name: Decodable { var kind: String; var name: String }
        var kind: String
        var names: [Name]?
        var preferredName: Name?
        var defaultValue: String?
        var abstract: String?
        var isRepeating: Bool
        var shouldDisplay: Bool
        var valueName: String?
        var parsingStrategy: String?

        /// The key in a configuration file: the long name (or the short one when there is none).
        var key: String? { preferredName?.name }
        var isFlag: Bool { kind == "flag" }
        /// How the option is written on the command line.
        var spelling: String? { preferredName.map { $0.kind == "short" ? "-" + $0.name : "--" + $0.name } }
        /// Every spelling on the command line, long and short.
        var spellings: [String] { (names ?? []).map { $0.kind == "short" ? "-" + $0.name : "--" + $0.name } }
    }

    /// A command with its options and subcommands.
    final class Command: Decodable {
        var commandName: String
        var abstract: String?
        var arguments: [Option]?
        var subcommands: [Command]?

        /// Options and flags a configuration can set (not positional arguments, not help).
        var configurable: [Option] {
            (arguments ?? []).filter { ($0.kind == "option" || $0.kind == "flag") && $0.shouldDisplay && $0.key != nil
                && !["help", "h", "version", "experimental-dump-help"].contains($0.key!) }
        }

        func subcommand(_ name: String) -> Command? { subcommands?.first { $0.commandName == name } }

        /// Whether the command takes the rest of its command line as it is (`config print`).
        var passesThrough: Bool { (arguments ?? []).contains { $0.parsingStrategy == "allRemainingInput" } }
    }

    private struct Dump: Decodable { var command: Command }

    let root: Command

    /// Reads the tree from `attune`'s own command definitions (a failure is a programming error the tests catch).
    init() {
        do {
            root = try JSONDecoder().decode(Dump.self, from: Data(Attune._dumpHelp().utf8)).command
        } catch {
            fatalError("attune's command description did not decode: \(error)")
        }
    }

    /// The command a command line names (its leading subcommand words) and how many words that took.
    func command(for arguments: [String]) -> (path: [String], command: Command) {
        var node = root, path: [String] = []
        for word in arguments {
            guard !word.hasPrefix("-"), let next = node.subcommand(word) else { break }
            node = next
            path.append(word)
        }
        return (path, node)
    }

    /// Every runnable command with its path, depth first.
    func leaves() -> [(path: [String], command: Command)] {
        func walk(_ node: Command, _ path: [String]) -> [(path: [String], command: Command)] {
            let children = (node.subcommands ?? []).filter { $0.commandName != "help" }
            if children.isEmpty { return [(path, node)] }
            return children.flatMap { walk($0, path + [$0.commandName]) }
        }
        return walk(root, [])
    }

    /// Every key any command accepts.
    var allKeys: Set<String> { Set(leaves().flatMap { $0.command.configurable.compactMap(\.key) }) }
}
