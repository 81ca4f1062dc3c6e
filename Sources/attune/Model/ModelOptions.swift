import ArgumentParser
import AttuneModel
import AttuneTokenizer
import AttuneTraining
import Foundation

/// Options shared by the commands that load the base model.
struct ModelOptions: ParsableArguments {
    @Option(help: "GGUF model file (default: $ATTUNE_MODEL, else the fetched base model).")
    var model: String?

    @Option(help: "Weight memory mode: quantized (low memory) or dense (fp32 copy, faster prefill); default: dense to serve, else quantized.")
    var weights: WeightMode?

    @Option(help: "Prompt activations with --weights quantized: fp32 (sgemm, exact) or int8 (the decode kernels, llama.cpp's Q4 × Q8: faster prompts, and each prompt's bits independent of the others in its step); default: int8 to serve, else fp32.")
    var promptActivations: PromptActivations?

    @Option(help: "Adapter folder (PEFT LoRA or bottleneck) to apply; repeat to stack, the first is lowest.")
    var adapter: [String] = []

    /// Loads the model (in `--weights` mode, else `defaultMode`) and its tokenizer. `serving`:
    /// quantized prompts default to 8-bit activations where the model's matrices have the
    /// integer kernels — a server batches prompts of many requests into one step, and only the
    /// integer kernels give a row the same bits whatever else is in it (sgemm's can depend on
    /// the other rows), so a request's tokens are the same batched or alone.
    func load(defaultMode: WeightMode = .quantized, serving: Bool = false) throws -> (LlamaModel, BPETokenizer) {
        let path = try BaseModelStore().resolve(model)
        let mode = weights ?? defaultMode
        let llama: LlamaModel
        if let promptActivations {
            llama = try LlamaModel(path: path, mode: mode, prompts: promptActivations)
        } else if serving && mode == .quantized, let int8 = try? LlamaModel(path: path, mode: mode, prompts: .int8) {
            llama = int8
        } else {
            llama = try LlamaModel(path: path, mode: mode, prompts: .fp32)
        }
        return (llama, try BPETokenizer(gguf: llama.file))
    }

    /// The adapters named by --adapter, stacked in order (nil when none).
    func loadAdapters(for model: LlamaModel) throws -> (any LinearAdapter)? {
        let loaded = try adapter.map { try AdapterFiles.load(from: URL(fileURLWithPath: $0), model: model.config) }
        if loaded.isEmpty { return nil }
        return loaded.count == 1 ? loaded[0] : AdapterStack(loaded)
    }
}

extension WeightMode: ExpressibleByArgument {}
extension PromptActivations: ExpressibleByArgument {}
