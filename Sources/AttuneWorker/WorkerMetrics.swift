import AttuneEventLog
import Foundation
import Metrics

/// The training worker's metrics, made by a swift-metrics factory (Prometheus for
/// `attune train-worker --metrics-port`). Names are what the fleet dashboard reads.
public struct WorkerMetrics: Sendable {
    private let factory: any MetricsFactory
    public let trainedExamples: Counter
    public let publishedVersions: Counter
    public let gateAccepted: Counter
    public let gateRejected: Counter
    public let supersededCandidates: Counter
    public let rebases: Counter
    public let rebalances: Counter
    public let ownedPartitions: Gauge
    public let batchExamples: Gauge
    public let trainingTokensPerSecond: Gauge
    public let replayItems: Gauge
    /// Tenant state in memory and in the tenant cache (`--tenant-memory`).
    public let residentTenantBytes: Gauge
    public let residentTenants: Gauge
    public let evictedTenants: Gauge
    public let tenantEvictions: Counter
    public let tenantRestores: Counter
    public let publishLatency: Timer
    /// From an input record's produce time to the announcement of the version that covers it.
    public let freshness: Timer

    public init(factory: any MetricsFactory) {
        self.factory = factory
        trainedExamples = Counter(label: "attune_worker_examples_trained_total", factory: factory)
        publishedVersions = Counter(label: "attune_worker_versions_published_total", factory: factory)
        gateAccepted = Counter(label: "attune_worker_gate_decisions_total", dimensions: [("decision", "accepted")], factory: factory)
        gateRejected = Counter(label: "attune_worker_gate_decisions_total", dimensions: [("decision", "rejected")], factory: factory)
        supersededCandidates = Counter(label: "attune_worker_candidates_superseded_total", factory: factory)
        rebases = Counter(label: "attune_worker_rebases_total", factory: factory)
        rebalances = Counter(label: "attune_worker_rebalances_total", factory: factory)
        ownedPartitions = Gauge(label: "attune_worker_owned_partitions", factory: factory)
        batchExamples = Gauge(label: "attune_worker_batch_examples", factory: factory)
        trainingTokensPerSecond = Gauge(label: "attune_worker_training_tokens_per_second", factory: factory)
        replayItems = Gauge(label: "attune_worker_replay_items", factory: factory)
        residentTenantBytes = Gauge(label: "attune_worker_tenant_memory_bytes", factory: factory)
        residentTenants = Gauge(label: "attune_worker_tenants", dimensions: [("state", "resident")], factory: factory)
        evictedTenants = Gauge(label: "attune_worker_tenants", dimensions: [("state", "evicted")], factory: factory)
        tenantEvictions = Counter(label: "attune_worker_tenant_evictions_total", factory: factory)
        tenantRestores = Counter(label: "attune_worker_tenant_restores_total", factory: factory)
        publishLatency = Timer(label: "attune_worker_publish_latency_seconds", factory: factory)
        freshness = Timer(label: "attune_worker_freshness_seconds", factory: factory)
    }

    /// Metrics that go nowhere.
    public static let none = WorkerMetrics(factory: NOOPMetricsHandler.instance)

    func consumed(_ topic: String) {
        Counter(label: "attune_worker_records_consumed_total", dimensions: [("topic", topic)], factory: factory).increment()
    }

    func deadLettered(_ topic: String, count: Int = 1) {
        Counter(label: "attune_worker_records_dead_lettered_total", dimensions: [("topic", topic)], factory: factory).increment(by: count)
    }

    /// Seconds one version spent in a phase (see `PhaseClock`).
    func phase(_ name: String, seconds: Double) {
        Timer(label: "attune_worker_phase_seconds", dimensions: [("phase", name)], factory: factory)
            .recordNanoseconds(Int64(seconds * 1e9))
    }

    func lag(_ partition: TopicPartition, _ records: Int64) {
        Gauge(label: "attune_worker_consumer_lag", dimensions: [("topic", partition.topic), ("partition", "\(partition.partition)")],
              factory: factory).record(records)
    }
}
