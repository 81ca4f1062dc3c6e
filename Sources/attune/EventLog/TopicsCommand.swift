import ArgumentParser
import AttuneEventLog
import Foundation

/// `attune topics apply|list|describe`.
struct TopicsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "topics",
        abstract: "Create the declared topics and inspect topics.",
        subcommands: [Apply.self, List.self, Describe.self]
    )

    struct Apply: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create missing topics from topics/*.json and report drift (idempotent).")

        @OptionGroup var transport: TransportOptions
        @Option(name: .customLong("topics-dir"), help: "Directory of topic definitions and schemas (default: the contracts built into attune).")
        var topicsDirectory: String?
        @Option(help: "Put this before every topic name but the DLQ's (e.g. staging.), for a deployment beside others.")
        var topicPrefix = ""
        @Flag(name: .customLong("dry-run"), help: "Only report what would change.")
        var dryRun = false

        func run() async throws {
            try await reportingErrors {
                let catalog = try TopicCatalog.load(directory: topicsDirectory, namePrefix: topicPrefix)
                let admin = try transport.makeLog().makeAdmin()
                let cap = try await (admin as? KafkaAdmin)?.brokerCount()
                let plan = try await catalog.apply(to: admin, dryRun: dryRun, maxReplicationFactor: cap)
                await admin.close()
                for item in plan { print((dryRun && item.action == .create ? "would " : "") + item.description) }
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List topics.")
        @OptionGroup var transport: TransportOptions

        func run() async throws {
            try await reportingErrors {
                let admin = try transport.makeLog().makeAdmin()
                let names = try await admin.listTopics()
                await admin.close()
                names.forEach { print($0) }
            }
        }
    }

    struct Describe: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show partitions, replication, configs and watermarks of topics.")
        @OptionGroup var transport: TransportOptions
        @Argument(help: "Topics to describe (default: all).")
        var topics: [String] = []

        func run() async throws {
            try await reportingErrors {
                let log = try transport.makeLog()
                let admin = try log.makeAdmin()
                let names = topics.isEmpty ? try await admin.listTopics() : topics
                let consumer = try log.makeConsumer(ConsumerConfiguration())
                var missing: [String] = []
                for name in names {
                    guard let topic = try await admin.describeTopic(name) else {
                        missing.append(name)
                        continue
                    }
                    print("\(topic.name)  partitions=\(topic.partitions) replication=\(topic.replicationFactor)")
                    for (key, value) in topic.configs.sorted(by: { $0.key < $1.key }) { print("  \(key)=\(value)") }
                    for p in 0..<topic.partitions {
                        let marks = try await consumer.watermarks(TopicPartition(name, p))
                        print("  [\(p)] low=\(marks.low) high=\(marks.high)")
                    }
                }
                await consumer.close()
                await admin.close()
                if !missing.isEmpty { throw EventLogError(.unknownTopic, "no such topic: \(missing.joined(separator: ", "))") }
            }
        }
    }
}
