/// Compact binary form of record headers for the embedded log:
/// count, then per header name length, name, value length (−1 for null), value; little-endian.
enum HeaderCoding {
    static func encode(_ headers: [EventHeader]) -> [UInt8]? {
        if headers.isEmpty { return nil }
        var out: [UInt8] = []
        append(UInt32(headers.count), to: &out)
        for header in headers {
            let name = Array(header.name.utf8)
            append(UInt32(name.count), to: &out)
            out += name
            if let value = header.value {
                append(UInt32(value.count), to: &out)
                out += value
            } else {
                append(UInt32.max, to: &out)
            }
        }
        return out
    }

    static func decode(_ bytes: [UInt8]?) throws -> [EventHeader] {
        guard let bytes, !bytes.isEmpty else { return [] }
        var cursor = 0
        func read32() throws -> UInt32 {
            guard cursor + 4 <= bytes.count else { throw EventLogError(.storage, "corrupt header block") }
            defer { cursor += 4 }
            return UInt32(bytes[cursor]) | UInt32(bytes[cursor + 1]) << 8 | UInt32(bytes[cursor + 2]) << 16 | UInt32(bytes[cursor + 3]) << 24
        }
        func read(_ count: Int) throws -> [UInt8] {
            guard count >= 0, cursor + count <= bytes.count else { throw EventLogError(.storage, "corrupt header block") }
            defer { cursor += count }
            return Array(bytes[cursor..<cursor + count])
        }
        let count = Int(try read32())
        var headers: [EventHeader] = []
        for _ in 0..<min(count, bytes.count) {
            let name = String(decoding: try read(Int(try read32())), as: UTF8.self)
            let length = try read32()
            headers.append(EventHeader(name, length == UInt32.max ? nil : try read(Int(length))))
        }
        return headers
    }

    private static func append(_ value: UInt32, to out: inout [UInt8]) {
        out.append(UInt8(truncatingIfNeeded: value))
        out.append(UInt8(truncatingIfNeeded: value >> 8))
        out.append(UInt8(truncatingIfNeeded: value >> 16))
        out.append(UInt8(truncatingIfNeeded: value >> 24))
    }
}
