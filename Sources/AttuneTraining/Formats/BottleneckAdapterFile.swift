import AttuneGGUF
import AttuneModel
import Foundation

/// Bottleneck adapters on disk, laid out like a PEFT folder: `adapter_config.json` with
/// `"peft_type": "BOTTLENECK"` and `adapter_model.safetensors` with keys
/// `model.layers.N.{attention,mlp}_adapter.{down,up}.{weight,bias}` (weights [out, in]).
public enum BottleneckAdapterFile {
    struct Config: Codable {
        var peft_type = "BOTTLENECK"
        var base_model_name_or_path: String
        var bottleneck_size: Int
        var placements: [String]
        var activation: String
    }

    static func key(_ l: Int, _ p: BottleneckConfig.Placement, _ part: String) -> String {
        "model.layers.\(l).\(p.rawValue)_adapter.\(part)"
    }

    public static func save(_ adapter: BottleneckAdapter, to directory: URL, baseModel: String) throws {
        let m = adapter.config.size, d = adapter.model.dim
        var tensors: [String: SafeTensor] = [:]
        for l in 0..<adapter.model.layers {
            for p in adapter.config.placements {
                let w = adapter.weights(l, p)
                tensors[key(l, p, "down.weight")] = SafeTensor(shape: [m, d], values: Array(UnsafeBufferPointer(start: w.down, count: m * d)))
                tensors[key(l, p, "down.bias")] = SafeTensor(shape: [m], values: Array(UnsafeBufferPointer(start: w.downBias, count: m)))
                tensors[key(l, p, "up.weight")] = SafeTensor(shape: [d, m], values: Array(UnsafeBufferPointer(start: w.up, count: d * m)))
                tensors[key(l, p, "up.bias")] = SafeTensor(shape: [d], values: Array(UnsafeBufferPointer(start: w.upBias, count: d)))
            }
        }
        let config = Config(base_model_name_or_path: baseModel, bottleneck_size: m,
                            placements: adapter.config.placements.map(\.rawValue), activation: adapter.config.activation.rawValue)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try AdapterFolder.write([(PEFTAdapterFile.configName, try encoder.encode(config)),
                                 (PEFTAdapterFile.weightsName, try Safetensors.encode(tensors))], to: directory)
    }

    public static func load(from directory: URL, model: LlamaConfig) throws -> BottleneckAdapter {
        let data = try Data(contentsOf: directory.appendingPathComponent(PEFTAdapterFile.configName))
        guard let config = try? JSONDecoder().decode(Config.self, from: data), config.peft_type == "BOTTLENECK" else {
            throw TrainingError.badAdapter("\(directory.path) is not a bottleneck adapter")
        }
        let placements = try config.placements.map { name -> BottleneckConfig.Placement in
            guard let p = BottleneckConfig.Placement(rawValue: name) else { throw TrainingError.badAdapter("unknown placement \(name)") }
            return p
        }
        guard let activation = BottleneckConfig.Activation(rawValue: config.activation) else {
            throw TrainingError.badAdapter("unknown activation \(config.activation)")
        }
        let adapter = try BottleneckAdapter(config: BottleneckConfig(size: config.bottleneck_size, placements: placements, activation: activation),
                                            model: model)
        let (tensors, _) = try Safetensors.decodeAdapter(try Data(contentsOf: directory.appendingPathComponent(PEFTAdapterFile.weightsName)))
        let m = config.bottleneck_size, d = model.dim
        for l in 0..<model.layers {
            for p in placements {
                let w = adapter.weights(l, p)
                for (part, shape, dst) in [("down.weight", [m, d], w.down), ("down.bias", [m], w.downBias),
                                           ("up.weight", [d, m], w.up), ("up.bias", [d], w.upBias)] {
                    let k = key(l, p, part)
                    guard let t = tensors[k] else { throw TrainingError.badAdapter("missing tensor \(k)") }
                    guard t.shape == shape else { throw TrainingError.badAdapter("tensor \(k) has shape \(t.shape), expected \(shape)") }
                    t.values.withUnsafeBufferPointer { dst.update(from: $0.baseAddress!, count: t.values.count) }
                }
            }
        }
        return adapter
    }
}

/// Loads any adapter folder Attune writes (PEFT LoRA or bottleneck), by its `peft_type`.
public enum AdapterFiles {
    public static func load(from directory: URL, model: LlamaConfig) throws -> any LinearAdapter {
        let url = directory.appendingPathComponent(PEFTAdapterFile.configName)
        guard let data = FileManager.default.contents(atPath: url.path),
              let obj = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw TrainingError.badAdapter("\(url.path) is missing or not JSON")
        }
        switch obj["peft_type"] as? String {
        case "LORA": return try PEFTAdapterFile.load(from: directory, model: model)
        case "BOTTLENECK": return try BottleneckAdapterFile.load(from: directory, model: model)
        case let other: throw TrainingError.badAdapter("adapter type \(other ?? "missing") is not supported (LORA, BOTTLENECK)")
        }
    }
}
