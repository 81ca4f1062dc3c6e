import AttuneGGUF
import AttuneTensor
import Foundation

/// The weights of one transformer block.
package struct LlamaLayer {
    package let attnNorm: [Float]
    package let ffnNorm: [Float]
    package let wq: WeightMatrix
    package let wk: WeightMatrix
    package let wv: WeightMatrix
    package let wo: WeightMatrix
    package let gate: WeightMatrix
    package let up: WeightMatrix
    package let down: WeightMatrix

    package var matrices: [WeightMatrix] { [wq, wk, wv, wo, gate, up, down] }
}

/// Which positions of a forward pass produce logits.
public enum LogitPositions: Sendable {
    /// The last position of every sequence (generation).
    case last
    /// Every position of every sequence (scoring, training evaluation).
    case all
    /// None (prefill that only fills the caches).
    case none
}

/// A llama-architecture decoder (SmolLM2 and kin) over GGUF weights: batched prefill of many
/// sequences of different lengths and incremental decode with a KV cache.
///
/// Large batches run on `cblas_sgemm`; single-token decode runs SIMD kernels over the 4/8-bit
/// weights. RoPE rotates adjacent pairs (the GGUF convention).
public final class LlamaModel: @unchecked Sendable {
    public let config: LlamaConfig
    public let file: GGUFFile
    public let mode: WeightMode
    /// How prompt rows multiply the weights (`.int8` only in quantized mode).
    public let prompts: PromptActivations
    package let embedding: WeightMatrix
    package let output: WeightMatrix
    package let outputNorm: [Float]
    package let layers: [LlamaLayer]
    package let rope: RopeTable
    package let scratch: ScratchBuffer
    private let lock = NSLock()

    /// Loads the model at `path`.
    public convenience init(path: String, mode: WeightMode = .quantized, prompts: PromptActivations = .fp32) throws {
        try self.init(file: try GGUFFile(path: path), mode: mode, prompts: prompts)
    }

    public init(file: GGUFFile, mode: WeightMode = .quantized, prompts: PromptActivations = .fp32) throws {
        let c = try LlamaConfig(gguf: file)
        config = c
        self.file = file
        self.mode = mode
        self.prompts = prompts
        let kvDim = c.kvHeads * c.headDim
        func matrix(_ name: String, _ rows: Int, _ cols: Int) throws -> WeightMatrix {
            try WeightMatrix(name: name, tensor: try file.tensor(name), file: file, expectRows: rows, expectCols: cols)
        }
        func vector(_ name: String) throws -> [Float] {
            let t = try file.tensor(name)
            guard t.elementCount == c.dim else { throw ModelError.badTensor(name, "has \(t.elementCount) values, expected \(c.dim)") }
            return file.floats(t)
        }
        embedding = try matrix("token_embd.weight", c.vocabSize, c.dim)
        output = file.hasTensor("output.weight") ? try matrix("output.weight", c.vocabSize, c.dim) : embedding
        outputNorm = try vector("output_norm.weight")
        layers = try (0..<c.layers).map { i in
            let p = "blk.\(i)."
            return LlamaLayer(attnNorm: try vector(p + "attn_norm.weight"), ffnNorm: try vector(p + "ffn_norm.weight"),
                              wq: try matrix(p + "attn_q.weight", c.dim, c.dim),
                              wk: try matrix(p + "attn_k.weight", kvDim, c.dim),
                              wv: try matrix(p + "attn_v.weight", kvDim, c.dim),
                              wo: try matrix(p + "attn_output.weight", c.dim, c.dim),
                              gate: try matrix(p + "ffn_gate.weight", c.ffnDim, c.dim),
                              up: try matrix(p + "ffn_up.weight", c.ffnDim, c.dim),
                              down: try matrix(p + "ffn_down.weight", c.dim, c.ffnDim))
        }
        rope = RopeTable(headDim: c.headDim, maxPositions: c.contextLength, base: c.ropeBase)
        scratch = ScratchBuffer(capacity: max(c.ffnDim * c.dim, 8192 * c.dim))
        if prompts == .int8 {
            guard mode == .quantized else { throw ModelError.noIntegerPrompts("they need the quantized weight mode") }
            if let w = layers.flatMap(\.matrices).first(where: { !MatVec.hasBlockKernels($0.format) }) {
                throw ModelError.noIntegerPrompts("they need Q4_1 or Q8_0 matrices; \(w.name) is \(w.format.name)")
            }
        }
        if mode == .dense {
            for l in layers { l.matrices.forEach { $0.makeDense() } }
            output.makeDense()
        } else {
            for l in layers { l.matrices.forEach { $0.interleave() } }
            output.interleave()
        }
    }

    /// Weight bytes one decode step reads: every matrix once, in its stored format.
    public var streamedBytesPerToken: Int {
        (layers.flatMap(\.matrices) + [output]).reduce(0) { $0 + $1.rows * $1.rowBytes }
    }

    /// Bytes held beyond the memory-mapped file (fp32 or interleaved copies, scratch).
    public var residentWeightBytes: Int {
        layers.reduce(0) { $0 + $1.matrices.reduce(0) { $0 + $1.residentBytes } } + output.residentBytes + scratch.capacity * 4
    }

