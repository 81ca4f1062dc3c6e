import AttuneModel
import AttuneTensor
import AttuneTraining
import CAttuneKernels

/// How a server holds its loaded adapters' weights (`attune serve --adapter-precision`).
public enum AdapterPrecision: String, Sendable, CaseIterable {
    /// 8-bit integers with one fp32 scale per row of A and of Bᵀ: a quarter of fp32's bytes.
    case int8
    /// IEEE half precision: half of fp32's bytes.
    case half
}

/// A LoRA adapter as a server holds it: A and Bᵀ of every projection in 8-bit integers with one
/// scale per row, or in IEEE half precision. A decode step reads every tenant adapter of its
/// batch once — a memory-bound walk — so the bytes per weight set its pace
/// (`ops/bench/lora_terms.sh`), and the same cache budget holds two (half) or four (int8) times
/// the adapters fp32 would.
///
/// Error bounds (the base model's products, which dominate each output, are untouched):
/// - half: each weight moves by at most 2⁻¹¹ of its magnitude (LoRA weights are far inside
///   fp16's range), so a term moves by at most about 2⁻¹⁰ of Σ|terms|;
/// - int8: each weight moves by at most half its row's step, max|row| / 254, so output o moves
///   by at most s·Σ_r (|B[o,r]|·δA_r·Σ|x| + δB_r·(|A_r|·|x| + δA_r·Σ|x|)) with δ half a step.
final class ServingLoRA: LinearAdapter, @unchecked Sendable {
    /// Where one projection's arrays lie in `storage`, in bytes: A, Bᵀ, then (int8) the rows'
    /// scales of A and of Bᵀ.
    private struct Placement {
        let start: Int, bt: Int, scales: Int, end: Int
        let out: Int, inFeatures: Int
    }

    let precision: AdapterPrecision
    /// Bytes of the weights (and their scales).
    let byteCount: Int
    private let rank: Int
    private let scale: Float
    private let storage: UnsafeMutableRawPointer
    /// Each (layer, target)'s arrays, indexed by `LoRAAdapter.key`; nil where the adapter has no term.
    private let placements: [Placement?]
    private let isa = attune_isa(rawValue: UInt32(KernelISA.active.rawValue))

    init(_ lora: LoRAAdapter, precision: AdapterPrecision) {
        self.precision = precision
        rank = lora.config.rank
        scale = lora.config.scale
        let model = lora.model
        let width = precision == .int8 ? 1 : 2
        var table = [Placement?](repeating: nil, count: model.layers * 8)
        var total = 0
        for l in 0..<model.layers {
            for t in LinearTarget.allCases where lora.has(t) {
                let (out, inF) = t.shape(model)
                let bt = total + width * rank * inF
                // int8 scales start on a 4-byte boundary.
                let scales = precision == .int8 ? (bt + rank * out + 3) & ~3 : bt + 2 * rank * out
                let end = precision == .int8 ? scales + 2 * rank * 4 : scales
                table[LoRAAdapter.key(l, t)] = Placement(start: total, bt: bt, scales: scales, end: end, out: out, inFeatures: inF)
                total = end
            }
        }
        placements = table
        byteCount = total
        storage = .allocate(byteCount: max(total, 1), alignment: 64)
        for l in 0..<model.layers {
            for t in LinearTarget.allCases {
                guard let p = table[LoRAAdapter.key(l, t)] else { continue }
                let a = lora.a(l, t), b = lora.b(l, t), r = rank
                let rowOfA = { (j: Int, k: Int) in a[j * p.inFeatures + k] }
                let rowOfBT = { (j: Int, o: Int) in b[o * r + j] }
                switch precision {
                case .half:
                    let aHalf = (storage + p.start).assumingMemoryBound(to: UInt16.self)
                    let btHalf = (storage + p.bt).assumingMemoryBound(to: UInt16.self)
                    for j in 0..<r {
                        for k in 0..<p.inFeatures { aHalf[j * p.inFeatures + k] = floatToHalf(rowOfA(j, k)) }
                        for o in 0..<p.out { btHalf[j * p.out + o] = floatToHalf(rowOfBT(j, o)) }
                    }
                case .int8:
                    let scales = (storage + p.scales).assumingMemoryBound(to: Float.self)
                    for j in 0..<r {
                        scales[j] = Self.quantize((storage + p.start).assumingMemoryBound(to: Int8.self) + j * p.inFeatures,
                                                  count: p.inFeatures) { rowOfA(j, $0) }
                        scales[r + j] = Self.quantize((storage + p.bt).assumingMemoryBound(to: Int8.self) + j * p.out,
                                                      count: p.out) { rowOfBT(j, $0) }
                    }
                }
            }
        }
    }

    deinit { storage.deallocate() }

    /// Rounds one row to integers in ±127 (a step of max|row| / 127) and returns the step.
    private static func quantize(_ q: UnsafeMutablePointer<Int8>, count: Int, _ value: (Int) -> Float) -> Float {
        var largest: Float = 0
        for i in 0..<count { largest = max(largest, abs(value(i))) }
        let inverse = largest > 0 ? 127 / largest : 0
        for i in 0..<count { q[i] = Int8(max(-127, min(127, (value(i) * inverse).rounded()))) }
        return largest / 127
    }

    func addDelta(layer: Int, target: LinearTarget, x: UnsafePointer<Float>, m: Int, y: UnsafeMutablePointer<Float>) {
        addDelta(layer: layer, target: target, x: x, m: m, y: y, loading: nil)
    }

    /// Where the arrays of `target` of `layer` lie (one contiguous range), or nil where the
    /// adapter has no term.
    func weights(layer: Int, target: LinearTarget) -> (UnsafeRawPointer?, Int) {
        guard let p = placements[LoRAAdapter.key(layer, target)] else { return (nil, 0) }
        return (UnsafeRawPointer(storage + p.start), p.end - p.start)
    }

    /// `addDelta`, asking the caches for `next`'s weights of the same projection meanwhile: a
    /// server walks the tenants of a batch one after another, and each walk step's weights are
    /// then on their way before it starts (a hint; the result is the same).
    func addDelta(layer: Int, target: LinearTarget, x: UnsafePointer<Float>, m: Int, y: UnsafeMutablePointer<Float>,
                  loading next: Unmanaged<ServingLoRA>?) {
        guard let p = placements[LoRAAdapter.key(layer, target)] else { return }
        let (ahead, aheadBytes) = next?._withUnsafeGuaranteedRef { $0.weights(layer: layer, target: target) } ?? (nil, 0)
        switch precision {
        case .half:
            attune_lora_f16(isa, (storage + p.start).assumingMemoryBound(to: UInt16.self),
                            (storage + p.bt).assumingMemoryBound(to: UInt16.self), rank, p.inFeatures, p.out, m, scale,
                            x, y, ahead, aheadBytes)
        case .int8:
            let scales = (storage + p.scales).assumingMemoryBound(to: Float.self)
            attune_lora_q8(isa, (storage + p.start).assumingMemoryBound(to: Int8.self), scales,
                           (storage + p.bt).assumingMemoryBound(to: Int8.self), scales + rank, rank, p.inFeatures, p.out,
                           m, scale, x, y, ahead, aheadBytes)
        }
    }
}
