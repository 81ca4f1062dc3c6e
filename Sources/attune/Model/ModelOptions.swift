import ArgumentParser
import AttuneModel
import AttuneTokenizer

/// Options shared by the commands that load the base model.
struct ModelOptions: ParsableArguments {
    @Option(help: "GGUF model file (default: $ATTUNE_MODEL, else the fetched base model).")
    var model: String?

    @Option(help: "Weight memory mode: quantized (low memory) or dense (fp32 copy, faster prefill).")
    var weights: WeightMode = .quantized

    /// Loads the model and its tokenizer.
    func load() throws -> (LlamaModel, BPETokenizer) {
        let path = try BaseModelStore().resolve(model)
        let llama = try LlamaModel(path: path, mode: weights)
        return (llama, try BPETokenizer(gguf: llama.file))
    }
}

extension WeightMode: ExpressibleByArgument {}
