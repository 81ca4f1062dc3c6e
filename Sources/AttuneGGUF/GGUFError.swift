/// Why a GGUF file could not be read. Every malformed input maps to one of these.
public enum GGUFError: Error, CustomStringConvertible, Equatable {
    case cannotOpen(path: String, reason: String)
    case badMagic(found: UInt32)
    case unsupportedVersion(UInt32)
    case truncated(offset: Int, needed: Int, what: String)
    case absurdCount(what: String, count: UInt64)
    case unknownValueType(key: String, code: UInt32)
    case invalidString(offset: Int)
    case unknownTensorType(tensor: String, code: UInt32)
    case badTensorShape(tensor: String, reason: String)
    case tensorOutOfRange(tensor: String, offset: UInt64, bytes: Int, dataSize: Int)
    case misalignedTensor(tensor: String, offset: UInt64, alignment: Int)
    case duplicate(what: String, name: String)
    case badAlignment(UInt64)
    case missingTensor(String)
    case missingMetadata(String)
    /// A failure reading the file at `path` (other than opening it).
    indirect case inFile(path: String, GGUFError)

    public var description: String {
        switch self {
        case .cannotOpen(let path, let reason): return "cannot open GGUF file \(path): \(reason)"
        case .badMagic(let m): return "not a GGUF file: magic 0x\(String(m, radix: 16)) (expected \"GGUF\")"
        case .unsupportedVersion(let v): return "unsupported GGUF version \(v) (Attune reads versions 2 and 3)"
        case .truncated(let offset, let needed, let what):
            return "GGUF file truncated: \(what) needs \(needed) bytes at offset \(offset)"
        case .absurdCount(let what, let count): return "GGUF \(what) count \(count) is not plausible"
        case .unknownValueType(let key, let code): return "metadata key \"\(key)\" has unknown value type \(code)"
        case .invalidString(let offset): return "invalid UTF-8 string at offset \(offset)"
        case .unknownTensorType(let t, let code): return "tensor \(t) has unsupported type code \(code)"
        case .badTensorShape(let t, let reason): return "tensor \(t) has a bad shape: \(reason)"
        case .tensorOutOfRange(let t, let offset, let bytes, let size):
            return "GGUF file truncated or corrupt: tensor \(t) (\(bytes) bytes at data offset \(offset)) runs past the data section (\(size) bytes)"
        case .misalignedTensor(let t, let offset, let a): return "tensor \(t) offset \(offset) is not aligned to \(a)"
        case .duplicate(let what, let name): return "duplicate \(what) \"\(name)\""
        case .badAlignment(let a): return "general.alignment \(a) is not a power of two between 1 and 65536"
        case .missingTensor(let name): return "the model has no tensor \(name)"
        case .missingMetadata(let key): return "the model has no metadata key \(key)"
        case .inFile(let path, let error): return "\(path): \(error)"
        }
    }
}
