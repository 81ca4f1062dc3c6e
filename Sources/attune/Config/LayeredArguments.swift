import ArgumentParser
import Foundation
import Yams

/// Where an option's effective value came from.
enum ConfigSource: Equatable, CustomStringConvertible {
    case defaultValue
    case file(String)
    case environment(String)
    case commandLine

    var description: String {
        switch self {
        case .defaultValue: return "default"
        case .file(let where_): return "file " + where_
        case .environment(let name): return "env " + name
        case .commandLine: return "command line"
        }
    }
}

/// An `attune.yaml`: option values for every command that has the option at the top level,
/// and sections named after a command (`up:`, `train-worker:`, `topics apply:`) for one command.
struct ConfigFile {
    let path: String
    let global: [String: [String]]
    let sections: [String: [String: [String]]]

    /// The file named by `--config FILE` (taken out of `arguments`), else `$ATTUNE_CONFIG`, else
    /// `attune.yaml` in the working folder when there is one.
    static func locate(arguments: inout [String], environment: [String: String], options: CommandOptions) throws -> ConfigFile? {
        var explicit: String?
        var i = 0
        while i < arguments.count, arguments[i] != "--" {
            if arguments[i] == "--config" {
                guard i + 1 < arguments.count else { throw ValidationError("--config needs a file") }
                explicit = arguments[i + 1]
                arguments.removeSubrange(i...(i + 1))
            } else if arguments[i].hasPrefix("--config=") {
                explicit = String(arguments[i].dropFirst("--config=".count))
                arguments.remove(at: i)
            } else {
                i += 1
            }
        }
        if let path = explicit ?? environment["ATTUNE_CONFIG"].flatMap({ $0.isEmpty ? nil : $0 }) {
            guard FileManager.default.fileExists(atPath: path) else { throw ValidationError("configuration file \(path) does not exist") }
            return try ConfigFile(path: path, options: options)
        }
        return FileManager.default.fileExists(atPath: "attune.yaml") ? try ConfigFile(path: "attune.yaml", options: options) : nil
    }

    /// Reads and checks a file: every key must be an option of some command (top level) or of
    /// its section's command; values are scalars, or lists for repeatable options.
    init(path: String, options: CommandOptions) throws {
        self.path = path
        let text: String
        do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
            throw ValidationError("cannot read configuration file \(path): \(error.localizedDescription)")
        }
        let node: Node?
        do { node = try Yams.compose(yaml: text) } catch {
            throw ValidationError("\(path) is not valid YAML: \(error)")
        }
        guard let mapping = node?.mapping ?? (node == nil ? Node.Mapping([]) : nil) else {
            throw ValidationError("\(path): expected a mapping of option names (and command sections) to values")
        }
        let commands = Dictionary(options.leaves().map { ($0.path.joined(separator: " "), $0.command) }, uniquingKeysWith: { a, _ in a })
        let known = options.allKeys
        var global: [String: [String]] = [:], sections: [String: [String: [String]]] = [:]
        for (keyNode, value) in mapping {
            let key = keyNode.string ?? ""
            if let section = value.mapping {
                guard let command = commands[key] else {
                    throw ValidationError("\(path): \"\(key)\" is neither an option nor a command (sections: \(commands.keys.sorted().joined(separator: ", ")))")
                }
                let accepted = Set(command.configurable.compactMap(\.key))
                var values: [String: [String]] = [:]
                for (optionNode, optionValue) in section {
                    let option = optionNode.string ?? ""
                    guard accepted.contains(option) else {
                        throw ValidationError("\(path): \(key): attune \(key) has no option --\(option)" + Self.suggestion(option, accepted))
                    }
                    values[option] = try Self.values(optionValue, "\(path): \(key).\(option)")
                }
                sections[key] = values
            } else {
                guard known.contains(key) else { throw ValidationError("\(path): no command has an option --\(key)" + Self.suggestion(key, known)) }
                global[key] = try Self.values(value, "\(path): \(key)")
            }
        }
        self.global = global
        self.sections = sections
    }

    private static func values(_ node: Node, _ context: String) throws -> [String] {
        if let scalar = node.scalar { return [scalar.string] }
        if let sequence = node.sequence {
            return try sequence.map { item in
                guard let scalar = item.scalar else { throw ValidationError("\(context): list items must be plain values") }
                return scalar.string
            }
        }
        throw ValidationError("\(context): expected a value or a list of values")
    }

    static func suggestion(_ key: String, _ candidates: Set<String>) -> String {
        let close = candidates.filter { editDistance($0, key) <= 2 }.sorted()
        return close.isEmpty ? "" : " (did you mean \(close.map { "--" + $0 }.joined(separator: ", "))?)"
    }

    private static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        var row = Array(0...b.count)
        for i in 1...max(a.count, 1) where !a.isEmpty {
            var previous = row[0]
            row[0] = i
            for j in stride(from: 1, through: b.count, by: 1) {
                let current = row[j]
                row[j] = min(row[j] + 1, row[j - 1] + 1, previous + (a[i - 1] == b[j - 1] ? 0 : 1))
                previous = current
            }
        }
        return row[b.count]
    }
}

/// A long option the command does not have.
struct UnknownOption: Error {
    let command: String
    let message: String

    /// What the user reads: the mistake, and where the command's options are listed.
    var text: String { "Error: \(command) \(message)\nSee '\(command) --help' for its options.\n" }
}

