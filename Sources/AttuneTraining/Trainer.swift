import AttuneGGUF
import AttuneModel
import AttuneTensor
import Foundation

/// How a fine-tuning run is driven.
public struct TrainerConfig: Codable, Sendable, Equatable {
    public var steps: Int
    public var batchSize: Int
    public var gradientAccumulation: Int
    public var optimizer: AdamWConfig
    public var schedule: LRSchedule.Kind
    public var warmupSteps: Int
    public var seed: UInt64

    public init(steps: Int = 100, batchSize: Int = 8, gradientAccumulation: Int = 1, optimizer: AdamWConfig = AdamWConfig(),
                schedule: LRSchedule.Kind = .cosine, warmupSteps: Int = 10, seed: UInt64 = 0) {
        self.steps = steps
        self.batchSize = batchSize
        self.gradientAccumulation = gradientAccumulation
        self.optimizer = optimizer
        self.schedule = schedule
        self.warmupSteps = warmupSteps
        self.seed = seed
    }

    public func validate() throws {
        guard steps > 0, batchSize > 0, gradientAccumulation > 0 else {
            throw TrainingError.invalid("steps, batch size and gradient accumulation must be positive")
        }
        guard optimizer.learningRate > 0, optimizer.learningRate < 1 else { throw TrainingError.invalid("learning rate must be in (0, 1)") }
        guard warmupSteps >= 0 else { throw TrainingError.invalid("warmup steps must be ≥ 0") }
    }
}

/// What one optimizer step did.
public struct StepReport: Sendable {
    public var step: Int
    public var totalSteps: Int
    public var loss: Double
    public var learningRate: Float
    public var gradientNorm: Float
    public var tokens: Int
    public var seconds: Double
}

/// Runs AdamW over a packed dataset: shuffled rows (seeded), gradient accumulation, warmup +
/// cosine/constant schedule, clipping; checkpoints hold parameters, optimizer moments and RNG
/// state so a resumed run continues bit for bit.
public final class Trainer: @unchecked Sendable {
    public let model: TrainableLlama
    public let data: PackedDataset
    public let config: TrainerConfig
    public let optimizer: AdamW
    public let schedule: LRSchedule
    /// Optional penalty toward earlier parameters (L2-SP or online EWC), added to every step.
    public var regularizer: Regularizer?
    /// Optional 0/1 per parameter: where 0 the parameter is frozen (e.g. earlier adapter blocks).
    public var trainableMask: FloatBuffer?
    private var order: [Int] = []
    private var cursor = 0
    private var shuffler: SeededGenerator

    public init(model: TrainableLlama, data: PackedDataset, config: TrainerConfig) throws {
        try config.validate()
        guard !data.rows.isEmpty else { throw TrainingError.badData("no training rows (is the data empty?)") }
        self.model = model
        self.data = data
        self.config = config
        optimizer = AdamW(config: config.optimizer, parameterCount: model.parameters.count)
        schedule = LRSchedule(kind: config.schedule, peak: config.optimizer.learningRate, warmupSteps: config.warmupSteps,
                              totalSteps: config.steps)
        shuffler = SeededGenerator(seed: config.seed)
    }

    public var step: Int { optimizer.step }

    private func nextRows(_ n: Int) -> [Int] {
        var out: [Int] = []
        while out.count < n {
            if cursor >= order.count {
                order = Array(data.rows.indices).shuffled(using: &shuffler)
                cursor = 0
            }
            out.append(order[cursor])
            cursor += 1
        }
        return out
    }

    /// One optimizer step over `batchSize × gradientAccumulation` rows.
    public func trainStep() -> StepReport {
        let start = ContinuousClock.now
        let micro = (0..<config.gradientAccumulation).map { _ in data.batch(nextRows(config.batchSize)) }
        let count = micro.reduce(0) { $0 + $1.lossPositions }
        model.gradients.zero()
        var loss = 0.0
        for b in micro { loss += model.step(b, backward: true, normalizer: Float(max(count, 1))).loss }
        if let regularizer {
            regularizer.observe(dataGradients: model.gradients)
            regularizer.addGradient(model.parameters, into: model.gradients)
        }
        if let mask = trainableMask {
            let g = model.gradients.pointer, k = mask.pointer
            for i in 0..<model.gradients.count { g[i] *= k[i] }
        }
        let lr = schedule.rate(at: optimizer.step + 1)
        let gnorm = optimizer.update(model.parameters, model.gradients, lr: lr, mask: trainableMask)
        return StepReport(step: optimizer.step, totalSteps: config.steps, loss: loss / Double(max(count, 1)), learningRate: lr,
                          gradientNorm: gnorm, tokens: micro.reduce(0) { $0 + $1.tokens.count },
                          seconds: (ContinuousClock.now - start).seconds)
    }

