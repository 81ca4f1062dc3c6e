import AttuneTensor
#if canImport(Glibc)
import Glibc
#endif

/// One tensor's entry in a GGUF file. `shape[0]` is the fastest-varying dimension (GGML order):
/// a weight matrix of `rows × cols` has shape `[cols, rows]`.
public struct GGUFTensor: Sendable {
    public let name: String
    public let shape: [Int]
    public let format: QuantFormat
    /// Offset of the tensor's bytes from the start of the file.
    public let fileOffset: Int
    public let byteCount: Int

    public var elementCount: Int { shape.reduce(1, *) }
    /// Length of a row (the innermost dimension).
    public var cols: Int { shape[0] }
    /// Number of rows (product of the outer dimensions).
    public var rows: Int { elementCount / shape[0] }
}

/// A memory-mapped GGUF (v2/v3) file: metadata, tensor table and zero-copy tensor data.
///
/// Parsing validates every count, length, type and offset against the file size, so a
/// malformed file raises `GGUFError` instead of reading out of bounds.
public final class GGUFFile: @unchecked Sendable {
    public let version: UInt32
    public let metadata: [String: GGUFValue]
    /// Metadata keys in file order.
    public let metadataKeys: [String]
    public let tensors: [GGUFTensor]
    public let alignment: Int
    public let dataOffset: Int
    public let fileSize: Int
    private let tensorIndex: [String: Int]
    private let base: UnsafeRawPointer
    private let release: () -> Void
    private let mapped: Bool

    static let maxEntries: UInt64 = 1 << 24

