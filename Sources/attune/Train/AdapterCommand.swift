import ArgumentParser
import AttuneModel
import AttuneTensor
import AttuneTraining
import Foundation

/// `attune adapter …`: inspect, export and merge PEFT LoRA adapters.
struct AdapterCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "adapter", abstract: "List, pull, inspect, export (llama.cpp LoRA GGUF) and merge adapters; ask the workers to rebase a tenant.",
        subcommands: [List.self, History.self, Pull.self, Rollback.self, Promote.self, Inspect.self, ExportGGUF.self, Merge.self, Rebase.self])

    struct Inspect: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print an adapter's configuration and tensor norms.")
        @OptionGroup var modelOptions: ModelOptions
        @Argument(help: "PEFT adapter folder.") var dir: String

        func run() throws {
            let (model, _) = try modelOptions.load()
            let a = try PEFTAdapterFile.load(from: URL(fileURLWithPath: dir), model: model.config)
            print("LoRA r=\(a.config.rank) alpha=\(a.config.alpha) rsLoRA=\(a.config.useRSLoRA) dropout=\(a.config.dropout)")
            print("targets: \(a.config.targets.map(\.peftName).joined(separator: ", ")); \(a.parameterCount) parameters")
            for t in a.config.targets {
                let norms = (0..<a.model.layers).map { l -> Double in
                    let d = a.delta(layer: l, target: t)
                    return d.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
                }
                print(String(format: "  %-10@ ‖s·B·A‖ mean %.4f max %.4f", t.peftName, norms.reduce(0, +) / Double(norms.count), norms.max() ?? 0))
            }
        }
    }

    struct ExportGGUF: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "export-gguf", abstract: "Write the adapter as a llama.cpp LoRA GGUF.")
        @OptionGroup var modelOptions: ModelOptions
        @Argument(help: "PEFT adapter folder.") var dir: String
        @Option(help: "Output .gguf file.") var out: String

        func run() throws {
            let (model, _) = try modelOptions.load()
            let a = try PEFTAdapterFile.load(from: URL(fileURLWithPath: dir), model: model.config)
            try AdapterExport.writeLoRAGGUF(a, to: out)
            print(out)
        }
    }

    struct Merge: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Write a copy of the base model with the adapter merged in.")
        @OptionGroup var modelOptions: ModelOptions
        @Argument(help: "PEFT adapter folder.") var dir: String
        @Option(help: "Output .gguf file.") var out: String
        @Option(help: "Storage of merged projections: F32, F16 or Q8_0.") var type = "F16"

        func run() throws {
            guard let format = QuantFormat(name: type), Quantize.canWrite(format) else {
                throw ValidationError("--type must be F32, F16 or Q8_0")
            }
            let (model, _) = try modelOptions.load()
            let a = try PEFTAdapterFile.load(from: URL(fileURLWithPath: dir), model: model.config)
            try AdapterExport.writeMerged(base: model, adapter: a, format: format, to: out)
            print(out)
        }
    }
}