    /// How this model's KV caches store keys and values: fp32 in dense mode, half precision in
    /// quantized mode (as llama.cpp's default cache), which halves the bytes a decode step's
    /// attention reads and a sequence holds.
    public var kvPrecision: KVCache.Precision { mode == .dense ? .fp32 : .half }

    /// A new, empty KV cache for this model.
    public func makeCache(capacity: Int = 256) -> KVCache {
        KVCache(config: config, capacity: capacity, precision: kvPrecision)
    }

    /// Prompt rows of one step up to which dense mode multiplies them by the stored weights (panels)
    /// rather than by sgemm on the fp32 copy, which packs the whole 540 MB copy on every pass
    /// whatever the rows. `attune bench model --weights dense`, SmolLM2 on 2 cores (Sapphire
    /// Rapids), prefill tok/s panels vs sgemm: 8 rows 525 vs 102, 16: 629 vs 277, 32: 863 vs 472,
    /// 64: 897 vs 680, 96: 868 vs 788, 128: 817 vs 800, 256: 673 vs 861, 512: 606 vs 779.
    static let directPromptRows = 128

    /// Whether a forward pass must hold at most one prompt (longer than one token) for each of
    /// its rows to get the bits it gets alone. With quantized weights every decode row, and every
    /// prompt row with 8-bit prompts, runs on integer kernels that compute each row alone; fp32
    /// prompts there take sgemm, whose kernels depend on the number of rows, so one per pass.
    /// Dense mode chooses its fp32 kernels (vectors in registers, panels of two tile forms,
    /// sgemm) by the number of rows, so its rows agree with their answers alone within fp32
    /// rounding only, and its prompts share passes.
    public var batchInvariantPromptsAlone: Bool { mode == .quantized && prompts == .fp32 }

    /// Runs `tokens[s]` through the model after what `caches[s]` already holds, appends their
    /// keys/values to the caches, and returns logits (`[rows × vocab]`, row-major) for the
    /// selected positions, sequences in order.
    public func forward(tokens: [[Int32]], caches: [KVCache], logits selection: LogitPositions = .last,
                        adapter: (any LinearAdapter)? = nil) throws -> [Float] {
        var logits: [Float] = []
        try forward(tokens: tokens, caches: caches, logits: selection, adapter: adapter, into: &logits)
        return logits
    }

