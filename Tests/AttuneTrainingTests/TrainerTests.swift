import AttuneModel
import AttuneTokenizer
import Foundation
import Testing
@testable import AttuneTraining

private let tiny = LlamaConfig(layers: 2, dim: 64, ffnDim: 96, heads: 4, kvHeads: 2, vocabSize: 80,
                               contextLength: 64, ropeBase: 10000, normEps: 1e-5)

/// A character tokenizer over printable ASCII with the ChatML specials at the end.
private func charTokenizer() throws -> BPETokenizer {
    var tokens = (32..<127).map { b in b == 32 ? "Ġ" : String(UnicodeScalar(UInt8(b))) }
    tokens += ["<|im_start|>", "<|im_end|>"]
    return try BPETokenizer(tokens: tokens, merges: [], tokenTypes: Array(repeating: 1, count: 95) + [3, 3], bosID: 95, eosID: 96)
}

@Test func interactionsLearnOnlyTheAnswer() throws {
    let b = ExampleBuilder(tokenizer: try charTokenizer(), systemPrompt: nil)
    let e = try #require(b.interaction(prompt: "hi", response: "ok"))
    let learned = zip(e.tokens, e.learn).filter(\.1).map(\.0)
    #expect(b.tokenizer.decode(learned) == "ok<|im_end|>")
    #expect(e.learn.filter { $0 }.count == 3)
    let corrected = try #require(b.interaction(prompt: "hi", response: "bad", correction: "good", feedback: "down"))
    #expect(b.tokenizer.decode(zip(corrected.tokens, corrected.learn).filter(\.1).map(\.0)) == "good<|im_end|>")
    #expect(b.interaction(prompt: "hi", response: "bad", feedback: "rejected") == nil)
    #expect(try b.example(fromJSON: #"{"text": "abc"}"#)?.learn.allSatisfy { $0 } == true)
    #expect(throws: TrainingError.self) { try b.example(fromJSON: #"{"prompt": 3}"#) }
    #expect(throws: TrainingError.self) { try b.example(fromJSON: "not json") }
}

@Test func badDataLinesNameTheirFileAndLine() throws {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("attune-data-\(UUID().uuidString).jsonl").path
    try "{\"text\": \"fine\"}\n\n{\"nope\": 1}\n".write(toFile: path, atomically: true, encoding: .utf8)
    defer { try? FileManager.default.removeItem(atPath: path) }
    do {
        _ = try ExampleBuilder(tokenizer: try charTokenizer()).load(path: path)
        Issue.record("bad line accepted")
    } catch let e as TrainingError {
        #expect(e.description.contains(":3:"))
    }
}

@Test func packingShiftsTargetsAndPadsTheLastRow() {
    let e = TrainingExample(tokens: [1, 2, 3, 4, 5, 6], learn: [true, true, false, true, true, true])
    let d = PackedDataset(examples: [e], seqLen: 4, padToken: 0)
    #expect(d.rows.count == 2)
    #expect(d.rows[0].tokens == [1, 2, 3, 4] && d.rows[0].targets == [2, -1, 4, 5])
    #expect(d.rows[1].tokens == [5, 0, 0, 0] && d.rows[1].targets == [6, -1, -1, -1], "the last input is the last token that has a successor")
}

private func trainer(steps: Int, seed: UInt64 = 1) throws -> Trainer {
    let base = try RandomModel.load(tiny, seed: 3)
    let lora = try LoRAAdapter(config: LoRAConfig(rank: 4, alpha: 8, dropout: 0.1), model: tiny, seed: seed)
    let model = try TrainableLlama(base: base, lora: lora, seed: seed)
    let pattern: [Int32] = (0..<200).map { Int32(($0 * 7) % 23 + 10) }
    let data = PackedDataset(examples: [TrainingExample(tokens: pattern, learn: Array(repeating: true, count: pattern.count))],
                             seqLen: 16, padToken: 0)
    return try Trainer(model: model, data: data, config: TrainerConfig(
        steps: steps, batchSize: 4, gradientAccumulation: 2, optimizer: AdamWConfig(learningRate: 1e-2), warmupSteps: 2, seed: seed))
}

/// Training lowers the loss of a repeated pattern a random model cannot predict.
@Test func trainingLowersTheLoss() throws {
    let t = try trainer(steps: 30)
    let before = Trainer.evaluate(t.model, t.data).loss
    t.run()
    let after = Trainer.evaluate(t.model, t.data).loss
    #expect(after < 0.7 * before, "loss \(before) → \(after)")
}

/// Stopping, checkpointing and resuming in a fresh trainer gives bit-identical parameters.
@Test func resumedTrainingIsBitIdentical() throws {
    let straight = try trainer(steps: 6)
    straight.run()
    let first = try trainer(steps: 6)
    for _ in 0..<3 { _ = first.trainStep() }
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("attune-ckpt-\(UUID().uuidString).safetensors")
    defer { try? FileManager.default.removeItem(at: url) }
    try first.saveCheckpoint(to: url)
    let resumed = try trainer(steps: 6, seed: 1)
    try resumed.loadCheckpoint(from: url)
    #expect(resumed.step == 3)
    resumed.run()
    #expect(resumed.model.parameters.array == straight.model.parameters.array)
    #expect(resumed.optimizer.v.array == straight.optimizer.v.array)
}
