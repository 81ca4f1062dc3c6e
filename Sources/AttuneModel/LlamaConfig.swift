import AttuneGGUF

/// Hyperparameters of a llama-architecture model, read from GGUF metadata.
public struct LlamaConfig: Sendable, Equatable {
    public var layers: Int
    public var dim: Int
    public var ffnDim: Int
    public var heads: Int
    public var kvHeads: Int
    public var headDim: Int
    public var vocabSize: Int
    public var contextLength: Int
    public var ropeBase: Float
    public var normEps: Float

    public init(layers: Int, dim: Int, ffnDim: Int, heads: Int, kvHeads: Int, vocabSize: Int,
                contextLength: Int, ropeBase: Float = 10000, normEps: Float = 1e-5) {
        self.layers = layers
        self.dim = dim
        self.ffnDim = ffnDim
        self.heads = heads
        self.kvHeads = kvHeads
        self.headDim = dim / heads
        self.vocabSize = vocabSize
        self.contextLength = contextLength
        self.ropeBase = ropeBase
        self.normEps = normEps
    }

    /// Reads `llama.*` metadata; the vocabulary size comes from the embedding tensor.
    public init(gguf: GGUFFile) throws {
        let arch = try gguf.string("general.architecture")
        guard arch == "llama" else { throw ModelError.unsupportedArchitecture(arch) }
        let embedding = try gguf.tensor("token_embd.weight")
        let heads = try gguf.int("llama.attention.head_count")
        self.init(layers: try gguf.int("llama.block_count"),
                  dim: try gguf.int("llama.embedding_length"),
                  ffnDim: try gguf.int("llama.feed_forward_length"),
                  heads: heads,
                  kvHeads: gguf.metadata["llama.attention.head_count_kv"]?.int ?? heads,
                  vocabSize: embedding.rows,
                  contextLength: gguf.metadata["llama.context_length"]?.int ?? 2048,
                  ropeBase: Float(gguf.metadata["llama.rope.freq_base"]?.double ?? 10000),
                  normEps: Float(gguf.metadata["llama.attention.layer_norm_rms_epsilon"]?.double ?? 1e-5))
        try validate()
    }

    /// Checks that the dimensions are consistent.
    public func validate() throws {
        guard layers > 0, dim > 0, heads > 0, kvHeads > 0, ffnDim > 0, vocabSize > 0 else {
            throw ModelError.badConfig("dimensions must be positive")
        }
        guard dim % heads == 0, heads % kvHeads == 0, headDim % 2 == 0 else {
            throw ModelError.badConfig("dim \(dim), heads \(heads), kv heads \(kvHeads) do not divide evenly")
        }
        guard dim % 32 == 0, ffnDim % 32 == 0 else {
            throw ModelError.badConfig("dim and ffn dim must be multiples of 32 (quantization blocks)")
        }
    }

    /// Parameters of the base model (tied head counted once).
    public var parameterCount: Int {
        vocabSize * dim + layerMatrixParameters + layers * 2 * dim + dim
    }

    /// Parameters of the layers' weight matrices (q, k, v, o, gate, up, down of every layer).
    public var layerMatrixParameters: Int {
        layers * (dim * dim * 2 + dim * (kvHeads * headDim) * 2 + 3 * dim * ffnDim)
    }
}

/// Errors raised while loading or running a model.
public enum ModelError: Error, CustomStringConvertible {
    case unsupportedArchitecture(String)
    case badConfig(String)
    /// 8-bit prompt activations asked of weights without the integer kernels (or in dense mode).
    case noIntegerPrompts(String)
    case badTensor(String, String)
    case contextOverflow(needed: Int, limit: Int)
    case invalidToken(Int32)
    case emptyInput

    public var description: String {
        switch self {
        case .unsupportedArchitecture(let a): return "architecture \"\(a)\" is not supported (Attune runs llama models)"
        case .badConfig(let why): return "bad model configuration: \(why)"
        case .noIntegerPrompts(let why): return "8-bit prompt activations are not available: \(why)"
        case .badTensor(let name, let why): return "tensor \(name): \(why)"
        case .contextOverflow(let needed, let limit): return "sequence of \(needed) tokens exceeds the context limit of \(limit)"
        case .invalidToken(let id): return "token id \(id) is outside the vocabulary"
        case .emptyInput: return "no tokens to process"
        }
    }
}