/// A command line completed from the configuration file and the environment, in that order of
/// precedence under the command line itself: values from the lower layers are added as the
/// options they stand for, so ArgumentParser checks them exactly as if they had been typed.
struct LayeredArguments {
    /// One option's effective value and its source.
    struct Row {
        var option: CommandOptions.Option
        var values: [String]
        var source: ConfigSource
    }

    let path: [String]
    let arguments: [String]
    let rows: [Row]

    init(arguments given: [String], environment: [String: String], file: ConfigFile?, options: CommandOptions) throws {
        let (path, command) = options.command(for: given)
        let words = given.firstIndex(of: "--").map { Array(given[..<$0]) } ?? given
        try Self.rejectUnknownOptions(Array(words.dropFirst(path.count)), of: command, path: path)
        var injected: [String] = []
        var rows: [Row] = []
        for option in command.configurable {
            guard let key = option.key, let spelling = option.spelling else { continue }
            let typed = words.filter { word in
                option.spellings.contains { word == $0 || word.hasPrefix($0 + "=") || ($0.count == 2 && word.hasPrefix($0) && word.count > 2) }
            }
            if !typed.isEmpty {
                rows.append(Row(option: option, values: Self.typedValues(option, words), source: .commandLine))
                continue
            }
            var found: (values: [String], source: ConfigSource)?
            let envNames = option.preferredName?.kind == "long"
                ? ["ATTUNE_" + (path + [key]).joined(separator: "_"), "ATTUNE_" + key].map { $0.uppercased().replacingOccurrences(of: "-", with: "_") }
                : []
            for name in envNames {
                if let value = environment[name], !value.isEmpty {
                    found = (option.isRepeating ? value.split(separator: ",").map { String($0) } : [value], .environment(name))
                    break
                }
            }
            if found == nil, let file {
                let section = path.joined(separator: " ")
                if let values = file.sections[section]?[key] {
                    found = (values, .file("\(file.path) [\(section)]"))
                } else if let values = file.global[key] {
                    found = (values, .file(file.path))
                }
            }
            guard let (values, source) = found else {
                rows.append(Row(option: option, values: option.isFlag ? ["false"] : option.defaultValue.map { [$0] } ?? [], source: .defaultValue))
                continue
            }
            if option.isFlag {
                guard values.count == 1, let on = Self.boolean(values[0]) else {
                    throw ValidationError("\(source): \(spelling) is a flag: expected true or false, got \(values.joined(separator: ","))")
                }
                if on { injected.append(spelling) }
                rows.append(Row(option: option, values: [on ? "true" : "false"], source: source))
            } else {
                guard option.isRepeating || values.count == 1 else {
                    throw ValidationError("\(source): \(spelling) takes one value, got \(values.count)")
                }
                for value in values { injected += [spelling, value] }
                rows.append(Row(option: option, values: values, source: source))
            }
        }
        self.path = path
        self.arguments = path + injected + given.dropFirst(path.count)
        self.rows = rows
    }

    /// Parses the completed command line; an invalid value that came from the file or the
    /// environment is reported with where it came from.
    func parse() throws -> any ParsableCommand {
        do {
            return try Attune.parseAsRoot(arguments)
        } catch {
            let message = Attune.message(for: error)
            if let row = rows.first(where: { $0.source != .commandLine && $0.source != .defaultValue
                                             && message.contains("'\($0.option.spelling ?? "")") }) {
                throw ValidationError("\(message) (set by \(row.source))")
            }
            throw error
        }
    }

    /// Options ArgumentParser answers itself on every command.
    private static let builtInOptions: Set = ["--help", "--help-hidden", "--version", "--generate-completion-script",
                                              "--experimental-dump-help"]

    /// A mistyped long option is named as such (with the spellings it is close to) before
    /// ArgumentParser would report a required option it takes to be missing.
    private static func rejectUnknownOptions(_ words: [String], of command: CommandOptions.Command, path: [String]) throws {
        guard !command.passesThrough else { return }
        let options = command.arguments ?? []
        let known = Set(options.flatMap(\.spellings)).union(builtInOptions)
        let takingValues = Set(options.filter { $0.kind == "option" }.flatMap(\.spellings))
        var i = 0
        while i < words.count {
            let word = words[i]
            if takingValues.contains(word) {
                i += 2
                continue
            }
            let name = String(word.prefix { $0 != "=" })
            if name.hasPrefix("--"), name.count > 2, !known.contains(name) {
                let longNames = Set(options.compactMap { $0.names?.first { $0.kind == "long" }?.name })
                throw UnknownOption(command: (["attune"] + path).joined(separator: " "),
                                    message: "has no option \(name)" + ConfigFile.suggestion(String(name.dropFirst(2)), longNames))
            }
            i += 1
        }
    }

    private static func typedValues(_ option: CommandOptions.Option, _ words: [String]) -> [String] {
        if option.isFlag { return ["true"] }
        var values: [String] = []
        for (i, word) in words.enumerated() {
            for spelling in option.spellings {
                if word == spelling, i + 1 < words.count { values.append(words[i + 1]) }
                else if word.hasPrefix(spelling + "=") { values.append(String(word.dropFirst(spelling.count + 1))) }
                else if spelling.count == 2, word.hasPrefix(spelling), word.count > 2, !word.hasPrefix("--") { values.append(String(word.dropFirst(2))) }
            }
        }
        return values
    }

    private static func boolean(_ text: String) -> Bool? {
        switch text.lowercased() {
        case "true", "yes", "on", "1": return true
        case "false", "no", "off", "0": return false
        default: return nil
        }
    }
}
