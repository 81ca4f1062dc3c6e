/// GPT-2's reversible byte ↔ printable-character mapping used by byte-level BPE vocabularies:
/// printable Latin-1 bytes map to themselves, the other bytes to U+0100 onwards.
public enum ByteLevel {
    static let byteToScalar: [Unicode.Scalar] = {
        var printable = Array(33...126) + Array(161...172) + Array(174...255)
        var scalars = printable
        var next = 256
        for b in 0..<256 where !printable.contains(b) {
            printable.append(b)
            scalars.append(next)
            next += 1
        }
        var table = [Unicode.Scalar](repeating: "\0", count: 256)
        for (b, s) in zip(printable, scalars) { table[b] = Unicode.Scalar(UInt32(s))! }
        return table
    }()

    static let scalarToByte: [UInt32: UInt8] = {
        var map: [UInt32: UInt8] = [:]
        for (b, s) in byteToScalar.enumerated() { map[s.value] = UInt8(b) }
        return map
    }()

    /// The vocabulary spelling of raw bytes.
    public static func encode(_ bytes: some Sequence<UInt8>) -> String {
        var s = String.UnicodeScalarView()
        for b in bytes { s.append(byteToScalar[Int(b)]) }
        return String(s)
    }

    /// The raw bytes a vocabulary spelling stands for, or nil if it is not byte-level text.
    static func decode(_ text: String) -> [UInt8]? {
        var out: [UInt8] = []
        out.reserveCapacity(text.unicodeScalars.count)
        for s in text.unicodeScalars {
            guard let b = scalarToByte[s.value] else { return nil }
            out.append(b)
        }
        return out
    }
}
