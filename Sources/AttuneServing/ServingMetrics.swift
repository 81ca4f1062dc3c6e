import Metrics

/// The inference worker's metrics, made by a swift-metrics factory (Prometheus for `attune
/// serve`, so each server instance exports its own). vLLM's names where one exists, so
/// existing dashboards and the Gateway API inference extension read them unchanged.
public struct ServingMetrics: Sendable {
    public let requestsRunning: Gauge
    public let requestsWaiting: Gauge
    public let timeToFirstToken: Timer
    public let interTokenLatency: Timer
    public let requestLatency: Timer
    public let promptTokens: Counter
    public let generationTokens: Counter
    public let kvCacheBytes: Gauge
    public let batchSize: Gauge
    public let rejectedRequests: Counter
    public let swaps: Counter
    public let swapLatency: Timer
    public let refusedVersions: Counter
    public let cacheBytes: Gauge
    public let cacheHits: Counter
    public let cacheMisses: Counter
    public let cacheEvictions: Counter

    public init(factory: any MetricsFactory) {
        requestsRunning = Gauge(label: "vllm:num_requests_running", factory: factory)
        requestsWaiting = Gauge(label: "vllm:num_requests_waiting", factory: factory)
        timeToFirstToken = Timer(label: "vllm:time_to_first_token_seconds", factory: factory)
        interTokenLatency = Timer(label: "vllm:inter_token_latency_seconds", factory: factory)
        requestLatency = Timer(label: "vllm:e2e_request_latency_seconds", factory: factory)
        promptTokens = Counter(label: "vllm:prompt_tokens_total", factory: factory)
        generationTokens = Counter(label: "vllm:generation_tokens_total", factory: factory)
        kvCacheBytes = Gauge(label: "attune_kv_cache_bytes", factory: factory)
        batchSize = Gauge(label: "attune_batch_size", factory: factory)
        rejectedRequests = Counter(label: "attune_requests_rejected_total", factory: factory)
        swaps = Counter(label: "attune_adapter_swaps_total", factory: factory)
        swapLatency = Timer(label: "attune_adapter_swap_latency_seconds", factory: factory)
        refusedVersions = Counter(label: "attune_adapter_versions_refused_total", factory: factory)
        cacheBytes = Gauge(label: "attune_adapter_cache_bytes", factory: factory)
        cacheHits = Counter(label: "attune_adapter_cache_hits_total", factory: factory)
        cacheMisses = Counter(label: "attune_adapter_cache_misses_total", factory: factory)
        cacheEvictions = Counter(label: "attune_adapter_cache_evictions_total", factory: factory)
    }
}
