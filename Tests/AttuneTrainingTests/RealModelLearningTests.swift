import AttuneModel
import AttuneTokenizer
import Foundation
import Testing
@testable import AttuneTraining

/// Paragraphs of the license texts every Debian system ships.
private func licenseParagraphs() throws -> [String] {
    try ["Apache-2.0", "MPL-2.0", "GPL-3"].flatMap { name -> [String] in
        let text = try String(contentsOfFile: "/usr/share/common-licenses/" + name, encoding: .utf8)
        return text.components(separatedBy: "\n\n")
            .map { $0.split(whereSeparator: \.isWhitespace).joined(separator: " ") }
            .filter { $0.count > 200 }
    }
}

/// QLoRA on the real 4-bit SmolLM2: a few steps on license paragraphs lower the held-out
/// perplexity of that domain, and the saved PEFT adapter loads back to the same logits.
@Test func qloraLearnsTheLicenseDomain() throws {
    guard let path = try BaseModelStore.forChecks() else { return }
    let base = try LlamaModel(path: path, mode: .quantized)
    let tokenizer = try BPETokenizer(gguf: base.file)
    let builder = ExampleBuilder(tokenizer: tokenizer)
    let paragraphs = try licenseParagraphs()
    #expect(paragraphs.count > 60)
    let held = paragraphs.enumerated().filter { $0.offset % 8 == 7 }.map { builder.corpus($0.element) }
    let train = paragraphs.enumerated().filter { $0.offset % 8 != 7 }.map { builder.corpus($0.element) }
    let trainSet = PackedDataset(examples: train, seqLen: 128, padToken: tokenizer.eosID)
    let evalSet = PackedDataset(examples: Array(held.prefix(6)), seqLen: 128, padToken: tokenizer.eosID)
    let lora = try LoRAAdapter(config: LoRAConfig(rank: 8, alpha: 16), model: base.config, seed: 1)
    let model = try TrainableLlama(base: base, lora: lora)
    let trainer = try Trainer(model: model, data: trainSet, config: TrainerConfig(
        steps: 8, batchSize: 4, optimizer: AdamWConfig(learningRate: 1e-3), warmupSteps: 2, seed: 1))
    let before = Trainer.evaluate(model, evalSet).perplexity
    trainer.run()
    let after = Trainer.evaluate(model, evalSet).perplexity
    #expect(after < 0.9 * before, "held-out perplexity \(before) → \(after)")

    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("attune-license-\(UUID().uuidString)")
    defer { try? FileManager.default.removeItem(at: dir) }
    try PEFTAdapterFile.save(lora, to: dir, baseModel: "SmolLM2-135M-Instruct.Q4_1.gguf")
    let loaded = try PEFTAdapterFile.load(from: dir, model: base.config)
    let prompt = tokenizer.encode("Licensed under the Apache License")
    let a = try base.forward(tokens: [prompt], caches: [base.makeCache()], logits: .last, adapter: lora)
    let b = try base.forward(tokens: [prompt], caches: [base.makeCache()], logits: .last, adapter: loaded)
    #expect(a == b)
}
