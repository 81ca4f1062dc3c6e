import AttuneEventLog
import AttuneRegistry
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import Metrics

/// Limits and names of the gateway.
public struct GatewayConfiguration: Sendable {
    /// Prefix of every topic name (as given to `attune topics apply`).
    public var topicPrefix = ""
    /// Largest ingestion body (413 beyond).
    public var maxBodyBytes = 16 << 20
    /// Most records in one ingestion request.
    public var maxRecords = 10_000
    /// A comment line on idle event streams this often, so proxies keep them open.
    public var heartbeat = Duration.seconds(15)
    /// How long a produce may wait for the log's acknowledgement before it is reported failed.
    public var ackTimeout = Duration.seconds(15)
    /// Produce every completion a tenant adapter serves to `attune.interactions` (`attune serve`).
    public var logInteractions = false

    public init() {}
}

/// The HTTP front door for applications: interactions and corpora in (validated, keyed,
/// acknowledged, idempotent), `adapter.updated` events out as server-sent events, every
/// request bound to its key's tenants and roles. Mounted by `attune gateway` and `attune serve`.
public final class Gateway: Sendable {
    public let configuration: GatewayConfiguration
    public let access: AccessControl
    let log: any EventLog
    let interactions: Ingestor
    let corpora: Ingestor
    let producer: any EventProducer
    let journal: IdempotencyJournal
    let eventsTopic: String
    let eventPartitions: Int
    let metrics: GatewayMetrics
    let logger: Logger
    let subscriptions: SubscriptionStore
    let completions: CompletionLog
    /// Delivers events to webhook subscriptions; run it beside the HTTP server.
    public let webhooks: WebhookDispatcher
    /// Whether the log answers (`attune gateway`'s `/readyz`); kept current by `watchLog`.
    public let health = LogHealth()

    /// Probes the log until cancelled, for `health`.
    public func watchLog() async {
        await health.watch(probe: { [interactions] in try await interactions.probeLog() }) { [logger] answering, error in
            if answering { logger.notice("the event log answers again") } else { logger.error("the event log does not answer: \(error.map { "\($0)" } ?? "")") }
        }
    }

    /// Opens the topics (they must exist) and the idempotency journal in `stateDirectory`.
    public init(log: any EventLog, catalog: TopicCatalog, access: AccessControl, stateDirectory: String,
                configuration: GatewayConfiguration, metrics: GatewayMetrics, logger: Logger,
                webhookBackoff: (first: Duration, cap: Duration) = (.milliseconds(500), .seconds(60))) async throws {
        var producerConfiguration = ProducerConfiguration()
        producerConfiguration.lingerMs = 2
        let ackMs = Int(configuration.ackTimeout.components.seconds * 1000)
        producerConfiguration.properties = ["message.timeout.ms": "\(ackMs)"]
        let producer = try log.makeProducer(producerConfiguration)
        let journal = try IdempotencyJournal(path: stateDirectory + "/idempotency.jsonl")
        let prefix = configuration.topicPrefix
        do {
            interactions = try await Ingestor(log: log, catalog: catalog, topic: prefix + "attune.interactions", scope: .tenant,
                                              producer: producer, journal: journal)
            corpora = try await Ingestor(log: log, catalog: catalog, topic: prefix + "attune.corpora", scope: .domain,
                                         producer: producer, journal: journal)
            eventsTopic = prefix + "attune.adapter-events"
            eventPartitions = try await EventFeed.partitionCount(log: log, topic: eventsTopic)
        } catch {
            await producer.close()
            journal.close()
            throw error
        }
        subscriptions = try SubscriptionStore(path: stateDirectory + "/subscriptions.json")
        completions = try CompletionLog(path: stateDirectory + "/completions.jsonl")
        webhooks = WebhookDispatcher(store: subscriptions, log: log, topic: eventsTopic, partitions: eventPartitions, keys: access.keys,
                                     metrics: metrics.factory, logger: logger, backoff: webhookBackoff)
        self.log = log
        self.producer = producer
        self.journal = journal
        self.access = access
        self.configuration = configuration
        self.metrics = metrics
        self.logger = logger
        logger.info("gateway state", metadata: ["directory": "\(stateDirectory)"])
    }

