import AttuneGGUF
import AttuneTensor
import Foundation

/// Writes a llama GGUF with seeded random weights (no tokenizer): small models for tests,
/// gradient checks and benchmarks that must not depend on the real base model.
public enum RandomModel {
    /// Writes the model to `path`: `matrixFormat` for the projections, Q8_0 embeddings, F32 norms.
    /// With `vocabulary` (byte-level spellings, GGUF token types, end-of-sequence id), the file
    /// also carries a merge-free GPT-2 tokenizer so the command line can load it.
    public static func write(_ c: LlamaConfig, to path: String, seed: UInt64 = 7, matrixFormat: QuantFormat = .q4_1,
                             vocabulary: (tokens: [String], types: [Int], eos: Int)? = nil) throws {
        var rng = SeededGenerator(seed: seed)
        func random(_ n: Int, scale: Float) -> [Float] {
            (0..<n).map { _ in Float.random(in: -scale...scale, using: &rng) }
        }
        var w = GGUFWriter()
        w.set("general.architecture", .string("llama"))
        w.set("llama.block_count", .uint32(UInt32(c.layers)))
        w.set("llama.embedding_length", .uint32(UInt32(c.dim)))
        w.set("llama.feed_forward_length", .uint32(UInt32(c.ffnDim)))
        w.set("llama.attention.head_count", .uint32(UInt32(c.heads)))
        w.set("llama.attention.head_count_kv", .uint32(UInt32(c.kvHeads)))
        w.set("llama.context_length", .uint32(UInt32(c.contextLength)))
        w.set("llama.rope.freq_base", .float32(c.ropeBase))
        w.set("llama.attention.layer_norm_rms_epsilon", .float32(c.normEps))
        if let vocabulary {
            precondition(vocabulary.tokens.count == c.vocabSize, "one token per vocabulary entry")
            w.set("tokenizer.ggml.model", .string("gpt2"))
            w.set("tokenizer.ggml.tokens", .array(vocabulary.tokens.map { .string($0) }))
            w.set("tokenizer.ggml.token_type", .array(vocabulary.types.map { .int32(Int32($0)) }))
            w.set("tokenizer.ggml.merges", .array([]))
            w.set("tokenizer.ggml.eos_token_id", .uint32(UInt32(vocabulary.eos)))
        }
        let kv = c.kvHeads * c.headDim
        w.addTensor("token_embd.weight", shape: [c.dim, c.vocabSize], format: .q8_0, values: random(c.dim * c.vocabSize, scale: 1))
        w.addTensor("output_norm.weight", shape: [c.dim], values: random(c.dim, scale: 0.2).map { 1 + $0 })
        for l in 0..<c.layers {
            let p = "blk.\(l)."
            w.addTensor(p + "attn_norm.weight", shape: [c.dim], values: random(c.dim, scale: 0.2).map { 1 + $0 })
            w.addTensor(p + "ffn_norm.weight", shape: [c.dim], values: random(c.dim, scale: 0.2).map { 1 + $0 })
            w.addTensor(p + "attn_q.weight", shape: [c.dim, c.dim], format: matrixFormat, values: random(c.dim * c.dim, scale: 0.3))
            w.addTensor(p + "attn_k.weight", shape: [c.dim, kv], format: matrixFormat, values: random(c.dim * kv, scale: 0.3))
            w.addTensor(p + "attn_v.weight", shape: [c.dim, kv], format: matrixFormat, values: random(c.dim * kv, scale: 0.3))
            w.addTensor(p + "attn_output.weight", shape: [c.dim, c.dim], format: matrixFormat, values: random(c.dim * c.dim, scale: 0.2))
            w.addTensor(p + "ffn_gate.weight", shape: [c.dim, c.ffnDim], format: matrixFormat, values: random(c.dim * c.ffnDim, scale: 0.3))
            w.addTensor(p + "ffn_up.weight", shape: [c.dim, c.ffnDim], format: matrixFormat, values: random(c.dim * c.ffnDim, scale: 0.3))
            w.addTensor(p + "ffn_down.weight", shape: [c.ffnDim, c.dim], format: matrixFormat, values: random(c.dim * c.ffnDim, scale: 0.2))
        }
        try w.write(to: path)
    }

    /// Writes a random model to a temporary file, loads it, and removes the file.
    public static func load(_ c: LlamaConfig, seed: UInt64 = 7, matrixFormat: QuantFormat = .q4_1,
                            mode: WeightMode = .quantized, prompts: PromptActivations = .fp32) throws -> LlamaModel {
        let path = FileManager.default.temporaryDirectory
            .appendingPathComponent("attune-random-\(getpid())-\(UUID().uuidString).gguf").path
        try write(c, to: path, seed: seed, matrixFormat: matrixFormat)
        defer { try? FileManager.default.removeItem(atPath: path) }
        return try LlamaModel(path: path, mode: mode, prompts: prompts)
    }
}
