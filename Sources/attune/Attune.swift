import ArgumentParser

/// The `attune` command line: model, training and event-log tools.
@main
struct Attune: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "attune",
        abstract: "Keep language models personal, continuously.",
        subcommands: [
            ModelCommand.self, GenerateCommand.self, ScoreCommand.self, ServeCommand.self, UpCommand.self, LogprobsCommand.self, FinetuneCommand.self, AdapterCommand.self,
            TrainWorkerCommand.self, GatewayCommand.self, KeysCommand.self, EventsCommand.self, TopicsCommand.self, ProduceCommand.self, ConsumeCommand.self, BenchCommand.self,
        ]
    )
}
