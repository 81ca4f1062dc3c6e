import AttuneGGUF
import AttuneModel
import AttuneTensor
import Foundation

/// Exports a LoRA adapter for llama.cpp (a LoRA GGUF) and merges it into a copy of the base.
public enum AdapterExport {
    /// Writes a llama.cpp LoRA adapter GGUF: `general.type = adapter`, `adapter.type = lora`,
    /// `adapter.lora.alpha`, and F32 tensors `blk.N.<name>.weight.lora_a` ([in, r] in GGML order)
    /// and `.lora_b` ([r, out]). llama.cpp scales by α/r; for rsLoRA the extra √r is folded into B.
    public static func writeLoRAGGUF(_ adapter: LoRAAdapter, to path: String) throws {
        let c = adapter.config, m = adapter.model
        var w = GGUFWriter()
        w.set("general.architecture", .string("llama"))
        w.set("general.type", .string("adapter"))
        w.set("adapter.type", .string("lora"))
        w.set("adapter.lora.alpha", .float32(c.alpha))
        let fold = c.useRSLoRA ? Float(c.rank).squareRoot() : 1
        for l in 0..<m.layers {
            for t in c.targets {
                let (out, inF) = t.shape(m)
                let name = "blk.\(l).\(t.ggufName).weight"
                w.addTensor(name + ".lora_a", shape: [inF, c.rank], values: Array(UnsafeBufferPointer(start: adapter.a(l, t), count: c.rank * inF)))
                w.addTensor(name + ".lora_b", shape: [c.rank, out],
                            values: UnsafeBufferPointer(start: adapter.b(l, t), count: out * c.rank).map { $0 * fold })
            }
        }
        try w.write(to: path)
    }

    /// Writes a copy of the base model with W + s·B·A in every adapted projection, stored as
    /// `format` (F32, F16 or Q8_0). With `adapter` nil it is a plain conversion of every matrix
    /// (projections and embeddings). Other tensors and all metadata are copied unchanged.
    public static func writeMerged(base: LlamaModel, adapter: LoRAAdapter?, format: QuantFormat, to path: String) throws {
        guard Quantize.canWrite(format) else { throw TrainingError.invalid("cannot write \(format.name) tensors") }
        let file = base.file
        var w = GGUFWriter(alignment: file.alignment)
        for key in file.metadataKeys where key != "general.alignment" { w.set(key, file.metadata[key]!) }
        var adapted: [String: (Int, LinearTarget)] = [:]
        for l in 0..<base.config.layers {
            for t in adapter?.config.targets ?? LinearTarget.allCases { adapted["blk.\(l).\(t.ggufName).weight"] = (l, t) }
        }
        for tensor in file.tensors {
            if let (l, t) = adapted[tensor.name] ?? (adapter == nil && tensor.shape.count == 2 ? (0, .q) : nil) {
                var values = file.floats(tensor)
                if let adapter {
                    let delta = adapter.delta(layer: l, target: t)
                    for i in values.indices { values[i] += delta[i] }
                }
                w.addTensor(tensor.name, shape: tensor.shape, format: format, values: values)
            } else {
                w.addRawTensor(tensor.name, shape: tensor.shape, format: tensor.format,
                               bytes: Array(UnsafeRawBufferPointer(start: file.bytes(of: tensor), count: tensor.byteCount)))
            }
        }
        try w.write(to: path)
    }
}
