import AttuneGGUF
import AttuneModel
import AttuneRegistry
import AttuneTensor
import AttuneTraining
import Foundation

/// Where evicted tenants' memory waits (`--tenant-memory`): one safetensors file per tenant
/// under a folder of the worker's, holding the LoRA parameters and the EWC anchor and Fisher
/// as tensors, and the replay memory, gate memory, held-out examples and adapter layout as
/// JSON metadata; restored bit for bit. A state is evicted only between versions, when its
/// regularizer has consolidated (no observations pending).
struct TenantStateCache {
    let directory: URL

    private struct Header: Codable {
        var adapter: String
        var lora: LoRAConfig
        var blocks: [Int]
        var replay: ReplayBuffer
        var gate: GateMemory
        var heldOutToTrain: [TrainingExample]
        var regularizer: RegularizerHeader?
    }

    private struct RegularizerHeader: Codable {
        var kind: Regularizer.Kind
        var strength: Float
        var gamma: Float
    }

    /// A cache in `directory`, emptied: what an earlier process left there is not trusted (a
    /// restarted worker restores its tenants from `attune.adapters` and `attune.checkpoints`).
    init(directory: URL) throws {
        self.directory = directory
        try? FileManager.default.removeItem(at: directory)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    private func url(_ name: AdapterName) -> URL {
        directory.appendingPathComponent(Array(name.description.utf8).map { String(format: "%02x", $0) }.joined() + ".safetensors")
    }

    func save(_ memory: TrainWorker.AdapterMemory, of name: AdapterName) throws {
        let w = memory.weights
        var tensors = ["lora": SafeTensor(shape: [w.lora.parameterCount], values: w.lora.parameters.array)]
        if let r = w.regularizer {
            tensors["anchor"] = SafeTensor(shape: [r.anchor.count], values: r.anchor.array)
            tensors["fisher"] = SafeTensor(shape: [r.fisher.count], values: r.fisher.array)
        }
        let header = Header(adapter: name.description, lora: w.lora.config, blocks: w.blocks, replay: memory.replay, gate: memory.gate,
                            heldOutToTrain: memory.heldOutToTrain,
                            regularizer: w.regularizer.map { RegularizerHeader(kind: $0.kind, strength: $0.strength, gamma: $0.gamma) })
        let json = String(decoding: try JSONEncoder.sorted.encode(header), as: UTF8.self)
        let target = url(name), staging = target.appendingPathExtension("tmp")
        try Safetensors.encode(tensors, metadata: ["attune_tenant_state": json]).write(to: staging)
        guard rename(staging.path, target.path) == 0 else {
            throw TrainingError.badCheckpoint("cannot move \(staging.path) into place: errno \(errno)")
        }
    }

    /// The memory of `name` as it was saved; the file stays until `remove`.
    func load(_ name: AdapterName, model: LlamaConfig) throws -> TrainWorker.AdapterMemory {
        guard let data = FileManager.default.contents(atPath: url(name).path) else {
            throw TrainingError.badCheckpoint("no cached state for \(name) in \(directory.path)")
        }
        let (tensors, metadata) = try Safetensors.decode(data)
        guard let json = metadata["attune_tenant_state"] else { throw TrainingError.badCheckpoint("\(name): cached state without its header") }
        let h = try JSONDecoder().decode(Header.self, from: Data(json.utf8))
        let lora = try LoRAAdapter(config: h.lora, model: model, zeroed: ())
        guard h.adapter == name.description, let values = tensors["lora"]?.values, values.count == lora.parameterCount else {
            throw TrainingError.badCheckpoint("\(name): cached state does not match its adapter")
        }
        values.withUnsafeBufferPointer { lora.parameters.pointer.update(from: $0.baseAddress!, count: values.count) }
        var regularizer: Regularizer?
        if let r = h.regularizer {
            guard let anchor = tensors["anchor"]?.values, let fisher = tensors["fisher"]?.values,
                  anchor.count == values.count, fisher.count == values.count else {
                throw TrainingError.badCheckpoint("\(name): cached regularizer does not match its adapter")
            }
            let anchorBuffer = FloatBuffer(anchor.count)
            anchor.withUnsafeBufferPointer { anchorBuffer.pointer.update(from: $0.baseAddress!, count: anchor.count) }
            regularizer = Regularizer(kind: r.kind, strength: r.strength, anchor: anchorBuffer, fisher: fisher, gamma: r.gamma)
        }
        return TrainWorker.AdapterMemory(weights: AdapterWeights(lora: lora, blocks: h.blocks, regularizer: regularizer), replay: h.replay,
                                         gate: h.gate, heldOutToTrain: h.heldOutToTrain)
    }

    func remove(_ name: AdapterName) {
        try? FileManager.default.removeItem(at: url(name))
    }
}
