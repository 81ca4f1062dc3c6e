import ArgumentParser
import Foundation

/// `attune config …`: the effective configuration and the option reference.
struct ConfigCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config",
        abstract: "Show the effective configuration of a command, or the reference of every option.",
        subcommands: [Print.self, Reference.self])

    struct Print: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show every option of a command with its effective value and where it came from.",
            discussion: """
            Layers, lowest first: the option's default, the configuration file (its top level, then the command's \
            section), the environment (ATTUNE_<OPTION>, then ATTUNE_<COMMAND>_<OPTION>), the command line. \
            Example: attune config print up --port 9000 (--config FILE works here as everywhere).
            """)

        @Option(help: "text or json.") var format = "text"
        @Argument(parsing: .captureForPassthrough, help: "The command and any options to it (default: up).")
        var command: [String] = []

        func validate() throws {
            guard ["text", "json"].contains(format) else { throw ValidationError("--format must be text or json") }
        }

        func run() throws {
            var arguments = command.isEmpty ? ["up"] : command
            let options = CommandOptions()
            let environment = ProcessInfo.processInfo.environment
            let file = try ConfigFile.locate(arguments: &arguments, environment: environment, options: options)
            let layered = try LayeredArguments(arguments: arguments, environment: environment, file: file, options: options)
            guard !layered.path.isEmpty, options.command(for: arguments).command.subcommands?.isEmpty ?? true else {
                throw ValidationError("\(arguments.first ?? "") is not a command; try attune config print up")
            }
            _ = try layered.parse()
            if format == "json" {
                let rows = layered.rows.map { ["option": $0.option.spelling ?? "", "values": $0.values, "source": $0.source.description] as [String: Any] }
                let object: [String: Any] = ["command": layered.path.joined(separator: " "), "file": file?.path ?? NSNull(), "options": rows]
                print(String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys]), as: UTF8.self))
                return
            }
            print("# attune \(layered.path.joined(separator: " ")) — configuration file: \(file?.path ?? "none")")
            let width = layered.rows.map { ($0.option.spelling ?? "").count }.max() ?? 0
            for row in layered.rows {
                let value = row.values.isEmpty ? "(none)" : row.values.joined(separator: ", ")
                print((row.option.spelling ?? "").padding(toLength: width + 2, withPad: " ", startingAt: 0)
                      + value.padding(toLength: max(value.count, 28) + 2, withPad: " ", startingAt: 0) + row.source.description)
            }
        }
    }

    struct Reference: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print every option of every command with its default, as Markdown (the README's reference).")

        func run() {
            print(ConfigReference.markdown(CommandOptions()))
        }
    }
}

/// The README's option reference, generated from the commands themselves.
enum ConfigReference {
    static func markdown(_ options: CommandOptions) -> String {
        var out: [String] = []
        for (path, command) in options.leaves() where path.first != "config" {
            let rows = command.configurable
            guard !rows.isEmpty else { continue }
            out.append("<details><summary><code>attune \(path.joined(separator: " "))</code> — \(command.abstract ?? "")</summary>\n")
            out.append("| option | default | |\n|---|---|---|")
            for option in rows {
                let value = option.isFlag ? "off" : option.defaultValue.map { "`\($0)`" } ?? "—"
                let help = (option.abstract ?? "").replacingOccurrences(of: "|", with: "\\|")
                out.append("| `\(option.spelling ?? "")`\(option.isRepeating ? " (repeatable)" : "") | \(value) | \(help) |")
            }
            out.append("\n</details>")
        }
        return out.joined(separator: "\n")
    }
}
