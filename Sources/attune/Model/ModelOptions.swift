import ArgumentParser
import AttuneModel
import AttuneRegistry
import AttuneTokenizer
import AttuneTraining
import Foundation

/// Options shared by the commands that load the base model.
struct ModelOptions: ParsableArguments {
    @Option(help: "GGUF model file (default: $ATTUNE_MODEL, else the fetched base model).")
    var model: String?

    @Option(help: "Weight memory mode: quantized (4/8-bit, memory-mapped) or dense (an fp32 copy: every product in fp32, faster fp32 prompts).")
    var weights: WeightMode?

    @Option(help: "Prompt activations with --weights quantized: fp32 (sgemm, exact) or int8 (the decode kernels, llama.cpp's Q4 × Q8: faster prompts, and each prompt's bits independent of the others in its step); default: int8 to serve, else fp32.")
    var promptActivations: PromptActivations?

    @Option(help: "Adapter folder (PEFT LoRA or bottleneck) to apply; repeat to stack, the first is lowest.")
    var adapter: [String] = []

    /// Loads the model (in `--weights` mode, quantized by default; prompts in fp32 unless
    /// `--prompt-activations` says otherwise) and its tokenizer.
    func load() throws -> (LlamaModel, BPETokenizer) {
        let llama = try LlamaModel(path: try BaseModelStore().resolve(model), mode: weights ?? .quantized,
                                   prompts: promptActivations ?? .fp32)
        return (llama, try BPETokenizer(gguf: llama.file))
    }

    /// The adapters named by --adapter, stacked in order (nil when none). A folder pulled from
    /// the registry (`release.json`) that stands on a domain version not stacked right below it
    /// is loaded with a warning: alone it does not answer as served.
    func loadAdapters(for model: LlamaModel) throws -> (any LinearAdapter)? {
        let releases = adapter.map { folder in
            (try? Data(contentsOf: URL(fileURLWithPath: folder).appendingPathComponent("release.json")))
                .flatMap { try? JSONDecoder().decode(AdapterRelease.self, from: $0) }
        }
        for (i, release) in releases.enumerated() {
            guard let release, let domain = release.domain, i == 0 || releases[i - 1]?.id != domain else { continue }
            FileHandle.standardError.write(Data(("attune: warning: \(adapter[i]) is \(release.id), trained on \(domain), "
                + "which is not stacked below it: it will not answer as served (`attune adapter pull \(domain) --out DIR`, "
                + "then --adapter DIR --adapter \(adapter[i]))\n").utf8))
        }
        let loaded = try adapter.map { try AdapterFiles.load(from: URL(fileURLWithPath: $0), model: model.config) }
        if loaded.isEmpty { return nil }
        return loaded.count == 1 ? loaded[0] : AdapterStack(loaded)
    }
}

extension WeightMode: ExpressibleByArgument {}
extension PromptActivations: ExpressibleByArgument {}
