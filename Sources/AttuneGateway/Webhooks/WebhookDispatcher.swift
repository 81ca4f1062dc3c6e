import AttuneEventLog
import AttuneRegistry
import Crypto
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Logging
import Metrics
import ServiceLifecycle

/// Delivers `adapter.updated` events to webhook subscriptions, at least once and in order per
/// subscription: each event is POSTed until the receiver answers 2xx (retried with exponential
/// backoff from 0.5 s to 60 s), then the subscription's cursor moves past it. Every attempt of
/// one delivery carries the same `webhook-id`; `webhook-signature` is the Standard Webhooks
/// HMAC-SHA256 of `id.timestamp.body` with the subscription's secret. A 410 answer stops
/// delivery to that subscription; a revoked creator key pauses it.
public final class WebhookDispatcher: Service, Sendable {
    let store: SubscriptionStore
    let log: any EventLog
    let topic: String
    let partitions: Int
    let keys: KeyStore?
    let logger: Logger
    let delivered: Counter
    let failedAttempts: Counter
    /// Retry delays: first, cap.
    let backoff: (first: Duration, cap: Duration)

    public init(store: SubscriptionStore, log: any EventLog, topic: String, partitions: Int, keys: KeyStore?,
                metrics: any MetricsFactory, logger: Logger, backoff: (first: Duration, cap: Duration) = (.milliseconds(500), .seconds(60))) {
        self.store = store
        self.log = log
        self.topic = topic
        self.partitions = partitions
        self.keys = keys
        self.logger = logger
        self.backoff = backoff
        delivered = Counter(label: "attune_gateway_webhook_deliveries_total", factory: metrics)
        failedAttempts = Counter(label: "attune_gateway_webhook_failed_attempts_total", factory: metrics)
    }

    /// Runs one delivery task per live subscription, started and stopped as subscriptions
    /// come and go, until graceful shutdown.
    public func run() async throws {
        await cancelWhenGracefulShutdown {
            var running: [String: Task<Void, Never>] = [:]
            while !Task.isCancelled {
                let live = Set(self.store.all.filter { $0.disabled == nil }.map(\.id))
                for id in live where running[id] == nil {
                    running[id] = Task { await self.deliver(subscription: id) }
                }
                for (id, task) in running where !live.contains(id) {
                    task.cancel()
                    running[id] = nil
                }
                try? await Task.sleep(for: .milliseconds(250))
            }
            for task in running.values { task.cancel() }
            for task in running.values { await task.value }
        }
    }

    private func deliver(subscription id: String) async {
        guard let subscription = store.get(id) else { return }
        let principal = Principal(keyID: subscription.keyID, tenants: subscription.scope,
                                  roles: subscription.isAdmin ? [.admin] : [.subscribe])
        let filter = EventFilter(adapters: Set(subscription.adapters.compactMap(AdapterName.init(parsing:))),
                                 tenants: Set(subscription.tenants), domains: Set(subscription.domains), principal: principal)
        let start: EventFeed.Start = subscription.cursor.map { .cursor(EventCursor(next: $0)) } ?? .latest
        var logger = self.logger
        logger[metadataKey: "subscription"] = "\(id)"
        let feed: EventFeed
        do {
            feed = try await EventFeed(log: log, topic: topic, partitions: partitions, start: start, filter: filter)
        } catch {
            logger.error("cannot follow \(topic) for a webhook: \(error)")
            return
        }
        defer { Task { await feed.close() } }
        if subscription.cursor == nil { try? store.advance(id, cursor: feed.cursor.next) }
        while !Task.isCancelled {
            if let keys, !keys.keys.contains(where: { $0.id == subscription.keyID && $0.revoked == nil }) {
                try? await Task.sleep(for: .seconds(1))
                continue
            }
            let events: [FeedEvent]
            do {
                events = try await feed.next(timeout: .milliseconds(500))
            } catch {
                logger.warning("reading adapter events failed: \(error)")
                try? await Task.sleep(for: .seconds(1))
                continue
            }
            for event in events {
                guard await post(event, to: subscription, logger: logger) else { return }
                try? store.advance(id, cursor: event.cursor.next)
            }
            if events.isEmpty { try? store.advance(id, cursor: feed.cursor.next) }
        }
    }

