import AttuneTensor
@testable import AttuneModel

/// The small random llama the model tests run on.
enum TinyModel {
    static let config = LlamaConfig(layers: 2, dim: 64, ffnDim: 96, heads: 4, kvHeads: 2, vocabSize: 80,
                                    contextLength: 64, ropeBase: 10000, normEps: 1e-5)

    static func load(mode: WeightMode = .quantized, matrixFormat: QuantFormat = .q4_1) throws -> LlamaModel {
        try RandomModel.load(config, matrixFormat: matrixFormat, mode: mode)
    }
}

func maxAbsDiff(_ a: ArraySlice<Float>, _ b: ArraySlice<Float>) -> Float {
    zip(a, b).reduce(0) { max($0, abs($1.0 - $1.1)) }
}
