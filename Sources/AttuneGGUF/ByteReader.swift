/// A bounds-checked little-endian cursor over a byte region; every read past the end throws.
struct ByteReader {
    let base: UnsafeRawPointer
    let count: Int
    private(set) var offset = 0

    init(base: UnsafeRawPointer, count: Int) {
        self.base = base
        self.count = count
    }

    private mutating func need(_ n: Int, _ what: String) throws {
        guard n >= 0, n <= count - offset else { throw GGUFError.truncated(offset: offset, needed: n, what: what) }
    }

    mutating func read<T: FixedWidthInteger>(_: T.Type, _ what: String) throws -> T {
        try need(MemoryLayout<T>.size, what)
        let v = T(littleEndian: base.loadUnaligned(fromByteOffset: offset, as: T.self))
        offset += MemoryLayout<T>.size
        return v
    }

    mutating func readFloat(_ what: String) throws -> Float {
        Float(bitPattern: try read(UInt32.self, what))
    }

    mutating func readDouble(_ what: String) throws -> Double {
        Double(bitPattern: try read(UInt64.self, what))
    }

    mutating func readString(_ what: String) throws -> String {
        let n = try read(UInt64.self, "\(what) length")
        guard n <= UInt64(count - offset) else {
            throw GGUFError.truncated(offset: offset, needed: Int(clamping: n), what: what)
        }
        let start = offset
        let buffer = UnsafeRawBufferPointer(start: base + offset, count: Int(n))
        offset += Int(n)
        guard let s = String(validating: buffer, as: UTF8.self) else { throw GGUFError.invalidString(offset: start) }
        return s
    }
}
