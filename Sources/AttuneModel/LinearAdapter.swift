/// The seven projections of a llama block that adapters can modify, with their GGUF and
/// Hugging Face (PEFT) names.
public enum LinearTarget: String, CaseIterable, Codable, Sendable {
    case q, k, v, o, gate, up, down

    /// The Hugging Face module name (`q_proj`, …, `down_proj`).
    public var peftName: String {
        switch self {
        case .q: return "q_proj"
        case .k: return "k_proj"
        case .v: return "v_proj"
        case .o: return "o_proj"
        case .gate: return "gate_proj"
        case .up: return "up_proj"
        case .down: return "down_proj"
        }
    }

    /// The module path under a decoder layer (`self_attn.q_proj`, `mlp.up_proj`, …).
    public var peftPath: String {
        switch self {
        case .q, .k, .v, .o: return "self_attn." + peftName
        case .gate, .up, .down: return "mlp." + peftName
        }
    }

    /// The GGUF tensor stem (`attn_q`, …, `ffn_down`).
    public var ggufName: String {
        switch self {
        case .q: return "attn_q"
        case .k: return "attn_k"
        case .v: return "attn_v"
        case .o: return "attn_output"
        case .gate: return "ffn_gate"
        case .up: return "ffn_up"
        case .down: return "ffn_down"
        }
    }

    public init?(peftName: String) {
        guard let t = LinearTarget.allCases.first(where: { $0.peftName == peftName || $0.rawValue == peftName }) else { return nil }
        self = t
    }

    /// (output, input) features of this projection.
    public func shape(_ c: LlamaConfig) -> (out: Int, in: Int) {
        switch self {
        case .q, .o: return (c.dim, c.dim)
        case .k, .v: return (c.kvHeads * c.headDim, c.dim)
        case .gate, .up: return (c.ffnDim, c.dim)
        case .down: return (c.dim, c.ffnDim)
        }
    }
}

/// Something that adds a low-rank or bottleneck correction to a projection's output, e.g. a
/// LoRA adapter (or a stack of them) applied at inference.
public protocol LinearAdapter: Sendable {
    /// y[m, out] += Δ(x[m, in]) for `target` of `layer`.
    func addDelta(layer: Int, target: LinearTarget, x: UnsafePointer<Float>, m: Int, y: UnsafeMutablePointer<Float>)
    /// `addDelta` for several targets of `layer` that share the input x (q/k/v, gate/up), each
    /// into its own output; an adapter may interleave them (one pass over its weights per row).
    func addDeltas(layer: Int, targets: [(LinearTarget, UnsafeMutablePointer<Float>)], x: UnsafePointer<Float>, m: Int)
    /// Applied to the sublayer output before the residual add (bottleneck adapters):
    /// `h[m, dim]` → h + Δ(h). `afterAttention` selects the attention or MLP sublayer.
    func adaptSublayer(layer: Int, afterAttention: Bool, h: UnsafeMutablePointer<Float>, m: Int)
}

extension LinearAdapter {
    public func addDeltas(layer: Int, targets: [(LinearTarget, UnsafeMutablePointer<Float>)], x: UnsafePointer<Float>, m: Int) {
        for (target, y) in targets { addDelta(layer: layer, target: target, x: x, m: m, y: y) }
    }

    public func adaptSublayer(layer: Int, afterAttention: Bool, h: UnsafeMutablePointer<Float>, m: Int) {}
}
