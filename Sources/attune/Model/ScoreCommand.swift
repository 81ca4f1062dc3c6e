import ArgumentParser
import AttuneModel
import Foundation

/// `attune score`: log-likelihood and perplexity of a text file.
struct ScoreCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "score", abstract: "Score a text: log-likelihood and perplexity.")

    @OptionGroup var modelOptions: ModelOptions

    @Option(help: "UTF-8 text file to score.")
    var textFile: String?

    @Option(help: "Text to score (instead of --text-file).")
    var text: String?

    @Option(help: "Window length in tokens.")
    var context = 512

    @Option(help: "Tokens of context carried into each following window.")
    var overlap = 0

    func validate() throws {
        guard (textFile == nil) != (text == nil) else { throw ValidationError("give exactly one of --text-file or --text") }
        guard context >= 2 else { throw ValidationError("--context must be at least 2") }
    }

    func run() throws {
        let body: String
        if let textFile {
            let data = try contentsOfFile(textFile)
            guard let s = String(data: data, encoding: .utf8) else { throw ValidationError("\(textFile) is not UTF-8 text") }
            body = s
        } else {
            body = text!
        }
        let (model, tokenizer) = try modelOptions.load()
        let ids = tokenizer.encode(body)
        guard ids.count >= 2 else { throw ValidationError("the text has fewer than 2 tokens") }
        let start = ContinuousClock.now
        let score = try Scorer(model: model, adapter: try modelOptions.loadAdapters(for: model)).score(ids, context: context, overlap: overlap)
        let seconds = (ContinuousClock.now - start).seconds
        print(String(format: "tokens %d  scored %d  log-likelihood %.4f  mean NLL %.4f  perplexity %.4f  (%.1f tokens/s)",
                     ids.count, score.tokens, score.logLikelihood, score.meanNLL, score.perplexity, Double(ids.count) / seconds))
    }
}
