import ArgumentParser
import AttuneEvaluation
import AttuneRegistry
import Foundation

/// `attune report`: one self-contained HTML page with the plots, and the same numbers as JSON.
struct ReportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Write an evaluation report: report.html (self-contained, with plots) and report.json.",
        discussion: "Per adapter: training and gate losses and freshness over its last versions; per tenant: base vs domain vs personalized on its interactions; per lineage: the forgetting matrix with backward and forward transfer; acceptance rate per served version.")
    @OptionGroup var registryOptions: RegistryOptions
    @OptionGroup var baseModel: BaseModelOption
    @Option(help: "Output folder (created if missing).") var out = "attune-report"
    @Option(help: "The latest versions of each adapter to report.") var last = 8

    func validate() throws {
        guard last >= 1 else { throw ValidationError("--last must be at least 1") }
    }

    func run() async throws {
        let folder = URL(fileURLWithPath: out)
        do {
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            guard FileManager.default.isWritableFile(atPath: folder.path) else { throw CocoaError(.fileWriteNoPermission) }
        } catch {
            throw ValidationError("cannot write the report to \(out): \((error as NSError).localizedDescription)")
        }
        let (model, tokenizer) = try baseModel.load()
        try await reportingErrors {
            let registry = try await registryOptions.open()
            let data: ReportData
            do {
                data = try await ReportData.gather(registry: registry, log: try registryOptions.transport.existingLog(), model: model,
                                                   tokenizer: tokenizer, interactionsTopic: registryOptions.topicPrefix + "attune.interactions",
                                                   last: last) { FileHandle.standardError.write(Data("attune: \($0)\n".utf8)) }
            } catch {
                await registry.close()
                throw error
            }
            await registry.close()
            if data.adapters.isEmpty {
                FileHandle.standardError.write(Data("attune: no adapter is published yet; the report is empty\n".utf8))
            }
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
            try encoder.encode(data).write(to: folder.appendingPathComponent("report.json"), options: .atomic)
            try Data(try ReportPage.html(data).utf8).write(to: folder.appendingPathComponent("report.html"), options: .atomic)
            emit(folder.appendingPathComponent("report.html").path)
            emit(folder.appendingPathComponent("report.json").path)
        }
    }
}