    public func close() async {
        await interactions.close()
        await corpora.close()
        await producer.close()
        journal.close()
        completions.close()
    }

    /// Remembers a completion a tenant adapter served (for feedback by its id) and, with
    /// `logInteractions`, produces it to `attune.interactions` as an interaction of its tenant.
    /// The produce runs in the background: the answer to the client does not wait for it.
    public func completed(_ completion: ServedCompletion) {
        completions.record(completion)
        guard configuration.logInteractions else { return }
        let record = interaction(id: completion.id, completion, feedback: nil, correction: nil)
        Task { [interactions, logger] in
            let result = await interactions.ingest([IngestItem(line: 1, bytes: record)], principal: .open, requestKey: nil)
            if let problem = result.first?.error {
                logger.warning("a served completion was not logged as an interaction", metadata: ["id": "\(completion.id)", "error": "\(problem.message)"])
            }
        }
    }

    private func interaction(id: String, _ c: ServedCompletion, feedback: String?, correction: String?) -> [UInt8] {
        var object: [String: Any] = ["id": id, "tenant": c.tenant, "user": c.user, "time": ISO8601DateFormatter().string(from: c.time),
                                     "prompt": c.prompt, "response": c.response, "served_by": c.model]
        if let feedback { object["feedback"] = feedback }
        if let correction { object["correction"] = correction }
        return Array((try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data())
    }

    /// Adds `POST /v1/interactions`, `POST /v1/corpora`, `GET /v1/events` and `GET /v1/me`.
    public func addRoutes(to router: Router<BasicRequestContext>) {
        router.post("/v1/interactions") { request, _ in
            await self.respond { try await self.ingest(request, into: self.interactions, role: .ingest) }
        }
        router.post("/v1/feedback") { request, _ in
            await self.respond { try await self.feedback(request) }
        }
        router.post("/v1/corpora") { request, _ in
            await self.respond { try await self.ingest(request, into: self.corpora, role: .admin) }
        }
        router.get("/v1/events") { request, _ in
            await self.respond { try await self.events(request) }
        }
        router.post("/v1/subscriptions") { request, _ in
            await self.respond { try await self.subscribe(request) }
        }
        router.get("/v1/subscriptions") { request, _ in
            await self.respond {
                let principal = try self.access.authorize(request, role: .subscribe)
                let visible = self.subscriptions.all.filter { principal.isAdmin || $0.keyID == principal.keyID }
                return try Self.json(SubscriptionList(data: visible.map(SubscriptionView.init)))
            }
        }
        router.delete("/v1/subscriptions/{id}") { request, context in
            await self.respond {
                let principal = try self.access.authorize(request, role: .subscribe)
                guard let id = context.parameters.get("id"), let found = self.subscriptions.get(id),
                      principal.isAdmin || found.keyID == principal.keyID else {
                    throw APIError(.notFound, "no subscription with this id", code: "unknown_subscription")
                }
                try self.subscriptions.remove(id)
                return Response(status: .noContent)
            }
        }
        router.get("/v1/me") { request, _ in
            await self.respond {
                let principal = try self.access.authorize(request, role: nil)
                struct Me: Encodable {
                    let key: String
                    let tenants: [String]
                    let roles: [String]
                    let open: Bool
                }
                return try Self.json(Me(key: principal.keyID, tenants: principal.tenants.list,
                                        roles: principal.roles.map(\.rawValue).sorted(), open: self.access.isOpen))
            }
        }
    }

    /// Runs a handler, answering errors as JSON error objects (and counting refused keys).
    public func respond(_ body: () async throws -> Response) async -> Response {
        let response = await APIError.responding(log: { [logger] in logger.error("\($0)") }, body)
        if response.status == .unauthorized { metrics.authFailures.increment() }
        return response
    }

    // MARK: Ingestion

    /// Per-record results; when every record was refused, also the first refusal as the
    /// response's error object.
    private struct IngestResponse: Encodable {
        struct Failure: Encodable {
            let message: String
            let type: String
            let code: String
        }
        let object = "ingest.result"
        let accepted: Int
        let duplicates: Int
        let refused: Int
        let results: [IngestResult]
        let error: Failure?
    }

    private func ingest(_ request: Request, into ingestor: Ingestor, role: Role) async throws -> Response {
        let principal = try access.authorize(request, role: role)
        var request = request
        let body: ByteBuffer
        do {
            body = try await request.collectBody(upTo: configuration.maxBodyBytes)
        } catch {
            throw APIError(.contentTooLarge, "the request body is over the \(configuration.maxBodyBytes)-byte limit", code: "body_too_large")
        }
        let items = try IngestItem.split(Array(body.readableBytesView), contentType: request.headers[.contentType])
        guard !items.isEmpty else { throw APIError.badRequest("the body holds no records", code: "empty_body") }
        guard items.count <= configuration.maxRecords else {
            throw APIError(.contentTooLarge, "\(items.count) records in one request; the limit is \(configuration.maxRecords)", code: "too_many_records")
        }
        let requestKey = request.headers[HTTPField.Name("Idempotency-Key")!]
        if let requestKey, !(1...255).contains(requestKey.count) {
            throw APIError.badRequest("Idempotency-Key must be 1–255 characters", code: "invalid_idempotency_key")
        }
        let start = ContinuousClock.now
        let results = await ingestor.ingest(items, principal: principal, requestKey: requestKey)
        metrics.ackLatency.recordNanoseconds((ContinuousClock.now - start).nanosecondCount)
        for status in [IngestResult.Status.accepted, .duplicate, .refused] {
            let n = results.count(where: { $0.status == status })
            if n > 0 { metrics.records(topic: ingestor.topic, status: status).increment(by: Int64(n)) }
        }
        let refused = results.filter { $0.status == .refused }
        let allRefused = refused.count == results.count
        let failure = allRefused ? refused[0].error.map {
            IngestResponse.Failure(message: refused.count == 1 ? $0.message : "every record was refused; line \(refused[0].line): \($0.message)",
                                   type: APIError(HTTPResponse.Status(code: $0.status), "").type, code: $0.code)
        } : nil
        let answer = IngestResponse(accepted: results.count(where: { $0.status == .accepted }),
                                    duplicates: results.count(where: { $0.status == .duplicate }), refused: refused.count, results: results,
                                    error: failure)
        // All refused: the first refusal's status; mixed: 207; none refused: 200.
        let status: HTTPResponse.Status = refused.isEmpty ? .ok
            : allRefused ? HTTPResponse.Status(code: refused[0].error!.status) : HTTPResponse.Status(code: 207)
        var response = try Self.json(answer, status: status)
        if refused.count == results.count, refused.contains(where: { $0.error?.status == 503 }) { response.headers[.retryAfter] = "1" }
        return response
    }

    // MARK: Feedback

    private struct FeedbackRequest: Decodable {
        var id: String
        var rating: String
        var correction: String?
    }

    /// A rating (and optional correction) for a served completion, produced as an interaction
    /// of its tenant (`<id>#feedback`: the worker trains on the correction, or on an approved
    /// response; a rejected one without correction teaches nothing).
    private func feedback(_ request: Request) async throws -> Response {
        let principal = try access.authorize(request, role: .ingest)
        var request = request
        let buffer = try await request.collectBody(upTo: 1 << 20)
        let body: FeedbackRequest
        do {
            body = try JSONDecoder().decode(FeedbackRequest.self, from: Data(buffer.readableBytesView))
        } catch {
            throw APIError.badRequest("the body must be {\"id\", \"rating\": \"up\"|\"down\", \"correction\"?}", code: "invalid_feedback")
        }
        guard ["up", "down"].contains(body.rating) else { throw APIError.badRequest("rating must be up or down", code: "invalid_feedback") }
        guard let completion = completions.lookup(body.id), principal.actsFor(completion.tenant) else {
            throw APIError(.notFound, "no completion \(body.id) served to this key's tenants (feedback names completions served by attune serve)",
                           code: "unknown_completion")
        }
        let record = interaction(id: body.id + "#feedback", completion, feedback: body.rating, correction: body.correction)
        let results = await interactions.ingest([IngestItem(line: 1, bytes: record)], principal: principal, requestKey: nil)
        let result = results[0]
        if let problem = result.error {
            throw APIError(HTTPResponse.Status(code: problem.status), problem.message, code: problem.code)
        }
        struct Answer: Encodable {
            let object = "feedback"
            let id: String
            let model: String
            let status: String
            let partition: Int?
            let offset: Int64?
        }
        return try Self.json(Answer(id: body.id, model: completion.model, status: result.status.rawValue,
                                    partition: result.partition, offset: result.offset))
    }

    // MARK: Webhooks

    private struct SubscriptionRequest: Decodable {
        var url: String
        var mode: Subscription.Mode?
        var adapter: [String]?
        var tenant: [String]?
        var domain: [String]?
        var from: String?
    }

    /// A subscription as the API shows it (the secret only in the creation answer).
    private struct SubscriptionView: Encodable {
        let object = "subscription"
        let id: String
        let url: String
        let mode: Subscription.Mode
        let adapter: [String]
        let tenant: [String]
        let domain: [String]
        let created: Int
        let cursor: String?
        let disabled: String?
        var secret: String?

        init(_ s: Subscription) {
            id = s.id
            url = s.url
            mode = s.mode
            adapter = s.adapters
            tenant = s.tenants
            domain = s.domains
            created = Int(s.created.timeIntervalSince1970)
            cursor = s.cursor.map { EventCursor(next: $0).description }
            disabled = s.disabled
        }
    }

    private struct SubscriptionList: Encodable {
        let object = "list"
        let data: [SubscriptionView]
    }

    private func subscribe(_ request: Request) async throws -> Response {
        let principal = try access.authorize(request, role: .subscribe)
        var request = request
        let buffer = try await request.collectBody(upTo: 64 << 10)
        let body: SubscriptionRequest
        do {
            body = try JSONDecoder().decode(SubscriptionRequest.self, from: Data(buffer.readableBytesView))
        } catch {
            throw APIError.badRequest("the body must be {\"url\", \"mode\"?, \"adapter\"?, \"tenant\"?, \"domain\"?, \"from\"?}: \(error)",
                                      code: "invalid_subscription")
        }
        guard let url = URL(string: body.url), ["http", "https"].contains(url.scheme?.lowercased() ?? ""), url.host != nil else {
            throw APIError.badRequest("url must be an absolute http or https URL", code: "invalid_url")
        }
        for name in body.adapter ?? [] {
            guard let parsed = AdapterName(parsing: name) else { throw APIError.badRequest("adapter \(name): expected domain/<id> or tenant/<id>", code: "invalid_adapter") }
            if !principal.mayUse(parsed) {
                throw APIError(.forbidden, "this key may not follow \(parsed)", code: "tenant_forbidden")
            }
        }
        for tenant in body.tenant ?? [] where !principal.actsFor(tenant) {
            throw APIError(.forbidden, "this key may not follow tenant \(tenant)", code: "tenant_forbidden")
        }
        var cursor: [Int64]?
        switch body.from ?? "latest" {
        case "latest": cursor = nil
        case "earliest": cursor = [Int64](repeating: 0, count: eventPartitions)
        case let other: throw APIError.badRequest("from must be earliest or latest, not \(other)", code: "invalid_from")
        }
        let subscription = Subscription(
            id: "sub_" + KeySecret.digest(UUID().uuidString).prefix(16), url: body.url, mode: body.mode ?? .structured,
            adapters: body.adapter ?? [], tenants: body.tenant ?? [], domains: body.domain ?? [], keyID: principal.keyID,
            scope: principal.tenants, isAdmin: principal.isAdmin, secret: "whsec_" + KeySecret.generate().dropFirst(4), created: Date(),
            cursor: cursor, disabled: nil)
        try subscriptions.add(subscription)
        var view = SubscriptionView(subscription)
        view.secret = subscription.secret
        return try Self.json(view, status: .created)
    }

    // MARK: Events

    private func events(_ request: Request) async throws -> Response {
        let principal = try access.authorize(request, role: .subscribe)
        let query = request.uri.queryParameters
        var filter = EventFilter(principal: principal)
        for value in query.getAll("adapter").map({ "\($0)" }) {
            guard let name = AdapterName(parsing: value) else {
                throw APIError.badRequest("adapter \(value): expected domain/<id> or tenant/<id>", code: "invalid_adapter")
            }
            if !principal.mayUse(name) {
                throw APIError(.forbidden, "this key may not follow \(name)", code: "tenant_forbidden")
            }
            filter.adapters.insert(name)
        }
        for tenant in query.getAll("tenant").map({ "\($0)" }) {
            guard principal.actsFor(tenant) else { throw APIError(.forbidden, "this key may not follow tenant \(tenant)", code: "tenant_forbidden") }
            filter.tenants.insert(tenant)
        }
        filter.domains = Set(query.getAll("domain").map({ "\($0)" }))
        let start: EventFeed.Start
        if let last = request.headers[HTTPField.Name("Last-Event-ID")!] ?? query["last_event_id"].map({ "\($0)" }) {
            guard let cursor = EventCursor(parsing: last, partitions: eventPartitions) else {
                throw APIError.badRequest("Last-Event-ID \(last) is not an event id of this stream", code: "invalid_last_event_id")
            }
            start = .cursor(cursor)
        } else {
            switch query["from"].map({ "\($0)" }) ?? "latest" {
            case "latest": start = .latest
            case "earliest": start = .earliest
            case let other: throw APIError.badRequest("from must be earliest or latest, not \(other)", code: "invalid_from")
            }
        }
        let feed = try await EventFeed(log: log, topic: eventsTopic, partitions: eventPartitions, start: start, filter: filter)
        let heartbeat = configuration.heartbeat
        let metrics = self.metrics
        return Response(status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-cache"], body: ResponseBody { writer in
            metrics.eventStreams.increment()
            do {
                try await writer.write(ByteBuffer(string: "retry: 1000\n: attune adapter events from \(feed.cursor)\n\n"))
                var quiet = ContinuousClock.now
                while !Task.isCancelled {
                    let events = try await feed.next(timeout: .milliseconds(500))
                    for event in events {
                        try await writer.write(Self.sse(event))
                        metrics.eventsSent.increment()
                    }
                    if !events.isEmpty {
                        quiet = .now
                    } else if ContinuousClock.now - quiet >= heartbeat {
                        try await writer.write(ByteBuffer(string: ": heartbeat\n\n"))
                        quiet = .now
                    }
                }
            } catch {}
            metrics.eventStreams.decrement()
            await feed.close()
            try? await writer.finish(nil)
        })
    }

    /// One event in SSE framing: the cursor as id, the CloudEvent as data (one `data:` line
    /// per line of it).
    static func sse(_ event: FeedEvent) -> ByteBuffer {
        var buffer = ByteBuffer(string: "id: \(event.cursor)\nevent: adapter.updated\n")
        for line in event.cloudEvent.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
            buffer.writeString("data: ")
            buffer.writeBytes(line)
            buffer.writeString("\n")
        }
        buffer.writeString("\n")
        return buffer
    }

    static func json(_ value: some Encodable, status: HTTPResponse.Status = .ok) throws -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return Response(status: status, headers: [.contentType: "application/json"],
                        body: .init(byteBuffer: ByteBuffer(bytes: try encoder.encode(value))))
    }
}