    /// Runs until `config.steps`, reporting each step.
    public func run(_ report: (StepReport) -> Void = { _ in }) {
        while optimizer.step < config.steps { report(trainStep()) }
    }

    /// Mean loss and perplexity of `dataset` (no dropout, no gradients).
    public static func evaluate(_ model: TrainableLlama, _ dataset: PackedDataset, batchSize: Int = 8) -> (loss: Double, perplexity: Double) {
        var total = 0.0, count = 0
        var i = 0
        while i < dataset.rows.count {
            let idx = Array(i..<min(dataset.rows.count, i + batchSize))
            let r = model.step(dataset.batch(idx), backward: false, training: false)
            total += r.loss
            count += r.count
            i += batchSize
        }
        let mean = count > 0 ? total / Double(count) : 0
        return (mean, exp(mean))
    }

    // MARK: Checkpoints

    /// The trainable adapter's kind and configuration, as recorded in checkpoints.
    static func adapterDescription(_ model: TrainableLlama) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        if let lora = model.lora { return "lora " + String(decoding: try encoder.encode(lora.config), as: UTF8.self) }
        return "bottleneck " + String(decoding: try encoder.encode(model.bottleneck!.config), as: UTF8.self)
    }

    /// Writes parameters, Adam moments, step, data order and RNG state.
    public func saveCheckpoint(to url: URL) throws {
        let n = model.parameters.count
        let meta: [String: String] = [
            "step": "\(optimizer.step)", "cursor": "\(cursor)",
            "order": order.map(String.init).joined(separator: ","),
            "shuffler": shuffler.state.map(String.init).joined(separator: ","),
            "dropout_rng": model.rngState.map(String.init).joined(separator: ","),
            "config": String(decoding: try JSONEncoder().encode(config), as: UTF8.self),
            "adapter": try Self.adapterDescription(model),
        ]
        let tensors = [
            "parameters": SafeTensor(shape: [n], values: model.parameters.array),
            "adam_m": SafeTensor(shape: [n], values: optimizer.m.array),
            "adam_v": SafeTensor(shape: [n], values: optimizer.v.array),
        ]
        let tmp = url.appendingPathExtension("tmp")
        try Safetensors.encode(tensors, metadata: meta).write(to: tmp)
        _ = try? FileManager.default.removeItem(at: url)
        try FileManager.default.moveItem(at: tmp, to: url)
    }

    /// Restores a checkpoint written by `saveCheckpoint` for the same adapter configuration.
    public func loadCheckpoint(from url: URL) throws {
        guard let data = FileManager.default.contents(atPath: url.path) else { throw TrainingError.badCheckpoint("\(url.path) not found") }
        let (tensors, meta) = try Safetensors.decodeAdapter(data)
        let n = model.parameters.count
        guard meta["adapter"] == (try Self.adapterDescription(model)) else {
            throw TrainingError.badCheckpoint("checkpoint was written for a different adapter configuration")
        }
        guard let p = tensors["parameters"], let m = tensors["adam_m"], let v = tensors["adam_v"],
              p.values.count == n, m.values.count == n, v.values.count == n,
              let step = meta["step"].flatMap(Int.init), let cur = meta["cursor"].flatMap(Int.init) else {
            throw TrainingError.badCheckpoint("checkpoint is missing tensors or fields")
        }
        func ints(_ key: String) -> [UInt64] { (meta[key] ?? "").split(separator: ",").compactMap { UInt64($0) } }
        let shufflerState = ints("shuffler"), dropoutState = ints("dropout_rng")
        guard shufflerState.count == 4, dropoutState.count == 4 else { throw TrainingError.badCheckpoint("RNG state missing") }
        p.values.withUnsafeBufferPointer { model.parameters.pointer.update(from: $0.baseAddress!, count: n) }
        m.values.withUnsafeBufferPointer { optimizer.m.pointer.update(from: $0.baseAddress!, count: n) }
        v.values.withUnsafeBufferPointer { optimizer.v.pointer.update(from: $0.baseAddress!, count: n) }
        optimizer.step = step
        order = ints("order").map { Int($0) }
        cursor = cur
        shuffler.state = shufflerState
        model.rngState = dropoutState
    }
}
