import AttuneGGUF
import AttuneModel

extension LlamaModel {
    /// The base model as an inference worker loads it. Its prompts default to 8-bit activations
    /// in quantized mode where the matrices have the integer kernels (else fp32): a server
    /// batches the prompts of many requests into one step, and only the integer kernels give a
    /// row the same bits whatever else is in its step (sgemm's can depend on the other rows),
    /// so a request's tokens are the same batched or alone. `prompts` overrides the default.
    public static func forServing(path: String, mode: WeightMode, prompts: PromptActivations? = nil) throws -> LlamaModel {
        let file = try GGUFFile(path: path)
        if let prompts { return try LlamaModel(file: file, mode: mode, prompts: prompts) }
        if mode == .quantized {
            do {
                // Refused after the matrices are read from the mapped file, before any is converted.
                return try LlamaModel(file: file, mode: mode, prompts: .int8)
            } catch ModelError.noIntegerPrompts {
                // Matrices without the integer kernels: prompts stay on sgemm.
            }
        }
        return try LlamaModel(file: file, mode: mode, prompts: .fp32)
    }
}
