import AttuneTensor
import Foundation
import Testing
@testable import AttuneGGUF

private func sampleFile() -> [UInt8] {
    var w = GGUFWriter()
    w.set("general.architecture", .string("llama"))
    w.set("u8", .uint8(200))
    w.set("i8", .int8(-100))
    w.set("u16", .uint16(60000))
    w.set("i16", .int16(-30000))
    w.set("u32", .uint32(4_000_000_000))
    w.set("i32", .int32(-2_000_000_000))
    w.set("u64", .uint64(1 << 60))
    w.set("i64", .int64(-(1 << 60)))
    w.set("f32", .float32(1.5))
    w.set("f64", .float64(-2.25))
    w.set("flag", .bool(true))
    w.set("name", .string("héllo 🙂"))
    w.set("list", .array([.string("a"), .string("bc")]))
    w.set("nested", .array([.array([.int32(1), .int32(2)]), .array([.int32(3)])]))
    w.addTensor("a", shape: [64, 2], format: .f32, values: (0..<128).map { Float($0) })
    w.addTensor("b", shape: [32, 3], format: .q8_0, values: (0..<96).map { Float($0) / 10 })
    w.addTensor("c", shape: [64], format: .q4_1, values: (0..<64).map { Float($0 % 16) })
    w.addTensor("d", shape: [5], format: .f16, values: [1, 2, 3, 4, 5])
    return w.serialize()
}

