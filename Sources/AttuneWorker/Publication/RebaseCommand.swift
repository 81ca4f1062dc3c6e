import AttuneEventLog
import AttuneRegistry
import Foundation

/// An operator's request, on `attune.control`, to move a tenant adapter onto a domain version
/// (or a newer version of that domain). Requests are idempotent: a tenant already on that
/// version or newer ignores it, so workers can read the topic from its beginning.
public struct RebaseCommand: Codable, Sendable, Equatable {
    public var command = "rebase"
    public var adapter: String
    public var domain: String
    public var time: String

    /// A request for `tenant` to stand on `domain` (`domain/<name>@<version>`).
    public init(tenant: AdapterName, domain: String, time: Date = Date()) {
        adapter = tenant.description
        self.domain = domain
        self.time = ISO8601DateFormatter().string(from: time)
    }

    /// The domain adapter's name and the version asked for.
    var target: (name: AdapterName, version: Int)? {
        guard let reference = AdapterReference(parsing: domain), reference.name.kind == .domain, let version = reference.version else { return nil }
        return (reference.name, version)
    }

    /// Finds the latest version of the tenant's domain (or of `domain`, to move it to another
    /// domain) on the adapters topic and sends the request to the control topic.
    public static func request(tenant: String, domain: String?, log: any EventLog, catalog: TopicCatalog,
                               configuration c: TrainWorkerConfiguration) async throws -> RebaseCommand {
        guard let tenantName = AdapterName.tenant(tenant) else { throw EventLogError(.invalidArgument, "\(tenant) is not a valid tenant id") }
        let registry = try await AdapterRegistry(log: log, adaptersTopic: c.adaptersTopic, eventsTopic: c.eventsTopic)
        var latest: [AdapterName: AdapterRelease] = [:]
        do {
            try await registry.catchUp()
            for release in await registry.stored(from: 0).releases {
                guard let name = release.name, release.version > (latest[name]?.version ?? 0) else { continue }
                latest[name] = release
            }
        } catch {
            await registry.close()
            throw error
        }
        await registry.close()
        guard let current = latest[tenantName] else {
            throw EventLogError(.invalidArgument, "tenant \(tenant) has no published adapter on \(c.adaptersTopic)")
        }
        let requested = try domain.map { id in
            guard let name = AdapterName.domain(id) else { throw EventLogError(.invalidArgument, "\(id) is not a valid domain id") }
            return name
        }
        guard let name = requested ?? current.domainReference?.name else {
            throw EventLogError(.invalidArgument, "tenant \(tenant) stands on no domain; name one with --domain")
        }
        guard let target = latest[name] else { throw EventLogError(.invalidArgument, "\(name) has no published version") }
        let command = RebaseCommand(tenant: tenantName, domain: target.id)
        let producer = ValidatingProducer(try log.makeProducer(), catalog: catalog, policy: .reject)
        _ = try await producer.send(ProducerRecord(topic: c.controlTopic, key: Array(command.adapter.utf8),
                                                   value: Array(try JSONEncoder.sorted.encode(command))))
        await producer.close()
        return command
    }
}
