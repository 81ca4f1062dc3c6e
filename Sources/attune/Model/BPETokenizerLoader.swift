import AttuneModel
import AttuneTokenizer

/// The tokenizer stored in a loaded model's GGUF.
enum BPETokenizerLoader {
    static func load(_ model: LlamaModel) throws -> BPETokenizer {
        try BPETokenizer(gguf: model.file)
    }
}