    /// As `forward(tokens:caches:logits:adapter:)`, with the logits written into `logits`, whose
    /// storage is reused when it is large enough: a decode loop that keeps one array does not
    /// fault in megabytes of fresh pages every step.
    public func forward(tokens: [[Int32]], caches: [KVCache], logits selection: LogitPositions = .last,
                        adapter: (any LinearAdapter)? = nil, into logits: inout [Float]) throws {
        lock.lock()
        defer { lock.unlock() }
        precondition(tokens.count == caches.count, "one cache per sequence")
        let c = config
        let total = tokens.reduce(0) { $0 + $1.count }
        guard total > 0 else { throw ModelError.emptyInput }
        for (seq, cache) in zip(tokens, caches) {
            for t in seq where t < 0 || Int(t) >= c.vocabSize { throw ModelError.invalidToken(t) }
            try cache.reserve(seq.count)
        }
        let D = c.dim, kvDim = c.kvHeads * c.headDim, F = c.ffnDim
        let buf = Workspace(tokens: total, dim: D, kvDim: kvDim, ffnDim: F)
        defer { buf.free() }

        // One-token steps (decode) read the stored 4/8-bit weights directly, and in dense mode so
        // do the prompts of a step when they hold at most `directPromptRows` rows together; more
        // prompt rows use sgemm on the fp32 copy (see `WeightMatrix.matmul` for how the paths agree).
        // With 8-bit prompt activations every row of the layers takes the decode kernels; the
        // head keeps sgemm for the logits of prompt positions (scoring), so scores keep fp32
        // head products.
        let promptRows = tokens.reduce(0) { $0 + ($1.count > 1 ? $1.count : 0) }
        let directPrompts = mode == .dense && promptRows <= Self.directPromptRows
        var decodeRows: [Range<Int>] = []
        var row = 0
        for seq in tokens {
            if seq.count == 1 || directPrompts { decodeRows.append(row..<(row + seq.count)) }
            row += seq.count
        }
        let directRows = prompts == .int8 ? [0..<total] : decodeRows
        row = 0
        var tokenPositions = [Int](repeating: 0, count: total)
        for (seq, cache) in zip(tokens, caches) {
            for (i, t) in seq.enumerated() {
                embedding.row(Int(t), into: buf.x + row * D)
                tokenPositions[row] = cache.count + i
                row += 1
            }
        }

        for (l, layer) in layers.enumerated() {
            Ops.rmsNorm(buf.x, weight: layer.attnNorm, out: buf.xn, rows: total, n: D, eps: c.normEps)
            WeightMatrix.matmul([layer.wq, layer.wk, layer.wv], buf.xn, m: total, [buf.q, buf.k, buf.v], scratch: scratch,
                                directRows: directRows)
            adapter?.addDeltas(layer: l, targets: [(.q, buf.q), (.k, buf.k), (.v, buf.v)], x: buf.xn, m: total)
            tokenPositions.withUnsafeBufferPointer { positions in
                Parallel.chunks(total, minPerChunk: Ops.rowsPerCore) { rows in
                    for t in rows {
                        Ops.rope(buf.q + t * D, heads: c.heads, headDim: c.headDim, pos: positions[t], table: rope)
                        Ops.rope(buf.k + t * kvDim, heads: c.kvHeads, headDim: c.headDim, pos: positions[t], table: rope)
                    }
                }
            }
            var start = 0
            var decoding: [Attention.Decode] = []
            for (seq, cache) in zip(tokens, caches) {
                let n = seq.count
                let newKeys = buf.k + start * kvDim, newValues = buf.v + start * kvDim
                cache.store(layer: l, keys: newKeys, values: newValues, n: n)
                if n == 1 {
                    decoding.append(Attention.Decode(q: buf.q + start * D, past: cache.count, keys: cache.keys(l),
                                                     values: cache.values(l), out: buf.att + start * D))
                } else {
                    cache.withFP32(layer: l, newKeys: newKeys, newValues: newValues, n: n) { keys, values in
                        Attention.forward(q: buf.q + start * D, n: n, past: cache.count, keys: keys, values: values,
                                          config: c, out: buf.att + start * D)
                    }
                }
                start += n
            }
            Attention.decode(decoding, config: c)
            addSublayer(layer.wo, .o, layer: l, buf.att, m: total, to: buf, adapter: adapter, directRows: directRows)

            Ops.rmsNorm(buf.x, weight: layer.ffnNorm, out: buf.xn, rows: total, n: D, eps: c.normEps)
            WeightMatrix.matmul([layer.gate, layer.up], buf.xn, m: total, [buf.gate, buf.up], scratch: scratch,
                                directRows: directRows)
            adapter?.addDeltas(layer: l, targets: [(.gate, buf.gate), (.up, buf.up)], x: buf.xn, m: total)
            Ops.swiglu(gate: buf.gate, up: buf.up, count: total * F)
            addSublayer(layer.down, .down, layer: l, buf.gate, m: total, to: buf, adapter: adapter, directRows: directRows)
        }
        for (seq, cache) in zip(tokens, caches) { cache.count += seq.count }

        var selected: [Int] = []
        let headDirectRows: [Range<Int>]
        switch selection {
        case .last:
            var end = 0
            for seq in tokens {
                end += seq.count
                selected.append(end - 1)
            }
            headDirectRows = [0..<tokens.count]
        case .all:
            selected = Array(0..<total)
            headDirectRows = decodeRows
        case .none:
            logits.removeAll(keepingCapacity: true)
            return
        }
        let rows = selected.count
        let hidden = UnsafeMutablePointer<Float>.allocate(capacity: rows * D)
        defer { hidden.deallocate() }
        for (i, r) in selected.enumerated() {
            Ops.rmsNorm(buf.x + r * D, weight: outputNorm, out: hidden + i * D, rows: 1, n: D, eps: c.normEps)
        }
        // The head writes every element: an array of the right size is reused as it is.
        if logits.count != rows * c.vocabSize {
            logits.removeAll(keepingCapacity: true)
            logits.append(contentsOf: repeatElement(0, count: rows * c.vocabSize))
        }
        logits.withUnsafeMutableBufferPointer { out in
            output.matmul(hidden, m: rows, out.baseAddress!, scratch: scratch, directRows: headDirectRows)
        }
    }

    /// The residual add of a sublayer: x += h, h = a·Wᵀ (`w` is the o or down projection) with
    /// the adapter's terms. Without an adapter, rows that all run on sgemm are added into x by
    /// sgemm itself; otherwise h is formed in `proj` first, where bottleneck adapters see it whole.
    /// Where a row must get the bits it gets alone (`batchInvariantPromptsAlone`), h is always
    /// formed first: sgemm adding into x rounds differently once it splits the inner dimension,
    /// and a prompt alone would take that path but not beside decode or adapter rows.
    private func addSublayer(_ w: WeightMatrix, _ target: LinearTarget, layer l: Int, _ a: UnsafePointer<Float>, m: Int,
                             to buf: Workspace, adapter: (any LinearAdapter)?, directRows: [Range<Int>]) {
        if adapter == nil && directRows.isEmpty && !batchInvariantPromptsAlone {
            w.matmulAdding(a, m: m, into: buf.x, scratch: scratch)
            return
        }
        w.matmul(a, m: m, buf.proj, scratch: scratch, directRows: directRows)
        if let adapter {
            adapter.addDelta(layer: l, target: target, x: a, m: m, y: buf.proj)
            adapter.adaptSublayer(layer: l, afterAttention: target == .o, h: buf.proj, m: m)
        }
        Ops.add(buf.x, buf.proj, count: m * config.dim)
    }
}
