import ArgumentParser
import AttuneModel
import AttuneTokenizer
import Foundation

/// `attune generate`: complete a prompt, streaming tokens to stdout.
struct GenerateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "generate", abstract: "Generate text from a prompt.")

    @OptionGroup var modelOptions: ModelOptions

    @Option(help: "The prompt text.")
    var prompt: String

    @Flag(help: "Wrap the prompt as a user turn in the model's ChatML template.")
    var chat = false

    @Option(help: "System prompt for --chat (default: the model's).")
    var system: String?

    @Option(help: "Maximum new tokens.")
    var maxTokens = 64

    @Option(help: "Sampling temperature (0 = greedy).")
    var temperature: Float = 0

    @Option(help: "Top-k (0 = off).")
    var topK = 0

    @Option(help: "Top-p nucleus mass (1 = off).")
    var topP: Float = 1

    @Option(help: "Repetition penalty (1 = off).")
    var repetitionPenalty: Float = 1

    @Option(help: "Random seed for sampling.")
    var seed: UInt64 = 0

    @Option(help: "Stop when this string is produced (repeatable).")
    var stop: [String] = []

    @Flag(help: "Print timing to stderr.")
    var stats = false

    func validate() throws {
        guard maxTokens > 0 else { throw ValidationError("--max-tokens must be positive") }
        guard temperature >= 0 else { throw ValidationError("--temperature must be ≥ 0") }
        guard topP > 0 && topP <= 1 else { throw ValidationError("--top-p must be in (0, 1]") }
        guard repetitionPenalty > 0 else { throw ValidationError("--repetition-penalty must be positive") }
    }

    func run() throws {
        let (model, tokenizer) = try modelOptions.load()
        let text = chat
            ? ChatTemplate.render([ChatMessage(role: "user", content: prompt)], systemPrompt: system ?? ChatTemplate.defaultSystemPrompt)
            : prompt
        let ids = tokenizer.encode(text, parseSpecial: chat)
        let request = GenerationRequest(
            prompt: ids, maxTokens: maxTokens,
            sampling: SamplingParameters(temperature: temperature, topK: topK, topP: topP,
                                         repetitionPenalty: repetitionPenalty, seed: seed),
            stop: stop)
        let result = try Generator(model: model, tokenizer: tokenizer, adapter: try modelOptions.loadAdapters(for: model)).generate(request) { piece in
            FileHandle.standardOutput.write(Data(piece.utf8))
            return true
        }
        FileHandle.standardOutput.write(Data("\n".utf8))
        if stats {
            let pre = Double(result.promptTokens) / max(result.prefillSeconds, 1e-9)
            let dec = Double(max(result.tokens.count - 1, 0)) / max(result.decodeSeconds, 1e-9)
            FileHandle.standardError.write(Data(String(format: "prompt %d tokens %.1f tok/s, generated %d tokens %.1f tok/s, finish %@\n",
                                                       result.promptTokens, pre, result.tokens.count, dec, result.finishReason.rawValue).utf8))
        }
    }
}
