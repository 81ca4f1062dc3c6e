import CAttuneKernels
import Testing
@testable import AttuneTensor

/// A server's LoRA kernels (half-precision weights, and 8-bit weights with a scale per row) on
/// every path this CPU can run: y += Bᵀᵀ·(s·A·x) computed in double precision from the same
/// stored weights, within 1e-5 of Σ|terms| (fp32 rounding), on shapes whose lengths are not
/// multiples of the vector width (odd rank, so rank rows run both four and one at a time;
/// outputs in groups of 64, 16, 8 and single ones; batches with a partial tile of 2 and 3
/// rows); each row the same bit for bit alone or in a batch; and the same bits when the kernel
/// loads another adapter's arrays meanwhile.
@Test(arguments: [false, true], [[3, 75, 61, 6], [8, 600, 53, 3], [8, 576, 1536, 7], [5, 96, 200, 1]])
func servingLoRAKernelMatchesItsProduct(eightBit: Bool, shape: [Int]) {
    let (rank, inF, out, m) = (shape[0], shape[1], shape[2], shape[3])
    var rng = SplitMix(seed: 5)
    func value() -> Float { Float(rng.next() % 20001) / 10000 - 1 }
    // Stored weights: half bits, or bytes with a step per row (A's rows, then Bᵀ's).
    let aHalf = (0..<(rank * inF)).map { _ in floatToHalf(value() / 4) }
    let btHalf = (0..<(rank * out)).map { _ in floatToHalf(value() / 4) }
    let aBytes = (0..<(rank * inF)).map { _ in Int8(Int(rng.next() % 255) - 127) }
    let btBytes = (0..<(rank * out)).map { _ in Int8(Int(rng.next() % 255) - 127) }
    let steps = (0..<(2 * rank)).map { _ in (abs(value()) + 0.1) / 400 }
    func aValue(_ j: Int, _ k: Int) -> Double {
        eightBit ? Double(aBytes[j * inF + k]) * Double(steps[j]) : Double(halfToFloat(aHalf[j * inF + k]))
    }
    func btValue(_ j: Int, _ o: Int) -> Double {
        eightBit ? Double(btBytes[j * out + o]) * Double(steps[rank + j]) : Double(halfToFloat(btHalf[j * out + o]))
    }
    let x = (0..<(m * inF)).map { _ in value() }
    let start = (0..<(m * out)).map { _ in value() }
    let scale: Float = 2
    func run(_ isa: KernelISA, _ x: UnsafePointer<Float>, _ rows: Int, _ y: UnsafeMutablePointer<Float>, loading: Bool) {
        if eightBit {
            steps.withUnsafeBufferPointer { s in
                attune_lora_q8(isa.c, aBytes, s.baseAddress!, btBytes, s.baseAddress! + rank, rank, inF, out, rows, scale, x, y,
                               loading ? btBytes : nil, loading ? btBytes.count : 0)
            }
        } else {
            attune_lora_f16(isa.c, aHalf, btHalf, rank, inF, out, rows, scale, x, y, loading ? btHalf : nil,
                            loading ? btHalf.count * 2 : 0)
        }
    }
    for isa in KernelISA.runnable {
        var y = start
        run(isa, x, m, &y, loading: false)
        for i in 0..<m {
            let xa = (0..<rank).map { j in (0..<inF).reduce(0.0) { $0 + aValue(j, $1) * Double(x[i * inF + $1]) } }
            let shrinkMagnitude = (0..<rank).map { j in (0..<inF).reduce(0.0) { $0 + abs(aValue(j, $1) * Double(x[i * inF + $1])) } }
            for o in 0..<out {
                var exact = Double(start[i * out + o]), magnitude = abs(exact)
                for j in 0..<rank {
                    exact += btValue(j, o) * Double(scale) * xa[j]
                    magnitude += abs(btValue(j, o)) * Double(scale) * shrinkMagnitude[j]
                }
                #expect(abs(Double(y[i * out + o]) - exact) <= 1e-5 * magnitude, "\(isa) row \(i) output \(o): \(y[i * out + o]) vs \(exact)")
            }
        }
        for i in 0..<m {
            var alone = Array(start[(i * out)..<((i + 1) * out)])
            x.withUnsafeBufferPointer { run(isa, $0.baseAddress! + i * inF, 1, &alone, loading: false) }
            #expect(alone == Array(y[(i * out)..<((i + 1) * out)]), "\(isa) row \(i) alone")
        }
        var loading = start
        run(isa, x, m, &loading, loading: true)
        #expect(loading == y, "\(isa): loading the next arrays meanwhile changes nothing")
        #expect(y != start, "\(isa): the terms add something")
    }
}
