/// A chat message for the ChatML template.
public struct ChatMessage: Sendable, Codable, Equatable {
    public var role: String
    public var content: String

    public init(role: String, content: String) {
        self.role = role
        self.content = content
    }
}

/// The ChatML template SmolLM2 ships (`<|im_start|>role\ncontent<|im_end|>\n`), with its
/// default system prompt when the conversation has none.
public enum ChatTemplate {
    public static let defaultSystemPrompt = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"

    /// The prompt text; with `addGenerationPrompt` it ends in an open assistant turn.
    public static func render(_ messages: [ChatMessage], addGenerationPrompt: Bool = true,
                              systemPrompt: String? = defaultSystemPrompt) -> String {
        var out = ""
        if let systemPrompt, messages.first?.role != "system" {
            out += "<|im_start|>system\n\(systemPrompt)<|im_end|>\n"
        }
        for m in messages {
            out += "<|im_start|>\(m.role)\n\(m.content)<|im_end|>\n"
        }
        if addGenerationPrompt { out += "<|im_start|>assistant\n" }
        return out
    }
}
