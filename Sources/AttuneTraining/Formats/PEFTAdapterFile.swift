import AttuneGGUF
import AttuneModel
import Foundation

/// LoRA adapters in the Hugging Face PEFT layout: a folder with `adapter_config.json` and
/// `adapter_model.safetensors` (keys `base_model.model.model.layers.N.self_attn.q_proj.lora_A.weight`, …).
///
/// GGUF stores the q/k projections with rows permuted for RoPE on adjacent pairs; Hugging Face
/// rotates halves. `lora_B` of q and k is permuted on save and restored on load, so the file
/// applies unchanged to the Hugging Face model.
public enum PEFTAdapterFile {
    public static let configName = "adapter_config.json"
    public static let weightsName = "adapter_model.safetensors"

    struct Config: Codable {
        var peft_type = "LORA"
        var task_type = "CAUSAL_LM"
        var base_model_name_or_path: String
        var r: Int
        var lora_alpha: Float
        var lora_dropout: Float
        var use_rslora: Bool
        var target_modules: [String]
        var bias = "none"
        var fan_in_fan_out = false
        var inference_mode = true
        var init_lora_weights = true
        var modules_to_save: [String]?
        var revision: String?
    }

    static func key(_ layer: Int, _ t: LinearTarget, _ factor: String) -> String {
        "base_model.model.model.layers.\(layer).\(t.peftPath).lora_\(factor).weight"
    }

    /// Writes `adapter` to `directory`, recording `baseModel` as its base.
    public static func save(_ adapter: LoRAAdapter, to directory: URL, baseModel: String, metadata: [String: String] = [:]) throws {
        let (config, weights) = try encode(adapter, baseModel: baseModel, metadata: metadata)
        try AdapterFolder.write([(configName, config), (weightsName, weights)], to: directory)
    }

    /// The two files of the PEFT folder, in memory (`adapter_config.json`, `adapter_model.safetensors`).
    public static func encode(_ adapter: LoRAAdapter, baseModel: String, metadata: [String: String] = [:]) throws -> (config: Data, weights: Data) {
        let c = adapter.config, m = adapter.model
        var tensors: [String: SafeTensor] = [:]
        for l in 0..<m.layers {
            for t in c.targets {
                let (out, inF) = t.shape(m)
                let a = Array(UnsafeBufferPointer(start: adapter.a(l, t), count: c.rank * inF))
                var b = Array(UnsafeBufferPointer(start: adapter.b(l, t), count: out * c.rank))
                if let heads = ropeHeads(t, m) { b = permuteRows(b, heads: heads, headDim: m.headDim, cols: c.rank, toHF: true) }
                tensors[key(l, t, "A")] = SafeTensor(shape: [c.rank, inF], values: a)
                tensors[key(l, t, "B")] = SafeTensor(shape: [out, c.rank], values: b)
            }
        }
        return (try configJSON(adapter, baseModel: baseModel), try Safetensors.encode(tensors, metadata: metadata.merging(["format": "pt"]) { a, _ in a }))
    }

    /// `adapter_config.json` of an adapter.
    public static func configJSON(_ adapter: LoRAAdapter, baseModel: String) throws -> Data {
        let c = adapter.config
        let config = Config(base_model_name_or_path: baseModel, r: c.rank, lora_alpha: c.alpha, lora_dropout: c.dropout,
                            use_rslora: c.useRSLoRA, target_modules: c.targets.map(\.peftName))
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try encoder.encode(config)
    }

    /// Reads an adapter folder for a base model with configuration `model`. Wrong shapes,
    /// missing keys, an unexpected base or a corrupt file are clear errors.
    public static func load(from directory: URL, model: LlamaConfig, expectedBase: String? = nil) throws -> LoRAAdapter {
        let configURL = directory.appendingPathComponent(configName)
        guard let configData = FileManager.default.contents(atPath: configURL.path) else {
            throw TrainingError.badAdapter("\(configURL.path) not found")
        }
        let weightsURL = directory.appendingPathComponent(weightsName)
        guard let data = FileManager.default.contents(atPath: weightsURL.path) else {
            throw TrainingError.badAdapter("\(weightsURL.path) not found")
        }
        return try decode(config: configData, weights: data, model: model, expectedBase: expectedBase)
    }

    /// A published adapter version is one safetensors file whose metadata carries its
    /// `adapter_config.json` (key `adapter_config`): the two files of its PEFT folder.
    public static func split(published bytes: Data) throws -> (config: Data, weights: Data) {
        (try publishedConfig(try Safetensors.adapterMetadata(bytes)), bytes)
    }

