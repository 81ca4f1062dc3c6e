import AttuneGGUF
import AttuneRegistry
import AttuneTraining
import Foundation

/// The trainer state a version leaves behind — its replay memory and, for online EWC, the
/// Fisher estimate — stored on `attune.checkpoints` as safetensors: the Fisher as a tensor,
/// the rest as JSON metadata.
struct TrainerCheckpoint {
    var adapter: String
    var version: Int
    var replay: ReplayBuffer
    var fisher: [Float]?

    private struct Header: Codable {
        var adapter: String
        var version: Int
        var replay: ReplayBuffer
    }

    func encoded() throws -> [UInt8] {
        let header = String(decoding: try JSONEncoder.sorted.encode(Header(adapter: adapter, version: version, replay: replay)), as: UTF8.self)
        let tensors = fisher.map { ["fisher": SafeTensor(shape: [$0.count], values: $0)] } ?? [:]
        return Array(try Safetensors.encode(tensors, metadata: ["attune_checkpoint": header]))
    }

    static func decode(_ bytes: [UInt8]) throws -> TrainerCheckpoint {
        let (tensors, metadata) = try Safetensors.decode(Data(bytes))
        guard let json = metadata["attune_checkpoint"] else { throw TrainingError.badData("checkpoint without attune_checkpoint metadata") }
        let h = try JSONDecoder().decode(Header.self, from: Data(json.utf8))
        return TrainerCheckpoint(adapter: h.adapter, version: h.version, replay: h.replay, fisher: tensors["fisher"]?.values)
    }
}
