import ArgumentParser
import AttuneModel
import AttuneTensor
import Foundation

/// `attune logprobs`: the next-token log-softmax after a prompt, as raw float32 (for parity
/// checks against other runtimes).
struct LogprobsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "logprobs", abstract: "Write the last position's log-softmax (float32, vocab values) to a file.")

    @OptionGroup var modelOptions: ModelOptions
    @Option(help: "Prompt text (no BOS, no template).") var prompt: String
    @Option(help: "Output file.") var out: String
    @Option(help: "Print the top-k tokens too.") var top = 5

    func run() throws {
        let (model, tokenizer) = try modelOptions.load()
        let ids = tokenizer.encode(prompt)
        guard !ids.isEmpty else { throw ValidationError("the prompt has no tokens") }
        let logits = try model.forward(tokens: [ids], caches: [model.makeCache()], logits: .last,
                                       adapter: try modelOptions.loadAdapters(for: model))
        var lp = [Float](repeating: 0, count: logits.count)
        logits.withUnsafeBufferPointer { l in lp.withUnsafeMutableBufferPointer { Ops.logSoftmax(l.baseAddress!, l.count, out: $0.baseAddress!) } }
        try lp.withUnsafeBytes { try Data($0).write(to: URL(fileURLWithPath: out)) }
        print("prompt ids: \(ids)")
        for (id, v) in lp.enumerated().sorted(by: { $0.element > $1.element }).prefix(top) {
            print(String(format: "  %6d %-16@ %.4f", id, tokenizer.decode([Int32(id)]).debugDescription, v))
        }
    }
}
