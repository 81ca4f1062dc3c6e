import Foundation

/// A tensor read from or written to a safetensors file (fp32 only in Attune).
public struct SafeTensor: Equatable, Sendable {
    public var shape: [Int]
    public var values: [Float]

    public init(shape: [Int], values: [Float]) {
        self.shape = shape
        self.values = values
    }
}

/// A safetensors image that cannot be read or written, and why.
public struct SafetensorsError: Error, CustomStringConvertible, Equatable {
    public let reason: String
    public init(_ reason: String) { self.reason = reason }
    public var description: String { "adapter: \(reason)" }
}

/// The safetensors format: an 8-byte little-endian header length, a JSON header mapping names to
/// `{dtype, shape, data_offsets}` (plus optional `__metadata__` strings), then the raw data.
public enum Safetensors {
    /// Serializes tensors (sorted by name, F32) with optional string metadata.
    public static func encode(_ tensors: [String: SafeTensor], metadata: [String: String] = [:]) throws -> Data {
        var header: [String: Any] = [:]
        if !metadata.isEmpty { header["__metadata__"] = metadata }
        var offset = 0
        let names = tensors.keys.sorted()
        for name in names {
            let t = tensors[name]!
            guard t.shape.reduce(1, *) == t.values.count else {
                throw SafetensorsError("tensor \(name): shape \(t.shape) does not hold \(t.values.count) values")
            }
            header[name] = ["dtype": "F32", "shape": t.shape, "data_offsets": [offset, offset + 4 * t.values.count]]
            offset += 4 * t.values.count
        }
        var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        while json.count % 8 != 0 { json.append(0x20) }
        var out = Data()
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { out.append(contentsOf: $0) }
        out.append(json)
        for name in names {
            tensors[name]!.values.withUnsafeBufferPointer { out.append(UnsafeBufferPointer(start: UnsafeRawPointer($0.baseAddress!).assumingMemoryBound(to: UInt8.self), count: 4 * $0.count)) }
        }
        return out
    }

    /// Parses a safetensors image; every malformed header is a clear error.
    public static func decode(_ data: Data) throws -> (tensors: [String: SafeTensor], metadata: [String: String]) {
        let header = try Header(data)
        var tensors: [String: SafeTensor] = [:]
        data.withUnsafeBytes { raw in
            for entry in header.entries {
                let values = [Float](unsafeUninitializedCapacity: entry.count) { buffer, initialized in
                    UnsafeMutableRawBufferPointer(buffer).copyMemory(from: UnsafeRawBufferPointer(rebasing: raw[entry.start..<(entry.start + 4 * entry.count)]))
                    #if _endian(big)
                    for i in 0..<entry.count { buffer[i] = Float(bitPattern: UInt32(littleEndian: buffer[i].bitPattern)) }
                    #endif
                    initialized = entry.count
                }
                tensors[entry.name] = SafeTensor(shape: entry.shape, values: values)
            }
        }
        return (tensors, header.metadata)
    }

    /// The string metadata of a safetensors image, its header checked as `decode` checks it but
    /// no tensor copied.
    public static func metadata(_ data: Data) throws -> [String: String] { try Header(data).metadata }

    /// A parsed, checked header: each tensor's name, shape, and where its values start in the image.
    private struct Header {
        var entries: [(name: String, shape: [Int], start: Int, count: Int)] = []
        var metadata: [String: String] = [:]

        init(_ data: Data) throws {
            guard data.count >= 8 else { throw SafetensorsError("safetensors file is shorter than its 8-byte header length") }
            let n = data.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }.littleEndian
            guard n > 0, n <= UInt64(data.count - 8), n < 100_000_000 else {
                throw SafetensorsError("safetensors header length \(n) does not fit the \(data.count)-byte file")
            }
            let headerEnd = 8 + Int(n), body = data.count - headerEnd
            let json = data.withUnsafeBytes { Data(UnsafeRawBufferPointer(rebasing: $0[8..<headerEnd])) }
            guard let header = try? JSONSerialization.jsonObject(with: json) as? [String: Any] else {
                throw SafetensorsError("safetensors header is not a JSON object")
            }
            for (name, value) in header {
                if name == "__metadata__" {
                    guard let m = value as? [String: String] else { throw SafetensorsError("__metadata__ must map strings to strings") }
                    metadata = m
                    continue
                }
                guard let info = value as? [String: Any], let dtype = info["dtype"] as? String,
                      let shape = info["shape"] as? [Int], let offsets = info["data_offsets"] as? [Int], offsets.count == 2 else {
                    throw SafetensorsError("tensor \(name) has a malformed header entry")
                }
                guard dtype == "F32" else { throw SafetensorsError("tensor \(name) has dtype \(dtype); Attune reads F32 adapters") }
                guard shape.allSatisfy({ $0 >= 0 }), offsets[0] >= 0, offsets[0] <= offsets[1], offsets[1] <= body else {
                    throw SafetensorsError("tensor \(name) data offsets \(offsets) fall outside the \(body)-byte data section")
                }
                var count = 1
                for d in shape {
                    let (product, overflow) = count.multipliedReportingOverflow(by: d)
                    guard !overflow, product <= body / 4 else {
                        throw SafetensorsError("tensor \(name) has shape \(shape), more values than the \(body)-byte data section holds")
                    }
                    count = product
                }
                guard offsets[1] - offsets[0] == 4 * count else {
                    throw SafetensorsError("tensor \(name): \(offsets[1] - offsets[0]) bytes for shape \(shape)")
                }
                entries.append((name, shape, headerEnd + offsets[0], count))
            }
        }
    }
}
