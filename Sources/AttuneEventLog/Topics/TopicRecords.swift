import Foundation

/// An interaction on `attune.interactions` (schema `interaction.v1`): what a tenant's user
/// asked, what the model answered, and what the user made of it.
public struct Interaction: Codable, Sendable, Equatable {
    public var id: String?
    public var tenant: String
    public var user: String
    public var time: String
    public var prompt: String
    public var response: String
    /// `up`, `down` or `none`.
    public var feedback: String?
    /// The answer the user wanted instead.
    public var correction: String?
    /// `name@version` of the adapter that produced `response`, when Attune served it.
    public var served_by: String?

    public init(id: String? = nil, tenant: String, user: String, time: String, prompt: String, response: String,
                feedback: String? = nil, correction: String? = nil, served_by: String? = nil) {
        self.id = id
        self.tenant = tenant
        self.user = user
        self.time = time
        self.prompt = prompt
        self.response = response
        self.feedback = feedback
        self.correction = correction
        self.served_by = served_by
    }
}

/// A document (or one chunk of one) of a domain corpus on `attune.corpora` (schema `corpus-document.v1`).
public struct CorpusDocument: Codable, Sendable, Equatable {
    public var domain: String
    public var doc_id: String
    public var chunk: Int?
    public var chunks: Int?
    public var text: String
    public var source: String
    public var license: String?
}
