import AttuneTensor
import Foundation

/// Builds a GGUF v3 file: metadata in insertion order, then aligned tensor data.
public struct GGUFWriter {
    private var meta: [(String, GGUFValue)] = []
    private var tensors: [(name: String, shape: [Int], format: QuantFormat, data: [UInt8])] = []
    public let alignment: Int

    public init(alignment: Int = 32) {
        self.alignment = alignment
        if alignment != 32 { meta.append(("general.alignment", .uint32(UInt32(alignment)))) }
    }

    public mutating func set(_ key: String, _ value: GGUFValue) {
        meta.removeAll { $0.0 == key }
        meta.append((key, value))
    }

    /// Adds a tensor from fp32 values, quantized to `format`. `shape` is in GGML order
    /// (innermost first); `values.count` must equal its product.
    public mutating func addTensor(_ name: String, shape: [Int], format: QuantFormat = .f32, values: [Float]) {
        precondition(values.count == shape.reduce(1, *), "tensor \(name): value count does not match shape")
        let bytes = format.byteCount(elements: values.count)!
        var data = [UInt8](repeating: 0, count: bytes)
        let rowBytes = format.byteCount(elements: shape[0])!
        data.withUnsafeMutableBytes { out in
            values.withUnsafeBufferPointer { src in
                for r in 0..<(values.count / shape[0]) {
                    Quantize.row(format, src.baseAddress! + r * shape[0], out.baseAddress! + r * rowBytes, count: shape[0])
                }
            }
        }
        tensors.append((name, shape, format, data))
    }

    /// Adds a tensor from already-encoded bytes.
    public mutating func addRawTensor(_ name: String, shape: [Int], format: QuantFormat, bytes: [UInt8]) {
        tensors.append((name, shape, format, bytes))
    }

    /// The complete file image.
    public func serialize() -> [UInt8] {
        var out: [UInt8] = []
        func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) } }
        func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) } }
        func str(_ s: String) {
            u64(UInt64(s.utf8.count))
            out.append(contentsOf: s.utf8)
        }
        func value(_ v: GGUFValue) {
            switch v {
            case .uint8(let x): out.append(x)
            case .int8(let x): out.append(UInt8(bitPattern: x))
            case .uint16(let x): withUnsafeBytes(of: x.littleEndian) { out.append(contentsOf: $0) }
            case .int16(let x): withUnsafeBytes(of: x.littleEndian) { out.append(contentsOf: $0) }
            case .uint32(let x): u32(x)
            case .int32(let x): u32(UInt32(bitPattern: x))
            case .uint64(let x): u64(x)
            case .int64(let x): u64(UInt64(bitPattern: x))
            case .float32(let x): u32(x.bitPattern)
            case .float64(let x): u64(x.bitPattern)
            case .bool(let x): out.append(x ? 1 : 0)
            case .string(let s): str(s)
            case .array(let items):
                u32(items.first?.typeCode ?? 4)
                u64(UInt64(items.count))
                items.forEach(value)
            }
        }
        u32(0x4655_4747)
        u32(3)
        u64(UInt64(tensors.count))
        u64(UInt64(meta.count))
        for (k, v) in meta {
            str(k)
            u32(v.typeCode)
            value(v)
        }
        var offset = 0
        var offsets: [Int] = []
        for t in tensors {
            offsets.append(offset)
            offset = (offset + t.data.count + alignment - 1) / alignment * alignment
        }
        for (t, o) in zip(tensors, offsets) {
            str(t.name)
            u32(UInt32(t.shape.count))
            t.shape.forEach { u64(UInt64($0)) }
            u32(t.format.rawValue)
            u64(UInt64(o))
        }
        let pad = (out.count + alignment - 1) / alignment * alignment - out.count
        out.append(contentsOf: repeatElement(0, count: pad))
        for (t, o) in zip(tensors, offsets) {
            out.append(contentsOf: t.data)
            let end = (o + t.data.count + alignment - 1) / alignment * alignment
            out.append(contentsOf: repeatElement(0, count: end - o - t.data.count))
        }
        return out
    }

    /// Writes the file image to `path`.
    public func write(to path: String) throws {
        try Data(serialize()).write(to: URL(fileURLWithPath: path))
    }
}
