import AttuneModel
import AttuneTensor
import AttuneTraining
import CAttuneKernels

/// A LoRA adapter as a server holds it: A and Bᵀ of every projection in IEEE half precision.
/// It takes half the memory of the fp32 weights, and a decode step — which reads every tenant
/// adapter of the batch once, a memory-bound walk — reads half the bytes. Rounding to half
/// moves each weight by at most 2⁻¹¹ of its magnitude (LoRA weights are far inside fp16's
/// range), so a projection's term moves by at most about 2⁻¹⁰ of Σ|terms|; the base model's
/// products, which dominate each output, are untouched.
final class HalfPrecisionLoRA: LinearAdapter, @unchecked Sendable {
    /// Bytes of the half-precision weights.
    let byteCount: Int
    private let rank: Int
    private let scale: Float
    private let model: LlamaConfig
    private let weights: UnsafeMutablePointer<UInt16>
    /// Where A and Bᵀ of each (layer, target) start, indexed by `LoRAAdapter.key`; nil where the
    /// adapter has no term.
    private let offsets: [(a: Int, bt: Int, out: Int, in: Int)?]
    private let isa = attune_isa(rawValue: UInt32(KernelISA.active.rawValue))

    init(_ lora: LoRAAdapter) {
        rank = lora.config.rank
        scale = lora.config.scale
        model = lora.model
        var table = [(a: Int, bt: Int, out: Int, in: Int)?](repeating: nil, count: model.layers * 8)
        var total = 0
        for l in 0..<model.layers {
            for t in LinearTarget.allCases where lora.has(t) {
                let (out, inF) = t.shape(model)
                table[LoRAAdapter.key(l, t)] = (total, total + rank * inF, out, inF)
                total += rank * (inF + out)
            }
        }
        offsets = table
        byteCount = total * 2
        weights = .allocate(capacity: max(total, 1))
        for l in 0..<model.layers {
            for t in LinearTarget.allCases {
                guard let o = table[LoRAAdapter.key(l, t)] else { continue }
                let a = lora.a(l, t), b = lora.b(l, t)
                for i in 0..<(rank * o.in) { weights[o.a + i] = floatToHalf(a[i]) }
                for j in 0..<rank {
                    for r in 0..<o.out { weights[o.bt + j * o.out + r] = floatToHalf(b[r * rank + j]) }
                }
            }
        }
    }

    deinit { weights.deallocate() }

    func addDelta(layer: Int, target: LinearTarget, x: UnsafePointer<Float>, m: Int, y: UnsafeMutablePointer<Float>) {
        addDelta(layer: layer, target: target, x: x, m: m, y: y, loading: nil)
    }

    /// Where A and Bᵀ of `target` of `layer` lie (one contiguous range), or nil where the
    /// adapter has no term.
    func weights(layer: Int, target: LinearTarget) -> (UnsafeRawPointer?, Int) {
        guard let n = offsets[LoRAAdapter.key(layer, target)] else { return (nil, 0) }
        return (UnsafeRawPointer(weights + n.a), 2 * rank * (n.in + n.out))
    }

    /// `addDelta`, asking the caches for `next`'s weights of the same projection meanwhile: a
    /// server walks the tenants of a batch one after another, and each walk step's weights are
    /// then on their way before it starts (a hint; the result is the same).
    func addDelta(layer: Int, target: LinearTarget, x: UnsafePointer<Float>, m: Int, y: UnsafeMutablePointer<Float>,
                  loading next: Unmanaged<HalfPrecisionLoRA>?) {
        let key = LoRAAdapter.key(layer, target)
        guard let o = offsets[key] else { return }
        let (ahead, aheadBytes) = next?._withUnsafeGuaranteedRef { $0.weights(layer: layer, target: target) } ?? (nil, 0)
        attune_lora_f16(isa, weights + o.a, weights + o.bt, rank, o.in, o.out, m, scale, x, y, ahead, aheadBytes)
    }
}
