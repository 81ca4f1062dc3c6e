import ArgumentParser
import AttuneEventLog
import AttuneWorker

extension AdapterCommand {
    /// `attune adapter rebase`: asks the worker that owns a tenant to retrain it onto the latest
    /// version of its domain (or of another domain) from its replay memory.
    struct Rebase: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Ask the training workers to rebase a tenant onto the latest version of its (or another) domain.",
            discussion: """
            Sends a rebase command to attune.control. The worker owning the tenant retrains the tenant adapter from its \
            replay memory on top of that domain version, gates it and publishes it as the tenant's next version. \
            Workers in --rebase on-command mode move tenants only this way; automatic ones also on every domain update.
            """)

        @OptionGroup var transport: TransportOptions
        @Option(help: "Directory of topic definitions and schemas (default: the contracts built into attune).") var topicsDir: String?
        @Option(help: "The tenant to rebase.") var tenant: String
        @Option(help: "Move the tenant to this domain (default: the domain it stands on).") var domain: String?
        @Option(help: "Prefix of every topic name, as given to the workers.") var topicPrefix = ""

        func run() async throws {
            var topics = TrainWorkerConfiguration(baseModel: "", baseModelSHA256: "")
            topics.prefixTopics(topicPrefix)
            let command = try await RebaseCommand.request(tenant: tenant, domain: domain, log: try transport.makeLog(),
                                                          catalog: try TopicCatalog.load(directory: topicsDir, namePrefix: topicPrefix), configuration: topics)
            print("requested: \(command.adapter) onto \(command.domain)")
        }
    }
}
