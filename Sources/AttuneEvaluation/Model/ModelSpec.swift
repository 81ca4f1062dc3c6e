import AttuneModel
import AttuneRegistry
import AttuneTraining
import Foundation

/// What `attune eval` evaluates: `base`, a published adapter (`domain/X`, `tenant/Y` — its
/// latest version — or `name@version`; a tenant version stands on the domain version its
/// release names), an adapter folder (PEFT LoRA or bottleneck), or a stack of these joined by
/// `+`, lowest first (`domain/legal@2+./my-adapter`).
public struct ModelSpec: Sendable, Equatable, CustomStringConvertible {
    public enum Part: Sendable, Equatable {
        case published(AdapterReference)
        case folder(String)
    }

    public let parts: [Part]
    public let description: String

    /// Parses a spec; a part that is neither `base`, an adapter reference nor an existing
    /// folder is an error that says which.
    public init(parsing text: String) throws {
        description = text
        guard text != "base" else {
            parts = []
            return
        }
        parts = try text.split(separator: "+", omittingEmptySubsequences: false).map { piece in
            let part = String(piece)
            if let reference = AdapterReference(parsing: part) { return .published(reference) }
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: part, isDirectory: &isDirectory), isDirectory.boolValue else {
                throw EvaluationError("model \"\(text)\": \(part.isEmpty ? "an empty part" : "\"\(part)\"") is not base, "
                                            + "domain/<id>, tenant/<id>, <name>@<version> or an adapter folder")
            }
            return .folder(part)
        }
    }

    /// Whether resolving the spec needs the published adapters.
    public var needsRegistry: Bool { parts.contains { if case .published = $0 { true } else { false } } }

    /// The adapter stack (nil for the base) and the exact versions it holds (`name@version`).
    public func load(for model: LlamaModel, registry: AdapterRegistry?) async throws -> (adapter: (any LinearAdapter)?, versions: [String]) {
        var adapters: [any LinearAdapter] = [], versions: [String] = []
        for part in parts {
            switch part {
            case .folder(let path):
                adapters.append(try AdapterFiles.load(from: URL(fileURLWithPath: path), model: model.config))
            case .published(let reference):
                guard let registry else { throw EvaluationError("\(reference) needs the event log that holds it") }
                var releases = [try await registry.resolve(reference)]
                if releases[0].name?.standsOnDomain == true, let domain = releases[0].domainReference {
                    releases.insert(try await registry.resolve(domain), at: 0)
                }
                for release in releases {
                    adapters.append(try PEFTAdapterFile.decode(published: Data(try await registry.weights(of: release)), model: model.config))
                    versions.append(release.id)
                }
            }
        }
        if adapters.isEmpty { return (nil, []) }
        return (adapters.count == 1 ? adapters[0] : AdapterStack(adapters), versions)
    }
}
