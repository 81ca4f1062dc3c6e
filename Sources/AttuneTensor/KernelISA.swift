import CAttuneKernels
import Foundation

/// Instruction-set level of the integer kernels, detected once from the CPU at run time, so one
/// binary uses AVX-512 VNNI where it exists and AVX2 elsewhere.
public enum KernelISA: Int, Sendable, CaseIterable, Comparable, CustomStringConvertible {
    case scalar = 0
    case avx2 = 1
    case avx512vnni = 2

    /// The best level this CPU supports.
    public static let detected = KernelISA(rawValue: Int(attune_cpu_isa().rawValue)) ?? .scalar

    /// The level in use: `detected`, or lower when `ATTUNE_ISA` (scalar, avx2, avx512vnni)
    /// asks for it, e.g. to measure the AVX2 path on an AVX-512 machine. An unknown name is
    /// reported on stderr and ignored.
    public static let active: KernelISA = {
        guard let name = ProcessInfo.processInfo.environment["ATTUNE_ISA"], !name.isEmpty else { return detected }
        guard let wanted = allCases.first(where: { $0.description == name.lowercased() }) else {
            let known = allCases.map(\.description).joined(separator: ", ")
            FileHandle.standardError.write(Data("attune: ATTUNE_ISA=\(name) is not one of \(known); using \(detected)\n".utf8))
            return detected
        }
        return min(wanted, detected)
    }()

    /// Whether this CPU executes each 512-bit operation as two 256-bit halves (AMD Zen 4), so
    /// its AVX-512 kernels gain no arithmetic width and prefer the AVX2 path's batch forms.
    public static let splits512BitOperations = attune_cpu_splits_512() != 0

    /// Every level this machine can run, for tests.
    public static var runnable: [KernelISA] { allCases.filter { $0 <= detected } }

    public var description: String {
        switch self {
        case .scalar: return "scalar"
        case .avx2: return "avx2"
        case .avx512vnni: return "avx512vnni"
        }
    }

    public static func < (a: KernelISA, b: KernelISA) -> Bool { a.rawValue < b.rawValue }

    var c: attune_isa { attune_isa(rawValue: UInt32(rawValue)) }
}

/// Rows of a matrix quantized to 8 bits per element in blocks of 32 (one fp32 scale each,
/// plus each block's exact fp32 sum and its bytes' sum): the input side of the integer matrix
/// kernels.
///
/// Error bound: each element moves by at most half a step (scale / 2 = max|x_block| / 254), so
/// a dot product with w moves by at most Σ_blocks scale_b / 2 · Σ_{i∈b} |w_i|.
public final class QuantizedRows {
    public let rows: Int
    public let cols: Int
    /// rows × cols bytes, row-major.
    public let q: UnsafeMutablePointer<Int8>
    /// rows × cols/32 block scales.
    public let scales: UnsafeMutablePointer<Float>
    /// rows × cols/32 exact block sums.
    public let sums: UnsafeMutablePointer<Float>
    /// rows × cols/32 sums of each block's quantized bytes.
    public let quantizedSums: UnsafeMutablePointer<Int32>

    /// Quantizes `rows` rows of `cols` (a multiple of 32) elements of `x`.
    public init(_ x: UnsafePointer<Float>, rows: Int, cols: Int, isa: KernelISA = .active) {
        precondition(cols % 32 == 0, "quantized rows hold whole blocks of 32")
        self.rows = rows
        self.cols = cols
        q = .allocate(capacity: rows * cols)
        scales = .allocate(capacity: rows * cols / 32)
        sums = .allocate(capacity: rows * cols / 32)
        quantizedSums = .allocate(capacity: rows * cols / 32)
        // Blocks are quantized alone: a step's many rows are split across the cores.
        Parallel.chunks(rows * cols / 32, minPerChunk: 256) { b in
            attune_quantize_q8(isa.c, x + 32 * b.lowerBound, 32 * b.count, q + 32 * b.lowerBound, scales + b.lowerBound,
                               sums + b.lowerBound, quantizedSums + b.lowerBound)
        }
    }

    deinit {
        q.deallocate()
        scales.deallocate()
        sums.deallocate()
        quantizedSums.deallocate()
    }
}

/// The fp32 sum of every 32-element block of a vector (the Q4_1 offset term's factor).
final class BlockSums {
    let pointer: UnsafeMutablePointer<Float>

    init(_ x: UnsafePointer<Float>, count: Int, isa: KernelISA) {
        pointer = .allocate(capacity: count / 32)
        attune_block_sums(isa.c, x, count, pointer)
    }

    deinit { pointer.deallocate() }
}