    /// Maps and parses the file at `path`.
    public convenience init(path: String) throws {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw GGUFError.cannotOpen(path: path, reason: String(cString: strerror(errno))) }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw GGUFError.cannotOpen(path: path, reason: String(cString: strerror(errno))) }
        guard st.st_mode & S_IFMT == S_IFREG else { throw GGUFError.cannotOpen(path: path, reason: "not a regular file") }
        let size = Int(st.st_size)
        guard size > 0 else { throw GGUFError.inFile(path: path, .truncated(offset: 0, needed: 4, what: "magic")) }
        guard let p = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), p != MAP_FAILED else {
            throw GGUFError.cannotOpen(path: path, reason: "mmap failed: \(String(cString: strerror(errno)))")
        }
        let region = UncheckedPointer(UnsafeMutableRawPointer(p))
        do {
            try self.init(base: UnsafeRawPointer(p), size: size, mapped: true) { munmap(region.pointer, size) }
        } catch let error as GGUFError {
            throw GGUFError.inFile(path: path, error)
        }
    }

    /// Parses a GGUF image held in memory (copied).
    public convenience init(bytes: [UInt8]) throws {
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: max(bytes.count, 1), alignment: 64)
        bytes.withUnsafeBytes { buffer.copyMemory(from: $0.baseAddress!, byteCount: bytes.count) }
        let region = UncheckedPointer(buffer)
        try self.init(base: UnsafeRawPointer(buffer), size: bytes.count, mapped: false) { region.pointer.deallocate() }
    }

    private init(base: UnsafeRawPointer, size: Int, mapped: Bool, release: @escaping () -> Void) throws {
        self.base = base
        self.fileSize = size
        self.release = release
        self.mapped = mapped
        do {
            var r = ByteReader(base: base, count: size)
            let magic = try r.read(UInt32.self, "magic")
            guard magic == 0x4655_4747 else { throw GGUFError.badMagic(found: magic) }
            version = try r.read(UInt32.self, "version")
            guard version == 2 || version == 3 else { throw GGUFError.unsupportedVersion(version) }
            let tensorCount = try r.read(UInt64.self, "tensor count")
            guard tensorCount <= Self.maxEntries else { throw GGUFError.absurdCount(what: "tensor", count: tensorCount) }
            let kvCount = try r.read(UInt64.self, "metadata count")
            guard kvCount <= Self.maxEntries else { throw GGUFError.absurdCount(what: "metadata", count: kvCount) }

            var meta: [String: GGUFValue] = [:]
            var keys: [String] = []
            for _ in 0..<kvCount {
                let key = try r.readString("metadata key")
                let code = try r.read(UInt32.self, "value type of \(key)")
                let value = try Self.readValue(&r, code: code, key: key, depth: 0)
                guard meta.updateValue(value, forKey: key) == nil else { throw GGUFError.duplicate(what: "metadata key", name: key) }
                keys.append(key)
            }
            metadata = meta
            metadataKeys = keys

            var align = 32
            if let a = meta["general.alignment"] {
                guard let v = a.int, v > 0, v <= 65536, v & (v - 1) == 0 else {
                    throw GGUFError.badAlignment(UInt64(clamping: a.int ?? 0))
                }
                align = v
            }
            alignment = align

            var raw: [(String, [Int], UInt32, UInt64)] = []
            for _ in 0..<tensorCount {
                let name = try r.readString("tensor name")
                let nDims = try r.read(UInt32.self, "dimension count of \(name)")
                guard (1...4).contains(nDims) else {
                    throw GGUFError.badTensorShape(tensor: name, reason: "\(nDims) dimensions (1–4 allowed)")
                }
                var shape: [Int] = []
                var elements = 1
                for _ in 0..<nDims {
                    let d = try r.read(UInt64.self, "dimension of \(name)")
                    guard d > 0, d <= UInt64(Int32.max) else {
                        throw GGUFError.badTensorShape(tensor: name, reason: "dimension \(d)")
                    }
                    let (e, overflow) = elements.multipliedReportingOverflow(by: Int(d))
                    guard !overflow, e <= 1 << 40 else { throw GGUFError.badTensorShape(tensor: name, reason: "too many elements") }
                    elements = e
                    shape.append(Int(d))
                }
                let type = try r.read(UInt32.self, "type of \(name)")
                let offset = try r.read(UInt64.self, "offset of \(name)")
                raw.append((name, shape, type, offset))
            }
            let dataStart = (r.offset + align - 1) / align * align
            guard dataStart <= size else { throw GGUFError.truncated(offset: r.offset, needed: dataStart - r.offset, what: "alignment padding") }
            dataOffset = dataStart
            let dataSize = size - dataStart

            var list: [GGUFTensor] = []
            var index: [String: Int] = [:]
            for (name, shape, code, offset) in raw {
                guard let format = QuantFormat(rawValue: code) else { throw GGUFError.unknownTensorType(tensor: name, code: code) }
                guard shape[0] % format.blockSize == 0, let bytes = format.byteCount(elements: shape.reduce(1, *)) else {
                    throw GGUFError.badTensorShape(tensor: name, reason: "row of \(shape[0]) is not a multiple of \(format.name)'s block of \(format.blockSize)")
                }
                guard offset % UInt64(align) == 0 else { throw GGUFError.misalignedTensor(tensor: name, offset: offset, alignment: align) }
                guard offset <= UInt64(dataSize), bytes <= dataSize - Int(offset) else {
                    throw GGUFError.tensorOutOfRange(tensor: name, offset: offset, bytes: bytes, dataSize: dataSize)
                }
                guard index.updateValue(list.count, forKey: name) == nil else { throw GGUFError.duplicate(what: "tensor", name: name) }
                list.append(GGUFTensor(name: name, shape: shape, format: format, fileOffset: dataStart + Int(offset), byteCount: bytes))
            }
            tensors = list
            tensorIndex = index
        } catch {
            release()
            throw error
        }
    }

    deinit { release() }

    /// Takes the whole pages of `count` bytes at `start` (inside this file's bytes) out of the
    /// process's resident memory, for tensors whose bytes were copied elsewhere: a mapped file
    /// reads them back from the page cache if they are touched again. Nothing for an image held
    /// in memory.
    public func releasePages(_ start: UnsafeRawPointer, count: Int) {
        guard mapped, start >= base, start + count <= base + fileSize else { return }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let lo = (Int(bitPattern: start) + page - 1) / page * page
        let hi = (Int(bitPattern: start) + count) / page * page
        guard hi > lo, let p = UnsafeMutableRawPointer(bitPattern: lo) else { return }
        madvise(p, hi - lo, MADV_DONTNEED)
    }

    private static func readValue(_ r: inout ByteReader, code: UInt32, key: String, depth: Int) throws -> GGUFValue {
        switch code {
        case 0: return .uint8(try r.read(UInt8.self, key))
        case 1: return .int8(try r.read(Int8.self, key))
        case 2: return .uint16(try r.read(UInt16.self, key))
        case 3: return .int16(try r.read(Int16.self, key))
        case 4: return .uint32(try r.read(UInt32.self, key))
        case 5: return .int32(try r.read(Int32.self, key))
        case 6: return .float32(try r.readFloat(key))
        case 7: return .bool(try r.read(UInt8.self, key) != 0)
        case 8: return .string(try r.readString(key))
        case 9:
            guard depth < 4 else { throw GGUFError.absurdCount(what: "array nesting of \(key)", count: UInt64(depth)) }
            let elementType = try r.read(UInt32.self, "array type of \(key)")
            let n = try r.read(UInt64.self, "array length of \(key)")
            // Every element takes at least a byte: a longer array than the bytes left is a cut (or
            // corrupt) file, reported as the truncation it looks like.
            guard n <= UInt64(r.count - r.offset) else {
                throw GGUFError.truncated(offset: r.offset, needed: Int(clamping: n), what: "array \(key) of \(n) elements")
            }
            var items: [GGUFValue] = []
            items.reserveCapacity(Int(n))
            for _ in 0..<n { items.append(try readValue(&r, code: elementType, key: key, depth: depth + 1)) }
            return .array(items)
        case 10: return .uint64(try r.read(UInt64.self, key))
        case 11: return .int64(try r.read(Int64.self, key))
        case 12: return .float64(try r.readDouble(key))
        default: throw GGUFError.unknownValueType(key: key, code: code)
        }
    }

    /// The tensor named `name`, or a `missingTensor` error.
    public func tensor(_ name: String) throws -> GGUFTensor {
        guard let i = tensorIndex[name] else { throw GGUFError.missingTensor(name) }
        return tensors[i]
    }

    public func hasTensor(_ name: String) -> Bool { tensorIndex[name] != nil }

    /// Pointer to a tensor's raw bytes (valid while this file is alive).
    public func bytes(of tensor: GGUFTensor) -> UnsafeRawPointer {
        base + tensor.fileOffset
    }

    /// The tensor converted to fp32, written to `into` (capacity ≥ elementCount).
    public func dequantize(_ tensor: GGUFTensor, into: UnsafeMutablePointer<Float>) {
        let rowBytes = tensor.format.byteCount(elements: tensor.cols)!
        let src = bytes(of: tensor)
        for r in 0..<tensor.rows {
            Dequantize.row(tensor.format, src + r * rowBytes, into + r * tensor.cols, count: tensor.cols)
        }
    }

    /// The tensor converted to an fp32 array.
    public func floats(_ tensor: GGUFTensor) -> [Float] {
        [Float](unsafeUninitializedCapacity: tensor.elementCount) { buffer, count in
            dequantize(tensor, into: buffer.baseAddress!)
            count = tensor.elementCount
        }
    }

    public func int(_ key: String) throws -> Int {
        guard let v = metadata[key]?.int else { throw GGUFError.missingMetadata(key) }
        return v
    }

    public func double(_ key: String) throws -> Double {
        guard let v = metadata[key]?.double else { throw GGUFError.missingMetadata(key) }
        return v
    }

    public func string(_ key: String) throws -> String {
        guard let v = metadata[key]?.string else { throw GGUFError.missingMetadata(key) }
        return v
    }
}

/// A raw pointer moved into a release closure.
struct UncheckedPointer: @unchecked Sendable {
    let pointer: UnsafeMutableRawPointer
    init(_ pointer: UnsafeMutableRawPointer) { self.pointer = pointer }
}
