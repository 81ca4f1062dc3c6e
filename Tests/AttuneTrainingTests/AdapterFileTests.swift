import AttuneGGUF
import AttuneModel
import Foundation
import Testing
@testable import AttuneTraining

private let tiny = LlamaConfig(layers: 2, dim: 64, ffnDim: 96, heads: 4, kvHeads: 2, vocabSize: 80,
                               contextLength: 64, ropeBase: 10000, normEps: 1e-5)

private func tempDir() -> URL {
    FileManager.default.temporaryDirectory.appendingPathComponent("attune-adapter-\(UUID().uuidString)")
}

private func randomAdapter(_ targets: [LinearTarget] = LinearTarget.allCases) throws -> LoRAAdapter {
    let a = try LoRAAdapter(config: LoRAConfig(rank: 4, alpha: 8, targets: targets), model: tiny, seed: 1)
    var rng = SeededGenerator(seed: 2)
    for i in 0..<a.parameterCount { a.parameters[i] = Float.random(in: -0.1...0.1, using: &rng) }
    return a
}

@Test func peftFilesRoundTripAndReproduceLogits() throws {
    let base = try RandomModel.load(tiny)
    let adapter = try randomAdapter()
    let dir = tempDir()
    defer { try? FileManager.default.removeItem(at: dir) }
    try PEFTAdapterFile.save(adapter, to: dir, baseModel: "tiny.gguf")
    let config = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("adapter_config.json"))) as! [String: Any]
    #expect(config["peft_type"] as? String == "LORA" && config["r"] as? Int == 4)
    #expect((config["target_modules"] as? [String])?.contains("gate_proj") == true)
    let (tensors, _) = try Safetensors.decode(Data(contentsOf: dir.appendingPathComponent("adapter_model.safetensors")))
    #expect(tensors["base_model.model.model.layers.1.self_attn.k_proj.lora_B.weight"]?.shape == [32, 4])
    #expect(tensors["base_model.model.model.layers.0.mlp.down_proj.lora_A.weight"]?.shape == [4, 96])
    #expect(tensors.count == 2 * 2 * 7)

    let loaded = try PEFTAdapterFile.load(from: dir, model: tiny, expectedBase: "tiny.gguf")
    #expect(loaded.parameters.array == adapter.parameters.array)
    let tokens: [Int32] = [3, 9, 27, 81 % 80, 5]
    let a = try base.forward(tokens: [tokens], caches: [base.makeCache()], logits: .all, adapter: adapter)
    let b = try base.forward(tokens: [tokens], caches: [base.makeCache()], logits: .all, adapter: loaded)
    #expect(a == b)
    let plain = try base.forward(tokens: [tokens], caches: [base.makeCache()], logits: .all)
    #expect(a != plain, "the adapter changes the logits")
}

/// q/k lora_B rows are stored in Hugging Face order: GGUF row 2i+half of a head is HF row
/// half·hd/2 + i.
@Test func queryAndKeyRowsArePermutedToHuggingFaceOrder() throws {
    let adapter = try randomAdapter([.q])
    let dir = tempDir()
    defer { try? FileManager.default.removeItem(at: dir) }
    try PEFTAdapterFile.save(adapter, to: dir, baseModel: "tiny")
    let (tensors, _) = try Safetensors.decode(Data(contentsOf: dir.appendingPathComponent("adapter_model.safetensors")))
    let stored = tensors["base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight"]!.values
    let b = adapter.b(0, .q)
    let hd = tiny.headDim, r = 4
    for h in 0..<tiny.heads {
        for i in 0..<(hd / 2) {
            for half in 0..<2 {
                let gguf = h * hd + 2 * i + half, hf = h * hd + half * hd / 2 + i
                for c in 0..<r { #expect(stored[hf * r + c] == b[gguf * r + c]) }
            }
        }
    }
}

@Test func badAdapterFilesAreClearErrors() throws {
    let adapter = try randomAdapter([.v])
    let dir = tempDir()
    defer { try? FileManager.default.removeItem(at: dir) }
    try PEFTAdapterFile.save(adapter, to: dir, baseModel: "tiny")
    #expect(throws: TrainingError.self) { try PEFTAdapterFile.load(from: dir, model: tiny, expectedBase: "other") }
    var bigger = tiny
    bigger.layers = 3
    #expect(throws: TrainingError.self) { try PEFTAdapterFile.load(from: dir, model: bigger) }
    var wider = tiny
    wider.ffnDim = 128
    wider.dim = 96
    wider.headDim = 24
    #expect(throws: TrainingError.self) { try PEFTAdapterFile.load(from: dir, model: wider) }
    let weights = dir.appendingPathComponent("adapter_model.safetensors")
    var data = try Data(contentsOf: weights)
    data[3] = 0x7f
    try data.write(to: weights)
    #expect(throws: TrainingError.self) { try PEFTAdapterFile.load(from: dir, model: tiny) }
    try Data("{\"peft_type\": \"PREFIX\"}".utf8).write(to: dir.appendingPathComponent("adapter_config.json"))
    #expect(throws: TrainingError.self) { try PEFTAdapterFile.load(from: dir, model: tiny) }
    #expect(throws: TrainingError.self) { try PEFTAdapterFile.load(from: tempDir(), model: tiny) }
}

@Test func safetensorsRejectsMalformedImages() throws {
    let good = try Safetensors.encode(["w": SafeTensor(shape: [2, 2], values: [1, 2, 3, 4])], metadata: ["k": "v"])
    let (t, m) = try Safetensors.decode(good)
    #expect(t["w"] == SafeTensor(shape: [2, 2], values: [1, 2, 3, 4]) && m["k"] == "v")
    for n in [0, 7, 8, 20, good.count - 1] {
        #expect(throws: SafetensorsError.self) { try Safetensors.decode(good.prefix(n)) }
    }
    var wrongDtype = good
    if let r = wrongDtype.range(of: Data("F32".utf8)) { wrongDtype.replaceSubrange(r, with: Data("I32".utf8)) }
    #expect(throws: SafetensorsError.self) { try Safetensors.decode(wrongDtype) }
    #expect(throws: SafetensorsError.self) { try Safetensors.encode(["w": SafeTensor(shape: [3], values: [1])]) }
    #expect(try Safetensors.metadata(good) == ["k": "v"])
    #expect(throws: SafetensorsError.self) { try Safetensors.metadata(good.prefix(20)) }
    let slice = (Data([9, 9, 9]) + good).dropFirst(3)
    let fromSlice = try Safetensors.decode(slice).tensors
    #expect(slice.startIndex == 3 && fromSlice == t, "a slice of a larger buffer reads the same")

    // A shape whose product overflows is an error, not a crash.
    var header = Data(#"{"w":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,16]}}"#.utf8)
    while header.count % 8 != 0 { header.append(0x20) }
    var huge = Data()
    withUnsafeBytes(of: UInt64(header.count).littleEndian) { huge.append(contentsOf: $0) }
    huge.append(header)
    huge.append(Data(count: 16))
    #expect(throws: SafetensorsError.self) { try Safetensors.decode(huge) }
}
