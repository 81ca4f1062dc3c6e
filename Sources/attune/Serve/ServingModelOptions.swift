import AttuneModel
import AttuneServing
import AttuneTokenizer

extension ModelOptions {
    /// Loads the model as an inference worker does (`LlamaModel.forServing`: quantized weights
    /// and 8-bit prompts unless `--weights` / `--prompt-activations` say otherwise) and its tokenizer.
    func loadForServing() throws -> (LlamaModel, BPETokenizer) {
        let llama = try LlamaModel.forServing(path: try BaseModelStore().resolve(model), mode: weights ?? .quantized,
                                              prompts: promptActivations)
        return (llama, try BPETokenizer(gguf: llama.file))
    }
}
