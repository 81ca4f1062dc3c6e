import Foundation

/// The report as one self-contained HTML page: inline SVG plots, tables whose every number
/// carries its JSON path (`data-path`), and the JSON itself embedded; nothing is loaded from
/// the network.
public enum ReportPage {
    static let gateSeries = ["train_loss", "heldout_loss", "replay_loss", "probe_loss"]

    public static func html(_ data: ReportData) throws -> String {
        var body = "<h1>Attune evaluation report</h1><p class=\"meta\">generated \(SVGChart.escape(data.generatedAt)) · "
            + "\(data.adapters.count) adapters · \(data.tenants.count) tenants compared · \(data.lineages.count) lineages</p>"
        body += freshness(data) + training(data) + personalization(data) + forgetting(data) + acceptance(data)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let json = String(decoding: try encoder.encode(data), as: UTF8.self).replacingOccurrences(of: "</", with: "<\\/")
        return """
        <!doctype html>
        <html lang="en"><head><meta charset="utf-8"><title>Attune evaluation report</title>
        <style>
        body { font-family: system-ui, sans-serif; margin: 24px; color: #222; max-width: 1100px; }
        h2 { border-bottom: 1px solid #ccc; padding-bottom: 4px; margin-top: 32px; }
        table { border-collapse: collapse; margin: 8px 0 16px; font-size: 13px; }
        td, th { border: 1px solid #ddd; padding: 3px 8px; text-align: right; }
        th:first-child, td:first-child { text-align: left; }
        .meta { color: #666; } .charts { display: flex; flex-wrap: wrap; gap: 12px; }
        </style></head><body>
        \(body)
        <script type="application/json" id="report-data">\(json)</script>
        </body></html>
        """
    }

    // MARK: Sections

    private static func freshness(_ data: ReportData) -> String {
        let times = data.adapters.flatMap { $0.versions.compactMap { $0.publishedAt.flatMap(date) } }
        let origin = times.min() ?? Date()
        let series = data.adapters.map { a in
            SVGChart.Series(name: a.adapter, points: a.versions.compactMap { v in
                guard let f = v.freshnessSeconds, let at = v.publishedAt.flatMap(date) else { return nil }
                return (at.timeIntervalSince(origin), f)
            })
        }
        return "<section id=\"freshness\"><h2>Freshness</h2><p>Seconds from the newest input a version covers being produced to the version's publication.</p>"
            + SVGChart.lines(title: "freshness per version", series: series, xLabel: "seconds since the first publication in the report",
                             yLabel: "freshness (s)") + "</section>"
    }

    private static func training(_ data: ReportData) -> String {
        var html = "<section id=\"training\"><h2>Training and gate losses</h2><p>Per version: mean training loss of its steps and the gate's losses of the published candidate on held-out new data, replay memory and (tenants) the domain probe.</p><div class=\"charts\">"
        for a in data.adapters {
            let series = gateSeries.map { key in
                SVGChart.Series(name: key, points: a.versions.compactMap { v in v.metrics[key].map { (Double(v.version), $0) } })
            }.filter { !$0.points.isEmpty }
            html += SVGChart.lines(title: a.adapter, series: series, xLabel: "version", yLabel: "loss (nats)")
        }
        html += "</div>"
        for (i, a) in data.adapters.enumerated() {
            html += "<table><caption>\(SVGChart.escape(a.adapter))</caption><tr><th>version</th><th>published</th><th>inputs</th><th>freshness s</th>"
                + gateSeries.map { "<th>\($0)</th>" }.joined() + "</tr>"
            for (j, v) in a.versions.enumerated() {
                let path = "adapters.\(i).versions.\(j)"
                html += "<tr><td>\(SVGChart.escape(v.id))</td><td>\(SVGChart.escape(v.publishedAt ?? "-"))</td>"
                    + cell(Double(v.inputs), "\(path).inputs", "%.0f") + cell(v.freshnessSeconds, "\(path).freshnessSeconds", "%.2f")
                    + gateSeries.map { cell(v.metrics[$0], "\(path).metrics.\($0)", "%.4f") }.joined() + "</tr>"
            }
            html += "</table>"
        }
        return html + "</section>"
    }

