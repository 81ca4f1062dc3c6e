import Foundation

/// Small self-contained SVG charts (no script, no network): line charts, grouped bars and
/// heat maps, drawn from numbers the report also writes as JSON.
enum SVGChart {
    static let palette = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"]
    static let width = 640.0, height = 300.0
    static let left = 64.0, right = 150.0, top = 36.0, bottom = 44.0

    struct Series {
        var name: String
        var points: [(x: Double, y: Double)]
    }

    /// Lines with markers, one per series, on shared axes.
    static func lines(title: String, series: [Series], xLabel: String, yLabel: String) -> String {
        let all = series.flatMap(\.points)
        guard !all.isEmpty else { return empty(title) }
        let (x0, x1) = bounds(all.map(\.x)), (y0, y1) = bounds(all.map(\.y))
        var svg = frame(title: title, xLabel: xLabel, yLabel: yLabel, x: (x0, x1), y: (y0, y1))
        for (i, s) in series.enumerated() where !s.points.isEmpty {
            let color = palette[i % palette.count]
            let coords = s.points.map { "\(fmt(px($0.x, x0, x1))),\(fmt(py($0.y, y0, y1)))" }
            svg += "<polyline fill=\"none\" stroke=\"\(color)\" stroke-width=\"2\" points=\"\(coords.joined(separator: " "))\"/>"
            for p in s.points {
                svg += "<circle cx=\"\(fmt(px(p.x, x0, x1)))\" cy=\"\(fmt(py(p.y, y0, y1)))\" r=\"3.5\" fill=\"\(color)\"/>"
            }
            svg += legend(i, s.name, color)
        }
        return svg + "</svg>"
    }

    /// Bars grouped by label (e.g. one group per tenant, one bar per model); a nil value leaves its slot empty.
    static func bars(title: String, groups: [(label: String, values: [Double?])], names: [String], yLabel: String) -> String {
        let all = groups.flatMap { $0.values.compactMap { $0 } }
        guard !all.isEmpty else { return empty(title) }
        let y1 = bounds(all + [0]).1, y0 = 0.0
        var svg = frame(title: title, xLabel: "", yLabel: yLabel, x: nil, y: (y0, y1))
        let plot = width - left - right
        let groupWidth = plot / Double(groups.count)
        let barWidth = groupWidth * 0.8 / Double(max(names.count, 1))
        for (g, group) in groups.enumerated() {
            let gx = left + Double(g) * groupWidth + groupWidth * 0.1
            for (b, value) in group.values.enumerated() {
                guard let value else { continue }
                let x = gx + Double(b) * barWidth, y = py(value, y0, y1)
                svg += "<rect x=\"\(fmt(x))\" y=\"\(fmt(y))\" width=\"\(fmt(barWidth * 0.92))\" height=\"\(fmt(height - bottom - y))\" fill=\"\(palette[b % palette.count])\"/>"
            }
            svg += "<text x=\"\(fmt(gx + groupWidth * 0.4))\" y=\"\(fmt(height - bottom + 16))\" text-anchor=\"middle\" font-size=\"11\">\(escape(group.label))</text>"
        }
        for (b, name) in names.enumerated() { svg += legend(b, name, palette[b % palette.count]) }
        return svg + "</svg>"
    }

    /// A matrix as coloured cells (light = low, dark = high) with each value written in its cell.
    static func heatMap(title: String, rows: [String], columns: [String], values: [[Double]]) -> String {
        let all = values.flatMap { $0 }
        guard !all.isEmpty else { return empty(title) }
        let (lo, hi) = bounds(all)
        let labelWidth = 150.0, cell = min(64.0, (width - labelWidth - 10) / Double(columns.count))
        let h = top + 24 + cell * Double(rows.count) + 10
        var svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(fmt(width))\" height=\"\(fmt(h))\" role=\"img\">"
        svg += "<text x=\"8\" y=\"20\" font-size=\"14\" font-weight=\"bold\">\(escape(title))</text>"
        for (j, c) in columns.enumerated() {
            let label = c.split(separator: "@").last.map { "v\($0)" } ?? c
            svg += "<text x=\"\(fmt(labelWidth + cell * (Double(j) + 0.5)))\" y=\"\(fmt(top + 14))\" text-anchor=\"middle\" font-size=\"10\">\(escape(label))</text>"
        }
        for (i, r) in rows.enumerated() {
            let y = top + 24 + cell * Double(i)
            svg += "<text x=\"\(fmt(labelWidth - 6))\" y=\"\(fmt(y + cell / 2 + 4))\" text-anchor=\"end\" font-size=\"11\">\(escape(r))</text>"
            for (j, v) in values[i].enumerated() {
                let t = hi > lo ? (v - lo) / (hi - lo) : 0.5
                svg += "<rect x=\"\(fmt(labelWidth + cell * Double(j)))\" y=\"\(fmt(y))\" width=\"\(fmt(cell - 1))\" height=\"\(fmt(cell - 1))\" fill=\"\(shade(t))\"/>"
                svg += "<text x=\"\(fmt(labelWidth + cell * (Double(j) + 0.5)))\" y=\"\(fmt(y + cell / 2 + 4))\" text-anchor=\"middle\" font-size=\"10\" fill=\"\(t > 0.55 ? "#fff" : "#000")\">\(String(format: "%.3f", v))</text>"
            }
        }
        return svg + "</svg>"
    }

