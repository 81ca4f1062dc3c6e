import ArgumentParser

/// The `attune` command line: model, training and event-log tools.
@main
struct Attune: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "attune",
        abstract: "Keep language models personal, continuously.",
        subcommands: [TopicsCommand.self, ProduceCommand.self, ConsumeCommand.self,
        ]
    )
}