    private static func personalization(_ data: ReportData) -> String {
        let roles = ["base", "domain", "personalized"].filter { r in data.tenants.contains { $0.scores.contains { $0.role == r } } }
        let groups = data.tenants.map { t in
            (label: t.tenant, values: roles.map { r in t.scores.first { $0.role == r }?.likelihood.loss })
        }
        var html = "<section id=\"personalization\"><h2>Base vs domain vs personalized</h2><p>Loss on each tenant's own interactions (those its reported versions trained on) under the base model, its domain adapter and its personalized adapter.</p>"
            + SVGChart.bars(title: "loss per tenant", groups: groups, names: roles, yLabel: "loss (nats)")
        html += "<table><tr><th>tenant</th><th>examples</th><th>model</th><th>role</th><th>loss</th><th>perplexity</th><th>accuracy</th></tr>"
        for (i, t) in data.tenants.enumerated() {
            for (j, s) in t.scores.enumerated() {
                let path = "tenants.\(i).scores.\(j).likelihood"
                html += "<tr><td>\(SVGChart.escape(t.tenant))</td>" + cell(Double(t.examples), "tenants.\(i).examples", "%.0f")
                    + "<td>\(SVGChart.escape(s.model))</td><td>\(s.role)</td>" + cell(s.likelihood.loss, "\(path).loss", "%.4f")
                    + cell(s.likelihood.perplexity, "\(path).perplexity", "%.3f") + cell(s.likelihood.accuracy, "\(path).accuracy", "%.4f") + "</tr>"
            }
        }
        return html + "</table></section>"
    }

    private static func forgetting(_ data: ReportData) -> String {
        var html = "<section id=\"forgetting\"><h2>Forgetting</h2><p>Next-token accuracy of each version (rows) on what each version trained on (columns); backward transfer (negative: forgetting) and forward transfer as Avalanche defines them.</p><div class=\"charts\">"
        for l in data.lineages {
            html += SVGChart.heatMap(title: "\(l.adapter): accuracy (columns: what each version trained on)", rows: [l.initialModel] + l.versions,
                                     columns: l.versions, values: [l.initialAccuracy] + l.accuracy)
        }
        html += "</div><table><tr><th>adapter</th><th>versions</th><th>accuracy BWT</th><th>accuracy FWT</th><th>−loss BWT</th><th>−loss FWT</th></tr>"
        for (i, l) in data.lineages.enumerated() {
            html += "<tr><td>\(SVGChart.escape(l.adapter))</td><td>\(l.versions.count)</td>"
                + cell(l.accuracyTransfer.backwardTransfer, "lineages.\(i).accuracyTransfer.backwardTransfer", "%.4f")
                + cell(l.accuracyTransfer.forwardTransfer, "lineages.\(i).accuracyTransfer.forwardTransfer", "%.4f")
                + cell(l.negatedLossTransfer.backwardTransfer, "lineages.\(i).negatedLossTransfer.backwardTransfer", "%.4f")
                + cell(l.negatedLossTransfer.forwardTransfer, "lineages.\(i).negatedLossTransfer.forwardTransfer", "%.4f") + "</tr>"
        }
        return html + "</table></section>"
    }

    private static func acceptance(_ data: ReportData) -> String {
        let groups = data.acceptance.map { (label: $0.version, values: [$0.rate]) }
        var html = "<section id=\"acceptance\"><h2>Acceptance</h2><p>Share of rated answers users accepted, per adapter version that served them.</p>"
            + SVGChart.bars(title: "acceptance rate per version", groups: groups, names: ["rate"], yLabel: "accepted share")
        html += "<table><tr><th>version</th><th>accepted</th><th>rejected</th><th>rate</th></tr>"
        for (i, row) in data.acceptance.enumerated() {
            html += "<tr><td>\(SVGChart.escape(row.version))</td>" + cell(Double(row.accepted), "acceptance.\(i).accepted", "%.0f")
                + cell(Double(row.rejected), "acceptance.\(i).rejected", "%.0f") + cell(row.rate, "acceptance.\(i).rate", "%.4f") + "</tr>"
        }
        return html + "</table></section>"
    }

    // MARK: Helpers

    /// A table cell showing `value` (or "-") that names its place in the JSON.
    private static func cell(_ value: Double?, _ path: String, _ format: String) -> String {
        guard let value else { return "<td>-</td>" }
        return "<td data-path=\"\(path)\">\(String(format: format, value))</td>"
    }

    private static func date(_ text: String) -> Date? { ISO8601DateFormatter().date(from: text) }
}
