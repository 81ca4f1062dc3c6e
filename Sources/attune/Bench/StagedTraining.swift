import ArgumentParser
import AttuneModel
import AttuneTokenizer
import AttuneTraining

/// What the forgetting and personalization benchmarks share: the 4-bit base model, data split
/// into training and held-out examples (every 5th), and one training stage of fixed settings.
struct StagedTraining {
    let base: LlamaModel
    let builder: ExampleBuilder
    let seqLen: Int
    let config: TrainerConfig

    init(model: String?, steps: Int, seqLen: Int, batchSize: Int, lr: Float) throws {
        base = try LlamaModel(path: try BaseModelStore().resolve(model), mode: .quantized)
        builder = ExampleBuilder(tokenizer: try BPETokenizer(gguf: base.file))
        self.seqLen = seqLen
        config = TrainerConfig(steps: steps, batchSize: batchSize, optimizer: AdamWConfig(learningRate: lr),
                               schedule: .constant, warmupSteps: 2, seed: 1)
    }

    /// The examples of a file or folder: every 5th held out, the rest for training.
    func split(_ path: String) throws -> (train: [TrainingExample], held: [TrainingExample]) {
        let all = try builder.load(path: path)
        guard all.count >= 5 else { throw ValidationError("\(path) needs at least 5 examples") }
        return (all.enumerated().filter { $0.offset % 5 != 4 }.map(\.element), all.enumerated().filter { $0.offset % 5 == 4 }.map(\.element))
    }

    func dataset(_ examples: [TrainingExample]) -> PackedDataset {
        PackedDataset(examples: examples, seqLen: seqLen, padToken: builder.tokenizer.eosID)
    }

    /// One stage: `config.steps` optimizer steps of `model` on `examples`.
    func train(_ model: TrainableLlama, _ examples: [TrainingExample], regularizer: Regularizer? = nil) throws {
        let trainer = try Trainer(model: model, data: dataset(examples), config: config)
        trainer.regularizer = regularizer
        trainer.run()
    }
}
