import AttuneEventLog
import AttuneModel
import Foundation

/// A fresh folder holding a tiny random GGUF (over `testVocabulary`) and an embedded log with
/// the repository's topics applied: what tests that run `attune` processes start from.
public struct TinyLogFixture: Sendable {
    public static let config = LlamaConfig(layers: 2, dim: 64, ffnDim: 96, heads: 4, kvHeads: 2, vocabSize: 80, contextLength: 128)
    public static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    public let dir: URL
    /// Path of the tiny GGUF.
    public let model: String
    public let logDir: String
    public let log: EmbeddedEventLog
    public let catalog: TopicCatalog

    public init(_ name: String) async throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("attune-\(name)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        model = dir.appendingPathComponent("tiny.gguf").path
        try RandomModel.write(Self.config, to: model, vocabulary: testVocabulary)
        logDir = dir.appendingPathComponent("log").path
        log = EmbeddedEventLog(directory: logDir)
        catalog = try TopicCatalog(directory: Self.repository.appendingPathComponent("topics").path)
        let admin = try log.makeAdmin()
        _ = try await catalog.apply(to: admin, dryRun: false)
        await admin.close()
    }

    public func remove() {
        try? FileManager.default.removeItem(at: dir)
    }
}