    /// Parses a published adapter version (see `split(published:)`), reading its tensors once.
    public static func decode(published bytes: Data, model: LlamaConfig) throws -> LoRAAdapter {
        let (tensors, metadata) = try Safetensors.decodeAdapter(bytes)
        return try decode(config: try publishedConfig(metadata), tensors: tensors, model: model)
    }

    private static func publishedConfig(_ metadata: [String: String]) throws -> Data {
        guard let config = metadata["adapter_config"] else {
            throw TrainingError.badAdapter("published adapter without adapter_config metadata")
        }
        return Data(config.utf8)
    }

    /// Parses the two files of a PEFT folder held in memory.
    public static func decode(config configData: Data, weights data: Data, model: LlamaConfig, expectedBase: String? = nil) throws -> LoRAAdapter {
        try decode(config: configData, tensors: try Safetensors.decodeAdapter(data).tensors, model: model, expectedBase: expectedBase)
    }

    private static func decode(config configData: Data, tensors: [String: SafeTensor], model: LlamaConfig,
                               expectedBase: String? = nil) throws -> LoRAAdapter {
        let config: Config
        do {
            config = try JSONDecoder().decode(Config.self, from: configData)
        } catch {
            throw TrainingError.badAdapter("adapter_config.json is not a PEFT LoRA config: \(error)")
        }
        guard config.peft_type == "LORA" else { throw TrainingError.badAdapter("peft_type \(config.peft_type) is not supported (LORA only)") }
        if let expectedBase, config.base_model_name_or_path != expectedBase {
            throw TrainingError.badAdapter("adapter was trained on \"\(config.base_model_name_or_path)\", not \"\(expectedBase)\"")
        }
        let targets = try config.target_modules.map { name -> LinearTarget in
            guard let t = LinearTarget(peftName: name) else { throw TrainingError.badAdapter("unknown target module \(name)") }
            return t
        }
        let lora = LoRAConfig(rank: config.r, alpha: config.lora_alpha, dropout: config.lora_dropout,
                              useRSLoRA: config.use_rslora, targets: targets)
        let adapter = try LoRAAdapter(config: lora, model: model, zeroed: ())
        for l in 0..<model.layers {
            for t in targets {
                let (out, inF) = t.shape(model)
                for (factor, shape, dst) in [("A", [lora.rank, inF], adapter.a(l, t)), ("B", [out, lora.rank], adapter.b(l, t))] {
                    let k = key(l, t, factor)
                    guard let tensor = tensors[k] else { throw TrainingError.badAdapter("missing tensor \(k)") }
                    guard tensor.shape == shape else {
                        throw TrainingError.badAdapter("tensor \(k) has shape \(tensor.shape), the base model needs \(shape)")
                    }
                    var values = tensor.values
                    if factor == "B", let heads = ropeHeads(t, model) {
                        values = permuteRows(values, heads: heads, headDim: model.headDim, cols: lora.rank, toHF: false)
                    }
                    values.withUnsafeBufferPointer { dst.update(from: $0.baseAddress!, count: values.count) }
                }
            }
        }
        return adapter
    }

    /// Heads of a projection whose output rows GGUF permutes (q and k).
    static func ropeHeads(_ t: LinearTarget, _ m: LlamaConfig) -> Int? {
        switch t {
        case .q: return m.heads
        case .k: return m.kvHeads
        default: return nil
        }
    }

    /// Within each head, Hugging Face row `half·hd/2 + i` is GGUF row `2i + half`.
    static func permuteRows(_ w: [Float], heads: Int, headDim: Int, cols: Int, toHF: Bool) -> [Float] {
        var out = w
        let half = headDim / 2
        for h in 0..<heads {
            for part in 0..<2 {
                for i in 0..<half {
                    let hf = h * headDim + part * half + i
                    let gguf = h * headDim + 2 * i + part
                    let (src, dst) = toHF ? (gguf, hf) : (hf, gguf)
                    for c in 0..<cols { out[dst * cols + c] = w[src * cols + c] }
                }
            }
        }
        return out
    }
}

extension Safetensors {
    /// `decode` for adapter and checkpoint files: a malformed image is a `TrainingError.badAdapter`.
    static func decodeAdapter(_ data: Data) throws -> (tensors: [String: SafeTensor], metadata: [String: String]) {
        try asAdapterError { try decode(data) }
    }

    /// `metadata` for adapter files, with `decodeAdapter`'s errors.
    static func adapterMetadata(_ data: Data) throws -> [String: String] {
        try asAdapterError { try metadata(data) }
    }

    private static func asAdapterError<T>(_ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let error as SafetensorsError {
            throw TrainingError.badAdapter(error.reason)
        }
    }
}
