import AttuneModel
import Foundation

/// Hyperparameters of a LoRA adapter (the PEFT `LoraConfig` subset Attune trains).
public struct LoRAConfig: Codable, Sendable, Equatable {
    public var rank: Int
    public var alpha: Float
    public var dropout: Float
    /// rsLoRA: scale by α/√r instead of α/r.
    public var useRSLoRA: Bool
    public var targets: [LinearTarget]

    public init(rank: Int = 8, alpha: Float = 16, dropout: Float = 0, useRSLoRA: Bool = false,
                targets: [LinearTarget] = LinearTarget.allCases) {
        self.rank = rank
        self.alpha = alpha
        self.dropout = dropout
        self.useRSLoRA = useRSLoRA
        self.targets = targets
    }

    /// The factor applied to B·A.
    public var scale: Float { useRSLoRA ? alpha / Float(rank).squareRoot() : alpha / Float(rank) }

    public func validate() throws {
        guard rank > 0, rank <= 1024 else { throw TrainingError.invalid("LoRA rank must be in 1…1024, got \(rank)") }
        guard alpha > 0 else { throw TrainingError.invalid("LoRA alpha must be positive") }
        guard dropout >= 0, dropout < 1 else { throw TrainingError.invalid("LoRA dropout must be in [0, 1)") }
        guard !targets.isEmpty else { throw TrainingError.invalid("LoRA needs at least one target module") }
    }
}

/// Errors of the training stack.
public enum TrainingError: Error, CustomStringConvertible {
    case invalid(String)
    case badAdapter(String)
    case badData(String)
    case badCheckpoint(String)

    public var description: String {
        switch self {
        case .invalid(let s): return "invalid training configuration: \(s)"
        case .badAdapter(let s): return "adapter: \(s)"
        case .badData(let s): return "training data: \(s)"
        case .badCheckpoint(let s): return "checkpoint: \(s)"
        }
    }
}
