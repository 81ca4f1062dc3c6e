import ArgumentParser
import AttuneTensor
import Foundation

/// The `attune` command line: model, training, serving and event-log tools.
@main
struct Attune: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "attune",
        abstract: "Keep language models personal, continuously.",
        discussion: """
        Every option can also come from a configuration file (--config FILE, $ATTUNE_CONFIG, or attune.yaml in the \
        working folder) and from the environment (ATTUNE_<COMMAND>_<OPTION> or ATTUNE_<OPTION>); the command line \
        wins over the environment, which wins over the file. `attune config print COMMAND` shows the effective values.
        """,
        subcommands: [
            UpCommand.self, ModelCommand.self, GenerateCommand.self, ScoreCommand.self, ServeCommand.self, LogprobsCommand.self,
            FinetuneCommand.self, ReplayCommand.self, MetaInitCommand.self, EvalCommand.self, ReportCommand.self, AdapterCommand.self,
            TrainWorkerCommand.self, GatewayCommand.self, KeysCommand.self,
            EventsCommand.self, TopicsCommand.self, ProduceCommand.self, ConsumeCommand.self, ConfigCommand.self, BenchCommand.self,
        ]
    )

    /// Parses the command line completed by the configuration layers, then runs the command.
    static func main() async {
        BlasCore.selectForThisCPU()
        do {
            var arguments = Array(CommandLine.arguments.dropFirst())
            let options = CommandOptions()
            let environment = ProcessInfo.processInfo.environment
            let file = try ConfigFile.locate(arguments: &arguments, environment: environment, options: options)
            if let file { setenv("ATTUNE_CONFIG", file.path, 1) }
            let layered = try LayeredArguments(arguments: arguments, environment: environment, file: file, options: options)
            var command = try layered.parse()
            do {
                if var asyncCommand = command as? AsyncParsableCommand {
                    try await asyncCommand.run()
                } else {
                    try command.run()
                }
            } catch let error as ValidationError {
                // A value the command rejected while running: the message alone, not the
                // top-level usage that ArgumentParser would print after it.
                FileHandle.standardError.write(Data("Error: \(error.message)\n".utf8))
                exit(withError: ExitCode.validationFailure)
            }
        } catch let error as UnknownOption {
            FileHandle.standardError.write(Data(error.text.utf8))
            exit(withError: ExitCode.validationFailure)
        } catch {
            exit(withError: error)
        }
    }
}