    /// Posts one event until it is taken; false if delivery to this subscription must stop.
    private func post(_ event: FeedEvent, to subscription: Subscription, logger: Logger) async -> Bool {
        let deliveryID = "\(subscription.id)-\(event.cursor)"
        var delay = backoff.first
        var attempt = 0
        while !Task.isCancelled {
            attempt += 1
            let request = Self.request(event, subscription: subscription, deliveryID: deliveryID, timestamp: Int(Date().timeIntervalSince1970))
            do {
                let (_, response) = try await URLSession.shared.data(for: request)
                let status = (response as? HTTPURLResponse)?.statusCode ?? 0
                if (200..<300).contains(status) {
                    delivered.increment()
                    logger.debug("webhook delivered", metadata: ["delivery": "\(deliveryID)", "attempts": "\(attempt)"])
                    return true
                }
                if status == 410 {
                    logger.warning("the receiver answered 410 Gone; delivery stopped", metadata: ["url": "\(subscription.url)"])
                    try? store.disable(subscription.id, reason: "410 Gone from \(subscription.url)")
                    return false
                }
                logger.notice("webhook attempt failed", metadata: ["delivery": "\(deliveryID)", "status": "\(status)", "attempt": "\(attempt)"])
            } catch {
                logger.notice("webhook attempt failed", metadata: ["delivery": "\(deliveryID)", "error": "\(error)", "attempt": "\(attempt)"])
            }
            failedAttempts.increment()
            try? await Task.sleep(for: delay)
            delay = min(delay * 2, backoff.cap)
        }
        return false
    }

    /// The HTTP request of one delivery attempt, in the subscription's CloudEvents mode.
    static func request(_ event: FeedEvent, subscription: Subscription, deliveryID: String, timestamp: Int) -> URLRequest {
        var request = URLRequest(url: URL(string: subscription.url)!, timeoutInterval: 10)
        request.httpMethod = "POST"
        let body: Data
        switch subscription.mode {
        case .structured:
            body = Data(event.cloudEvent)
            request.setValue("application/cloudevents+json; charset=utf-8", forHTTPHeaderField: "Content-Type")
        case .binary:
            let object = (try? JSONSerialization.jsonObject(with: Data(event.cloudEvent)) as? [String: Any]) ?? [:]
            body = (object["data"]).flatMap { try? JSONSerialization.data(withJSONObject: $0, options: [.sortedKeys]) } ?? Data()
            request.setValue((object["datacontenttype"] as? String) ?? "application/json", forHTTPHeaderField: "Content-Type")
            for attribute in ["specversion", "type", "source", "id", "time", "subject"] {
                if let value = object[attribute] as? String { request.setValue(value, forHTTPHeaderField: "ce-\(attribute)") }
            }
        }
        request.httpBody = body
        request.setValue(deliveryID, forHTTPHeaderField: "webhook-id")
        request.setValue("\(timestamp)", forHTTPHeaderField: "webhook-timestamp")
        request.setValue(signature(secret: subscription.secret, id: deliveryID, timestamp: timestamp, body: body), forHTTPHeaderField: "webhook-signature")
        return request
    }

    /// `v1,` + base64 HMAC-SHA256 over `id.timestamp.body` (Standard Webhooks).
    public static func signature(secret: String, id: String, timestamp: Int, body: Data) -> String {
        var signed = Data("\(id).\(timestamp).".utf8)
        signed.append(body)
        let mac = HMAC<SHA256>.authenticationCode(for: signed, using: SymmetricKey(data: Data(secret.utf8)))
        return "v1," + Data(mac).base64EncodedString()
    }
}
