import Metrics

/// The gateway's metrics: records in by topic and outcome, acknowledgement latency, open
/// event streams and events sent.
public struct GatewayMetrics: Sendable {
    let factory: any MetricsFactory
    public let ackLatency: Timer
    public let eventStreams: Meter
    public let eventsSent: Counter
    public let authFailures: Counter

    public init(factory: any MetricsFactory) {
        self.factory = factory
        ackLatency = Timer(label: "attune_gateway_ack_latency_seconds", factory: factory)
        eventStreams = Meter(label: "attune_gateway_event_streams", factory: factory)
        eventsSent = Counter(label: "attune_gateway_events_sent_total", factory: factory)
        authFailures = Counter(label: "attune_gateway_auth_failures_total", factory: factory)
    }

    func records(topic: String, status: IngestResult.Status) -> Counter {
        Counter(label: "attune_gateway_records_total", dimensions: [("topic", topic), ("status", status.rawValue)], factory: factory)
    }
}

extension Duration {
    /// Whole nanoseconds, for swift-metrics timers and NIO time amounts.
    var nanosecondCount: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }
}
