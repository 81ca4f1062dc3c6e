import AttuneGateway
import AttuneTestSupport
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import Synchronization
import Testing

/// A webhook receiver on a loopback port that fails the first `failures` attempts of every
/// delivery id with 500, then takes it, and remembers every attempt.
final class WebhookReceiver: Sendable {
    struct Attempt: Sendable {
        let path: String
        let headers: [String: String]
        let body: Data
        let status: Int
    }

    let failures: Int
    private let attempts = Mutex<[Attempt]>([])
    private let bound = Mutex<Int?>(nil)
    private let task = Mutex<Task<Void, any Error>?>(nil)

    init(failures: Int) {
        self.failures = failures
    }

    var port: Int? { bound.withLock { $0 } }
    var all: [Attempt] { attempts.withLock { $0 } }

    func start() async throws {
        let router = Router(context: BasicRequestContext.self)
        router.post("/{path}") { request, context in
            var request = request
            let body = try await request.collectBody(upTo: 1 << 20)
            var headers: [String: String] = [:]
            for field in request.headers { headers[field.name.canonicalName] = field.value }
            let path = context.parameters.get("path") ?? ""
            let status = self.attempts.withLock { attempts in
                let previous = attempts.filter { $0.headers["webhook-id"] == headers["webhook-id"] }.count
                let status = previous < self.failures ? 500 : 204
                attempts.append(Attempt(path: path, headers: headers, body: Data(body.readableBytesView), status: status))
                return status
            }
            return Response(status: HTTPResponse.Status(code: status))
        }
        var logger = Logger(label: "webhook.receiver")
        logger.logLevel = .warning
        let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
                              onServerRunning: { channel in self.bound.withLock { $0 = channel.localAddress?.port } }, logger: logger)
        task.withLock { $0 = Task { try await app.run() } }
        guard await waitUntil(.seconds(30), { self.port != nil }) else { throw LoopbackHTTPError("the receiver did not listen") }
    }

    func stop() async {
        let running = task.withLock { $0 }
        running?.cancel()
        _ = try? await running?.value
    }
}

@Suite(.serialized, .sharedBroker) struct WebhookTests {
    /// Two subscriptions (acme, structured; bolt, binary) on a receiver that fails every
    /// delivery twice: each event of the subscriber's tenants and domains arrives, is retried
    /// under one delivery id, signed, taken once, and never delivered again; nothing of one
    /// tenant reaches the other's hook; subscriptions are listed and deleted per key.
    @Test func aFailingReceiverGetsEachEventOncePerDeliveryID() async throws {
        let receiver = WebhookReceiver(failures: 2)
        try await receiver.start()
        let fixture = try await GatewayFixture(.embedded, name: "webhooks")
        try await fixture.start()
        let base = "http://127.0.0.1:\(receiver.port!)"
        func subscribe(_ key: String, _ body: [String: Any]) async throws -> HTTPAnswer {
            try await fixture.request("POST", "/v1/subscriptions", key: key, body: try JSONSerialization.data(withJSONObject: body))
        }
        let a = try await subscribe("acme", ["url": base + "/acme", "from": "earliest"])
        let b = try await subscribe("bolt", ["url": base + "/bolt", "mode": "binary", "from": "earliest"])
        #expect(a.status == 201 && b.status == 201, "\(a.text) \(b.text)")
        let secretA = try #require(a.json["secret"] as? String), secretB = try #require(b.json["secret"] as? String)
        #expect(try await subscribe("bolt", ["url": base + "/x", "tenant": ["acme"]]).status == 403)
        #expect(try await subscribe("acme", ["url": "ftp://example"]).status == 400)

        try await fixture.announce("tenant/acme", version: 1, domain: "domain/law@1")
        try await fixture.announce("tenant/bolt", version: 1, domain: "domain/law@1")
        try await fixture.announce("domain/law", version: 1)
        let taken = await waitUntil(.seconds(120)) { receiver.all.filter { $0.status == 204 }.count >= 4 }
        #expect(taken)
        try await Task.sleep(for: .seconds(1))
        let attempts = receiver.all
        let successes = attempts.filter { $0.status == 204 }
        #expect(successes.count == 4, "acme + law to /acme, bolt + law to /bolt, once each")
        for id in Set(attempts.compactMap { $0.headers["webhook-id"] }) {
            let forID = attempts.filter { $0.headers["webhook-id"] == id }
            #expect(forID.map(\.status) == [500, 500, 204], "delivery \(id): two failures, then taken, then never again")
        }
        let acmeSubjects = successes.filter { $0.path == "acme" }.compactMap { ($0.headers["ce-subject"]) ?? subjectOf($0.body) }
        #expect(Set(acmeSubjects) == ["tenant/acme", "domain/law"])
        let boltAttempts = successes.filter { $0.path == "bolt" }
        #expect(Set(boltAttempts.compactMap { $0.headers["ce-subject"] }) == ["tenant/bolt", "domain/law"])
        #expect(!attempts.filter { $0.path == "bolt" }.contains { String(decoding: $0.body, as: UTF8.self).contains("acme") })
        for attempt in successes {
            let secret = attempt.path == "acme" ? secretA : secretB
            let expected = WebhookDispatcher.signature(secret: secret, id: attempt.headers["webhook-id"]!,
                                                       timestamp: Int(attempt.headers["webhook-timestamp"]!)!, body: attempt.body)
            #expect(attempt.headers["webhook-signature"] == expected)
        }
        #expect(boltAttempts.allSatisfy { $0.headers["ce-type"] == "adapter.updated" && $0.headers["ce-specversion"] == "1.0" })
        #expect(successes.filter { $0.path == "acme" }.allSatisfy { $0.headers["content-type"]?.hasPrefix("application/cloudevents+json") == true })

        let listed = try await fixture.request("GET", "/v1/subscriptions", key: "acme")
        let ids = (listed.json["data"] as? [[String: Any]] ?? []).compactMap { $0["id"] as? String }
        #expect(ids == [a.json["id"] as? String])
        #expect(!listed.text.contains(secretA), "the secret is shown only at creation")
        #expect(try await fixture.request("DELETE", "/v1/subscriptions/\(ids[0])", key: "bolt").status == 404)
        #expect(try await fixture.request("DELETE", "/v1/subscriptions/\(ids[0])", key: "acme").status == 204)
        await fixture.finish()
        await receiver.stop()
    }
}

private func subjectOf(_ body: Data) -> String? {
    (try? JSONSerialization.jsonObject(with: body) as? [String: Any])?["subject"] as? String
}