@Test func writerAndReaderRoundTripEveryValueType() throws {
    let f = try GGUFFile(bytes: sampleFile())
    #expect(f.version == 3)
    #expect(f.metadata["u8"] == .uint8(200))
    #expect(f.metadata["i8"] == .int8(-100))
    #expect(f.metadata["u16"] == .uint16(60000))
    #expect(f.metadata["i16"] == .int16(-30000))
    #expect(f.metadata["u32"] == .uint32(4_000_000_000))
    #expect(f.metadata["i32"] == .int32(-2_000_000_000))
    #expect(f.metadata["u64"] == .uint64(1 << 60))
    #expect(f.metadata["i64"] == .int64(-(1 << 60)))
    #expect(f.metadata["f32"] == .float32(1.5))
    #expect(f.metadata["f64"] == .float64(-2.25))
    #expect(f.metadata["flag"] == .bool(true))
    #expect(f.metadata["name"] == .string("héllo 🙂"))
    #expect(f.metadata["list"] == .array([.string("a"), .string("bc")]))
    #expect(f.metadata["nested"]?.array?.count == 2)
    #expect(f.metadataKeys.first == "general.architecture")
    let a = try f.tensor("a")
    #expect(a.shape == [64, 2] && a.rows == 2 && a.cols == 64 && a.format == .f32)
    #expect(f.floats(a) == (0..<128).map { Float($0) })
    #expect(f.floats(try f.tensor("d")) == [1, 2, 3, 4, 5])
    let b = f.floats(try f.tensor("b"))
    for (i, v) in b.enumerated() { #expect(abs(v - Float(i) / 10) <= 9.5 / 127 / 2 + 0.01, "q8_0 error beyond half a step") }
    #expect(f.floats(try f.tensor("c")) == (0..<64).map { Float($0 % 16) })
    for t in f.tensors { #expect(t.fileOffset % f.alignment == 0) }
    #expect(throws: GGUFError.missingTensor("zz")) { try f.tensor("zz") }
}

@Test func readsFromDiskWithMemoryMapping() throws {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("attune-gguf-\(getpid()).gguf").path
    try Data(sampleFile()).write(to: URL(fileURLWithPath: path))
    defer { try? FileManager.default.removeItem(atPath: path) }
    let f = try GGUFFile(path: path)
    #expect(f.tensors.count == 4)
    #expect(throws: GGUFError.self) { try GGUFFile(path: path + ".missing") }
}

@Test func rejectsBadMagicAndVersion() {
    var bytes = sampleFile()
    bytes[0] = UInt8(ascii: "X")
    #expect(throws: GGUFError.badMagic(found: 0x4655_4758)) { try GGUFFile(bytes: bytes) }
    bytes = sampleFile()
    bytes[4] = 1
    #expect(throws: GGUFError.unsupportedVersion(1)) { try GGUFFile(bytes: bytes) }
    bytes[4] = 2
    #expect((try? GGUFFile(bytes: bytes)) != nil, "v2 shares v3's layout")
}

/// Every prefix of a valid file that cuts into its header or tensor data fails with an error
/// that says the file is truncated, never a crash (only trailing alignment padding may be cut).
@Test func everyTruncationIsAnError() throws {
    let bytes = sampleFile()
    let full = try GGUFFile(bytes: bytes)
    let dataEnd = full.tensors.map { $0.fileOffset + $0.byteCount }.max()!
    #expect(dataEnd > bytes.count - full.alignment)
    #expect((try? GGUFFile(bytes: Array(bytes[0..<dataEnd]))) != nil)
    for n in 0..<dataEnd {
        do {
            _ = try GGUFFile(bytes: Array(bytes[0..<n]))
            Issue.record("prefix of \(n) bytes parsed")
        } catch let e as GGUFError {
            #expect(e.description.hasPrefix("GGUF file truncated"), "prefix of \(n) bytes: \(e)")
        } catch {
            Issue.record("unexpected error \(error)")
        }
    }
}

private func patch(_ bytes: inout [UInt8], at offset: Int, _ value: UInt64) {
    withUnsafeBytes(of: value.littleEndian) { for (i, b) in $0.enumerated() { bytes[offset + i] = b } }
}

@Test func rejectsAbsurdCountsUnknownTypesAndBadOffsets() throws {
    var bytes = sampleFile()
    patch(&bytes, at: 8, 1 << 40)
    #expect(throws: GGUFError.absurdCount(what: "tensor", count: 1 << 40)) { try GGUFFile(bytes: bytes) }

    var w = GGUFWriter()
    w.addRawTensor("t", shape: [32], format: .q8_0, bytes: [UInt8](repeating: 0, count: 34))
    let good = w.serialize()
    // Header: magic 4, version 4, counts 16, then name (8 + 1), n_dims 4, dim 8, type 4, offset 8.
    let typeAt = 24 + 9 + 4 + 8
    var bad = good
    bad[typeAt] = 99
    #expect(throws: GGUFError.unknownTensorType(tensor: "t", code: 99)) { try GGUFFile(bytes: bad) }
    bad = good
    patch(&bad, at: typeAt + 4, 64)
    #expect(throws: GGUFError.self) { try GGUFFile(bytes: bad) }
    bad = good
    patch(&bad, at: typeAt + 4, 3)
    #expect(throws: GGUFError.misalignedTensor(tensor: "t", offset: 3, alignment: 32)) { try GGUFFile(bytes: bad) }
    bad = good
    patch(&bad, at: 24 + 9 + 4, 33)
    #expect(throws: GGUFError.self) { try GGUFFile(bytes: bad) }
    bad = good
    patch(&bad, at: 24 + 9, 7)
    #expect(throws: GGUFError.badTensorShape(tensor: "t", reason: "7 dimensions (1–4 allowed)")) { try GGUFFile(bytes: bad) }
}

/// Fuzz: random byte flips and splices of a valid file either parse to a consistent table or
/// raise GGUFError; tensors that parse can be read in full without leaving the image.
@Test func randomCorruptionNeverCrashes() {
    let original = sampleFile()
    var state: UInt64 = 0x1234_5678
    func rand(_ n: Int) -> Int {
        state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        return Int((state >> 33) % UInt64(n))
    }
    var parsed = 0, rejected = 0
    for _ in 0..<3000 {
        var bytes = original
        for _ in 0..<(1 + rand(4)) {
            switch rand(3) {
            case 0: bytes[rand(bytes.count)] = UInt8(rand(256))
            case 1: bytes[rand(min(bytes.count, 400))] ^= UInt8(1 << rand(8))
            default:
                let at = rand(bytes.count)
                bytes.removeSubrange(at..<min(bytes.count, at + rand(16)))
            }
        }
        do {
            let f = try GGUFFile(bytes: bytes)
            for t in f.tensors {
                #expect(t.fileOffset + t.byteCount <= f.fileSize)
                _ = f.floats(t)
            }
            parsed += 1
        } catch is GGUFError {
            rejected += 1
        } catch {
            Issue.record("unexpected error type: \(error)")
        }
    }
    #expect(parsed + rejected == 3000)
    #expect(rejected > 0)
}
