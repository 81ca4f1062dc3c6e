/// Tensor element formats of the GGML family, with their block geometry.
///
/// Raw values are the GGUF `ggml_type` codes. Block layouts (little-endian):
/// - `q8_0`: f16 scale `d`, 32 × int8; value = d·q
/// - `q4_0`: f16 `d`, 16 bytes of nibbles; element j is the low nibble of byte j, element j+16 the high one; value = d·(q−8)
/// - `q4_1`: f16 `d`, f16 `m`, 16 bytes of nibbles as in q4_0; value = d·q + m
/// - `q4_K`: 256 elements: f16 d, f16 dmin, 12 bytes of 6-bit scales/mins, 128 bytes of nibbles
/// - `q6_K`: 256 elements: 128 bytes low nibbles, 64 bytes high 2-bit pairs, 16 int8 scales, f16 d
public enum QuantFormat: UInt32, Sendable, CaseIterable {
    case f32 = 0
    case f16 = 1
    case q4_0 = 2
    case q4_1 = 3
    case q8_0 = 8
    case q4_K = 12
    case q6_K = 14
    case bf16 = 30

    /// Elements per block.
    public var blockSize: Int {
        switch self {
        case .f32, .f16, .bf16: return 1
        case .q4_0, .q4_1, .q8_0: return 32
        case .q4_K, .q6_K: return 256
        }
    }

    /// Bytes per block.
    public var blockBytes: Int {
        switch self {
        case .f32: return 4
        case .f16, .bf16: return 2
        case .q4_0: return 18
        case .q4_1: return 20
        case .q8_0: return 34
        case .q4_K: return 144
        case .q6_K: return 210
        }
    }

    public var name: String {
        switch self {
        case .f32: return "F32"
        case .f16: return "F16"
        case .bf16: return "BF16"
        case .q4_0: return "Q4_0"
        case .q4_1: return "Q4_1"
        case .q8_0: return "Q8_0"
        case .q4_K: return "Q4_K"
        case .q6_K: return "Q6_K"
        }
    }

    /// The format named `name` (case-insensitive, e.g. "f16", "Q8_0").
    public init?(name: String) {
        guard let f = QuantFormat.allCases.first(where: { $0.name == name.uppercased() }) else { return nil }
        self = f
    }

    /// Bytes taken by `count` elements, or nil when `count` is not a whole number of blocks
    /// or the size overflows.
    public func byteCount(elements count: Int) -> Int? {
        guard count >= 0, count % blockSize == 0 else { return nil }
        let (bytes, overflow) = (count / blockSize).multipliedReportingOverflow(by: blockBytes)
        return overflow ? nil : bytes
    }
}
