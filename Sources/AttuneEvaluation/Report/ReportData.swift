import AttuneEventLog
import AttuneModel
import AttuneRegistry
import AttuneTokenizer
import AttuneTraining
import Foundation

/// Everything `attune report` shows, as it writes it to `report.json` (the HTML page draws the
/// same numbers).
public struct ReportData: Sendable, Codable {
    /// One published version: its release metrics (training and gate losses, tokens), how many
    /// inputs it covers, and its freshness — publication time minus the newest covered record's.
    public struct VersionPoint: Sendable, Codable {
        public var id: String
        public var version: Int
        public var publishedAt: String?
        public var inputs: Int
        public var freshnessSeconds: Double?
        public var metrics: [String: Double]
    }

    public struct AdapterTimeline: Sendable, Codable {
        public var adapter: String
        public var versions: [VersionPoint]
    }

    /// One model's numbers on a tenant's interactions.
    public struct ModelScore: Sendable, Codable {
        /// `base`, `domain` or `personalized`.
        public var role: String
        public var model: String
        public var likelihood: LikelihoodMetrics
    }

    /// Base vs domain vs personalized on a tenant's own interactions (those its last versions trained on).
    public struct TenantComparison: Sendable, Codable {
        public var tenant: String
        public var examples: Int
        public var scores: [ModelScore]
    }

    public struct AcceptanceRow: Sendable, Codable {
        public var version: String
        public var accepted: Int
        public var rejected: Int
        public var rate: Double?
    }

    public var generatedAt: String
    public var adapters: [AdapterTimeline]
    public var tenants: [TenantComparison]
    public var lineages: [LineageReport]
    public var acceptance: [AcceptanceRow]

    /// Reads the registry and the topics and evaluates: every adapter's last `last` versions,
    /// each tenant's base / domain / personalized comparison, each adapter's forgetting view,
    /// and acceptance per served version. `progress` hears what is being done.
    public static func gather(registry: AdapterRegistry, log: any EventLog, model: LlamaModel, tokenizer: BPETokenizer,
                              interactionsTopic: String = "attune.interactions", last: Int = 8,
                              progress: (String) -> Void = { _ in }) async throws -> ReportData {
        let slice = TopicSlice(log: log)
        let builder = ExampleBuilder(tokenizer: tokenizer)
        let iso = ISO8601DateFormatter()
        var adapters: [AdapterTimeline] = [], tenants: [TenantComparison] = [], lineages: [LineageReport] = []
        for name in await registry.names {
            let history = Array(await registry.history(name).suffix(last))
            guard !history.isEmpty else { continue }
            progress("\(name): \(history.count) version\(history.count == 1 ? "" : "s")")
            var points: [VersionPoint] = []
            var covered: [ConsumerRecord] = []
            for v in history {
                let records = v.release.covers.isEmpty ? [] : try await slice.records(at: v.release.covers)
                    .filter { LineageReport.belongs($0, to: name) }
                covered += records
                let newest = records.map(\.timestamp).max()
                points.append(VersionPoint(
                    id: v.release.id, version: v.release.version,
                    publishedAt: v.publishedAt.map { iso.string(from: Date(timeIntervalSince1970: Double($0) / 1000)) },
                    inputs: Int(v.release.covers.offsetCount),
                    freshnessSeconds: v.publishedAt.flatMap { at in newest.map { Double(at - $0) / 1000 } },
                    metrics: v.release.metrics))
            }
            adapters.append(AdapterTimeline(adapter: name.description, versions: points))
            if history.contains(where: { !$0.release.covers.isEmpty }) {
                progress("\(name): forgetting view")
                lineages.append(try await LineageReport.evaluate(name, registry: registry, log: log, model: model,
                                                                 tokenizer: tokenizer, limit: last))
            }
            guard name.kind == .tenant, let latest = history.last?.release, !covered.isEmpty else { continue }
            progress("\(name): base vs domain vs personalized")
            let set = try EvaluationSet(name: name.description, records: covered, builder: builder)
            var scores: [ModelScore] = []
            var roles: [(String, String)] = [("base", "base")]
            if let domain = latest.domain { roles.append(("domain", domain)) }
            roles.append(("personalized", latest.id))
            for (role, spec) in roles {
                let (adapter, _) = try await ModelSpec(parsing: spec).load(for: model, registry: registry)
                let metrics = try ModelEvaluator(model: model, tokenizer: tokenizer, adapter: adapter).likelihood(set.items)
                scores.append(ModelScore(role: role, model: spec, likelihood: metrics))
            }
            tenants.append(TenantComparison(tenant: name.id, examples: set.items.count, scores: scores))
        }
        var tally = AcceptanceTally()
        tally.add(try await slice.records(of: interactionsTopic))
        let acceptance = tally.versions.map { v in
            AcceptanceRow(version: v, accepted: tally.byVersion[v]!.accepted, rejected: tally.byVersion[v]!.rejected, rate: tally.byVersion[v]!.rate)
        }
        return ReportData(generatedAt: iso.string(from: Date()), adapters: adapters, tenants: tenants, lineages: lineages,
                          acceptance: acceptance)
    }
}
