import AttuneGGUF
import AttuneModel
import AttuneTensor
import Foundation
import Testing
@testable import AttuneTraining

private let tiny = LlamaConfig(layers: 2, dim: 64, ffnDim: 96, heads: 4, kvHeads: 2, vocabSize: 80,
                               contextLength: 64, ropeBase: 10000, normEps: 1e-5)

private func trainedLikeAdapter(rsLoRA: Bool = false) throws -> LoRAAdapter {
    let a = try LoRAAdapter(config: LoRAConfig(rank: 4, alpha: 8, useRSLoRA: rsLoRA, targets: [.q, .k, .down]), model: tiny, seed: 1)
    var rng = SeededGenerator(seed: 5)
    for i in 0..<a.parameterCount { a.parameters[i] = Float.random(in: -0.2...0.2, using: &rng) }
    return a
}

private func temp(_ name: String) -> String {
    FileManager.default.temporaryDirectory.appendingPathComponent("attune-\(UUID().uuidString)-\(name)").path
}

/// The llama.cpp LoRA GGUF holds lora_a [in, r] and lora_b [r, out] (GGML order) per adapted
/// tensor, α in `adapter.lora.alpha`, and for rsLoRA the √r folded into B.
@Test func loraGGUFHasLlamaCppLayout() throws {
    let adapter = try trainedLikeAdapter(rsLoRA: true)
    let path = temp("lora.gguf")
    defer { try? FileManager.default.removeItem(atPath: path) }
    try AdapterExport.writeLoRAGGUF(adapter, to: path)
    let f = try GGUFFile(path: path)
    #expect(f.metadata["general.type"]?.string == "adapter" && f.metadata["adapter.type"]?.string == "lora")
    #expect(f.metadata["adapter.lora.alpha"]?.double == 8)
    #expect(f.tensors.count == 2 * 3 * 2)
    let a = try f.tensor("blk.1.attn_k.weight.lora_a"), b = try f.tensor("blk.1.attn_k.weight.lora_b")
    #expect(a.shape == [64, 4] && b.shape == [4, 32])
    #expect(f.floats(a) == Array(UnsafeBufferPointer(start: adapter.a(1, .k), count: 4 * 64)))
    #expect(f.floats(b) == UnsafeBufferPointer(start: adapter.b(1, .k), count: 32 * 4).map { $0 * 2 })
    #expect(try f.tensor("blk.0.ffn_down.weight.lora_a").shape == [96, 4])
}

/// A base model with the adapter merged in (F32) computes what base + adapter computes.
@Test func mergedModelEqualsBasePlusAdapter() throws {
    let basePath = temp("base.gguf"), mergedPath = temp("merged.gguf")
    defer {
        try? FileManager.default.removeItem(atPath: basePath)
        try? FileManager.default.removeItem(atPath: mergedPath)
    }
    try RandomModel.write(tiny, to: basePath)
    let base = try LlamaModel(path: basePath)
    let adapter = try trainedLikeAdapter()
    try AdapterExport.writeMerged(base: base, adapter: adapter, format: .f32, to: mergedPath)
    let merged = try LlamaModel(path: mergedPath)
    #expect(try merged.file.tensor("blk.0.attn_q.weight").format == .f32)
    #expect(try merged.file.tensor("blk.0.attn_v.weight").format == .q4_1, "untouched projections are copied")
    let tokens: [Int32] = [1, 5, 9, 33, 70, 2]
    let expected = try base.forward(tokens: [tokens], caches: [base.makeCache()], logits: .all, adapter: adapter)
    let got = try merged.forward(tokens: [tokens], caches: [merged.makeCache()], logits: .all)
    #expect(zip(expected, got).allSatisfy { abs($0 - $1) < 1e-4 })
}
