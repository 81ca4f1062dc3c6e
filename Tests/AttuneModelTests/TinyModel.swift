import AttuneGGUF
import AttuneTensor
import Foundation
@testable import AttuneModel

/// Writes a small llama GGUF with random weights (Q4_1 matrices, Q8_0 embeddings, F32 norms)
/// and loads it, so model tests run without the real model.
enum TinyModel {
    static let config = LlamaConfig(layers: 2, dim: 64, ffnDim: 96, heads: 4, kvHeads: 2, vocabSize: 80,
                                    contextLength: 64, ropeBase: 10000, normEps: 1e-5)

    static func write(to path: String, seed: UInt64 = 7, matrixFormat: QuantFormat = .q4_1) throws {
        let c = config
        var state = seed
        func random(_ n: Int, scale: Float) -> [Float] {
            (0..<n).map { _ in
                state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
                return (Float(state >> 40) / Float(1 << 24) * 2 - 1) * scale
            }
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

    static func load(mode: WeightMode = .quantized, matrixFormat: QuantFormat = .q4_1) throws -> LlamaModel {
        let path = FileManager.default.temporaryDirectory
            .appendingPathComponent("attune-tiny-\(getpid())-\(matrixFormat.name)-\(UUID().uuidString).gguf").path
        try write(to: path, matrixFormat: matrixFormat)
        defer { try? FileManager.default.removeItem(atPath: path) }
        return try LlamaModel(path: path, mode: mode)
    }
}

func maxAbsDiff(_ a: ArraySlice<Float>, _ b: ArraySlice<Float>) -> Float {
    zip(a, b).reduce(0) { max($0, abs($1.0 - $1.1)) }
}