    // MARK: Parts

    private static func frame(title: String, xLabel: String, yLabel: String, x: (Double, Double)?, y: (Double, Double)) -> String {
        var svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(fmt(width))\" height=\"\(fmt(height))\" role=\"img\">"
        svg += "<text x=\"8\" y=\"20\" font-size=\"14\" font-weight=\"bold\">\(escape(title))</text>"
        svg += "<line x1=\"\(fmt(left))\" y1=\"\(fmt(height - bottom))\" x2=\"\(fmt(width - right))\" y2=\"\(fmt(height - bottom))\" stroke=\"#444\"/>"
        svg += "<line x1=\"\(fmt(left))\" y1=\"\(fmt(top))\" x2=\"\(fmt(left))\" y2=\"\(fmt(height - bottom))\" stroke=\"#444\"/>"
        for k in 0...4 {
            let v = y.0 + (y.1 - y.0) * Double(k) / 4, yy = py(v, y.0, y.1)
            svg += "<line x1=\"\(fmt(left))\" y1=\"\(fmt(yy))\" x2=\"\(fmt(width - right))\" y2=\"\(fmt(yy))\" stroke=\"#ddd\"/>"
            svg += "<text x=\"\(fmt(left - 6))\" y=\"\(fmt(yy + 4))\" text-anchor=\"end\" font-size=\"10\">\(tick(v))</text>"
        }
        if let x {
            for k in 0...4 {
                let v = x.0 + (x.1 - x.0) * Double(k) / 4
                svg += "<text x=\"\(fmt(px(v, x.0, x.1)))\" y=\"\(fmt(height - bottom + 16))\" text-anchor=\"middle\" font-size=\"10\">\(tick(v))</text>"
            }
        }
        svg += "<text x=\"\(fmt((left + width - right) / 2))\" y=\"\(fmt(height - 8))\" text-anchor=\"middle\" font-size=\"11\">\(escape(xLabel))</text>"
        svg += "<text x=\"14\" y=\"\(fmt((top + height - bottom) / 2))\" text-anchor=\"middle\" font-size=\"11\" transform=\"rotate(-90 14 \(fmt((top + height - bottom) / 2)))\">\(escape(yLabel))</text>"
        return svg
    }

    private static func legend(_ i: Int, _ name: String, _ color: String) -> String {
        let y = top + 8 + Double(i) * 18
        return "<rect x=\"\(fmt(width - right + 12))\" y=\"\(fmt(y - 9))\" width=\"12\" height=\"12\" fill=\"\(color)\"/>"
            + "<text x=\"\(fmt(width - right + 30))\" y=\"\(fmt(y + 1))\" font-size=\"11\">\(escape(short(name)))</text>"
    }

    private static func empty(_ title: String) -> String {
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(fmt(width))\" height=\"60\"><text x=\"8\" y=\"20\" font-size=\"14\" font-weight=\"bold\">\(escape(title))</text><text x=\"8\" y=\"44\" font-size=\"12\">no data</text></svg>"
    }

    private static func bounds(_ values: [Double]) -> (Double, Double) {
        let finite = values.filter(\.isFinite)
        guard var lo = finite.min(), var hi = finite.max() else { return (0, 1) }
        if hi - lo < 1e-12 {
            lo -= max(abs(lo) * 0.05, 0.5)
            hi += max(abs(hi) * 0.05, 0.5)
        }
        let pad = (hi - lo) * 0.05
        return (lo - pad, hi + pad)
    }

    private static func px(_ x: Double, _ x0: Double, _ x1: Double) -> Double { left + (x - x0) / (x1 - x0) * (width - left - right) }
    private static func py(_ y: Double, _ y0: Double, _ y1: Double) -> Double { height - bottom - (y - y0) / (y1 - y0) * (height - top - bottom) }

    /// Light yellow (low) to dark blue (high).
    private static func shade(_ t: Double) -> String {
        let a = (255.0, 247.0, 188.0), b = (8.0, 48.0, 107.0)
        let c = (a.0 + (b.0 - a.0) * t, a.1 + (b.1 - a.1) * t, a.2 + (b.2 - a.2) * t)
        return String(format: "#%02x%02x%02x", Int(c.0), Int(c.1), Int(c.2))
    }

    private static func tick(_ v: Double) -> String { abs(v) >= 100 ? String(format: "%.0f", v) : String(format: "%.3g", v) }
    private static func fmt(_ v: Double) -> String { String(format: "%.1f", v) }
    private static func short(_ s: String) -> String { s.count > 22 ? String(s.prefix(21)) + "…" : s }

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }
}
