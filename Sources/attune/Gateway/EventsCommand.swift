import ArgumentParser
import AttuneEventLog
import AttuneGateway
import AttuneRegistry
import Foundation

/// `attune events`: adapter.updated CloudEvents from the topic, one JSON line each.
struct EventsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "events",
        abstract: "Print adapter.updated CloudEvents (one JSON object per line), optionally following new ones.",
        discussion: """
        Reads attune.adapter-events on every partition, without a consumer group. Standard error gets \
        the cursor after each event; pass it back with --after to resume with no gap and no duplicate \
        (the same id GET /v1/events sends).
        """)

    @OptionGroup var transport: TransportOptions
    @Option(help: "Prefix of every topic name (as given to topics apply).") var topicPrefix = ""
    @Flag(help: "Keep waiting for new events (default: stop at the current end).") var follow = false
    @Option(help: "Only this adapter (repeatable), e.g. tenant/acme.") var adapter: [String] = []
    @Option(help: "Only this tenant's adapter (repeatable).") var tenant: [String] = []
    @Option(help: "Only this domain's adapter and the tenants on it (repeatable).") var domain: [String] = []
    @Option(help: "Start at earliest or latest (default: latest with --follow, as /v1/events; else earliest; ignored with --after).") var from: String?
    @Option(help: "Resume after this cursor (o0.o1.… as printed).") var after: String?

    func validate() throws {
        for name in adapter where AdapterName(parsing: name) == nil {
            throw ValidationError("--adapter \(name): expected domain/<id> or tenant/<id>")
        }
        if let from, !["earliest", "latest"].contains(from) { throw ValidationError("--from must be earliest or latest") }
    }

    func run() async throws {
        try await reportingErrors {
            let log = try transport.existingLog()
            let topic = topicPrefix + "attune.adapter-events"
            let partitions = try await EventFeed.partitionCount(log: log, topic: topic)
            let start: EventFeed.Start
            if let after {
                guard let cursor = EventCursor(parsing: after, partitions: partitions) else {
                    throw EventLogError(.invalidArgument, "--after \(after) is not a cursor of \(topic) (\(partitions) partitions)")
                }
                start = .cursor(cursor)
            } else {
                start = (from ?? (follow ? "latest" : "earliest")) == "latest" ? .latest : .earliest
            }
            let filter = EventFilter(adapters: Set(adapter.compactMap(AdapterName.init(parsing:))), tenants: Set(tenant), domains: Set(domain))
            let feed = try await EventFeed(log: log, topic: topic, partitions: partitions, start: start, filter: filter)
            let stop = StopSignal()
            while !stop.stopped {
                let events = try await feed.next(timeout: .milliseconds(500))
                for event in events {
                    emit(String(decoding: event.cloudEvent, as: UTF8.self))
                    FileHandle.standardError.write(Data("cursor \(event.cursor)\n".utf8))
                }
                if !follow, events.isEmpty, try await feed.caughtUp() { break }
            }
            await feed.close()
        }
    }
}
