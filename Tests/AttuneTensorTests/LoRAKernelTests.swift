import CAttuneKernels
import Testing
@testable import AttuneTensor

/// The half-precision LoRA kernel on every path this CPU can run: y += Bᵀᵀ·(s·A·x) computed in
/// double precision from the same half weights, within 1e-5 of Σ|terms| (fp32 rounding), on
/// shapes whose lengths are not multiples of the vector width (odd rank; outputs in groups of
/// 16, 8 and single ones; batches with a partial tile of 2 and 3 rows); each row the same bit for bit
/// alone or in a batch; and the same bits when the kernel loads another adapter's arrays meanwhile.
@Test(arguments: [[3, 75, 61, 6], [8, 600, 53, 3], [8, 576, 1536, 7]])
func halfPrecisionLoRAKernelMatchesItsProduct(shape: [Int]) {
    let (rank, inF, out, m) = (shape[0], shape[1], shape[2], shape[3])
    var rng = SplitMix(seed: 5)
    func value() -> Float { Float(rng.next() % 20001) / 10000 - 1 }
    let a = (0..<(rank * inF)).map { _ in floatToHalf(value() / 4) }
    let bt = (0..<(rank * out)).map { _ in floatToHalf(value() / 4) }
    let x = (0..<(m * inF)).map { _ in value() }
    let start = (0..<(m * out)).map { _ in value() }
    let scale: Float = 2
    for isa in KernelISA.runnable {
        var y = start
        attune_lora_f16(isa.c, a, bt, rank, inF, out, m, scale, x, &y, nil, 0)
        for i in 0..<m {
            let xa = (0..<rank).map { j in (0..<inF).reduce(0.0) { $0 + Double(halfToFloat(a[j * inF + $1])) * Double(x[i * inF + $1]) } }
            let shrinkMagnitude = (0..<rank).map { j in (0..<inF).reduce(0.0) { $0 + abs(Double(halfToFloat(a[j * inF + $1])) * Double(x[i * inF + $1])) } }
            for o in 0..<out {
                var exact = Double(start[i * out + o]), magnitude = abs(exact)
                for j in 0..<rank {
                    let w = Double(halfToFloat(bt[j * out + o]))
                    exact += w * Double(scale) * xa[j]
                    magnitude += abs(w) * Double(scale) * shrinkMagnitude[j]
                }
                #expect(abs(Double(y[i * out + o]) - exact) <= 1e-5 * magnitude, "\(isa) row \(i) output \(o): \(y[i * out + o]) vs \(exact)")
            }
        }
        for i in 0..<m {
            var alone = Array(start[(i * out)..<((i + 1) * out)])
            x.withUnsafeBufferPointer { xp in
                attune_lora_f16(isa.c, a, bt, rank, inF, out, 1, scale, xp.baseAddress! + i * inF, &alone, nil, 0)
            }
            #expect(alone == Array(y[(i * out)..<((i + 1) * out)]), "\(isa) row \(i) alone")
        }
        var loading = start
        attune_lora_f16(isa.c, a, bt, rank, inF, out, m, scale, x, &loading, bt, bt.count * 2)
        #expect(loading == y, "\(isa): loading the next arrays meanwhile changes nothing")
    }
}
