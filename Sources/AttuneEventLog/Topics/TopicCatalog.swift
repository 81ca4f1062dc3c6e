import Foundation

/// One topic declared as code (`topics/<name>.json`).
public struct TopicDefinition: Codable, Hashable, Sendable {
    /// What a record's value is and which schema it follows.
    public struct Payload: Codable, Hashable, Sendable {
        /// `json` (validated against `schema`) or `binary` (opaque bytes).
        public var format: String
        /// File under `topics/schemas/`.
        public var schema: String?
        /// Stamped on produced records as the `attune-schema-version` header.
        public var schemaVersion: Int?
    }

    public var name: String
    public var description: String?
    /// What the record key holds (documentation).
    public var key: String?
    public var partitions: Int
    public var replicationFactor: Int
    public var configs: [String: String]
    public var value: Payload
    /// Schema (under `topics/schemas/`) for the headers, read as an object of strings.
    public var headersSchema: String?

    public var spec: TopicSpec {
        TopicSpec(name: name, partitions: partitions, replicationFactor: replicationFactor, configs: configs)
    }
}

/// The header carrying the value schema's version.
public let schemaVersionHeader = "attune-schema-version"

/// All declared topics and their schemas, loaded from a `topics/` directory.
public struct TopicCatalog: Sendable {
    public let topics: [String: TopicDefinition]
    private let valueSchemas: [String: JSONSchema]
    private let headerSchemas: [String: JSONSchema]

    /// Loads every definition of `directory`; `namePrefix` goes before every topic name but
    /// the DLQ's, for a deployment on prefixed topics (`staging.` → `staging.attune.corpora`).
    /// A directory that cannot be read is an error, never an empty catalog.
    public init(directory: String, namePrefix: String = "") throws {
        let fm = FileManager.default
        guard let names = try? fm.contentsOfDirectory(atPath: directory) else {
            throw EventLogError(.invalidConfiguration, "cannot read topic directory \(directory)")
        }
        var files: [String: [UInt8]] = [:]
        for name in names where name.hasSuffix(".json") {
            files[name] = Array(fm.contents(atPath: "\(directory)/\(name)") ?? Data())
        }
        for name in (try? fm.contentsOfDirectory(atPath: "\(directory)/schemas")) ?? [] where name.hasSuffix(".json") {
            files["schemas/" + name] = Array(fm.contents(atPath: "\(directory)/schemas/\(name)") ?? Data())
        }
        try self.init(files: files, origin: directory, namePrefix: namePrefix)
    }

    /// The topic contracts built into this binary (a copy of the repository's `topics/`, kept
    /// identical by a test), so the commands work from any folder.
    public static func builtin(namePrefix: String = "") throws -> TopicCatalog {
        try TopicCatalog(files: BuiltinTopics.files.mapValues { Array($0.utf8) }, origin: "built-in topics", namePrefix: namePrefix)
    }

    /// The catalog of `directory` when one is given (it must be readable), else the built-in one.
    public static func load(directory: String?, namePrefix: String = "") throws -> TopicCatalog {
        if let directory { return try TopicCatalog(directory: directory, namePrefix: namePrefix) }
        return try builtin(namePrefix: namePrefix)
    }

    /// Loads definitions (`<name>.json`) and schemas (`schemas/<file>.json`) given as file
    /// contents by relative path; `origin` names them in errors.
    public init(files: [String: [UInt8]], origin: String, namePrefix: String = "") throws {
        var topics: [String: TopicDefinition] = [:]
        var valueSchemas: [String: JSONSchema] = [:]
        var headerSchemas: [String: JSONSchema] = [:]
        func loadSchema(_ file: String) throws -> JSONSchema {
            let path = "\(origin)/schemas/\(file)"
            guard let data = files["schemas/" + file] else { throw EventLogError(.invalidConfiguration, "missing schema \(path)") }
            do { return try JSONSchema(bytes: data) } catch let error as EventLogError {
                throw EventLogError(.invalidConfiguration, "\(path): \(error.message)")
            }
        }
        for file in files.keys.sorted() where !file.contains("/") {
            let path = "\(origin)/\(file)"
            var definition: TopicDefinition
            do {
                definition = try JSONDecoder().decode(TopicDefinition.self, from: Data(files[file]!))
            } catch {
                throw EventLogError(.invalidConfiguration, "\(path): not a topic definition: \(error)")
            }
            if definition.name != DeadLetter.topic { definition.name = namePrefix + definition.name }
            try TopicNames.validate(definition.name)
            try TopicConfigs.validate(definition.configs, topic: definition.name)
            guard definition.partitions > 0, definition.replicationFactor > 0 else {
                throw EventLogError(.invalidConfiguration, "\(path): partitions and replicationFactor must be positive")
            }
            guard topics[definition.name] == nil else { throw EventLogError(.invalidConfiguration, "\(path): topic \(definition.name) declared twice") }
            switch (definition.value.format, definition.value.schema) {
            case ("json", let schema?): valueSchemas[definition.name] = try loadSchema(schema)
            case ("binary", nil): break
            default: throw EventLogError(.invalidConfiguration, "\(path): value needs format json with a schema, or format binary")
            }
            if let schema = definition.headersSchema { headerSchemas[definition.name] = try loadSchema(schema) }
            topics[definition.name] = definition
        }
        self.topics = topics
        self.valueSchemas = valueSchemas
        self.headerSchemas = headerSchemas
    }

    /// Checks a record's value and headers against its topic's schemas, including the
    /// schema version a producer stamped. Topics not in the catalog pass unchecked.
    public func validate(topic: String, value: [UInt8]?, headers: [EventHeader]) throws {
        guard let definition = topics[topic] else { return }
        var problems: [String] = []
        if let version = headers.text(named: schemaVersionHeader), let expected = definition.value.schemaVersion,
           version != String(expected) {
            throw EventLogError(.invalidPayload, "\(topic): schema version \(version), expected \(expected)")
        }
        if let schema = valueSchemas[topic] {
            guard let value else { throw EventLogError(.invalidPayload, "\(topic): value is missing (null)") }
            problems += schema.violations(of: try jsonValue(value, topic: topic))
        }
        if let schema = headerSchemas[topic] {
            var object: [String: JSONValue] = [:]
            for header in headers where header.name != schemaVersionHeader {
                object[header.name] = header.value.map { .string(String(decoding: $0, as: UTF8.self)) } ?? .null
            }
            problems += schema.violations(of: .object(object), at: "headers").map { $0 }
        }
        if !problems.isEmpty {
            throw EventLogError(.invalidPayload, "\(topic): " + problems.joined(separator: "; "))
        }
    }

    private func jsonValue(_ bytes: [UInt8], topic: String) throws -> JSONValue {
        do { return try JSONValue.parse(bytes) } catch let error as EventLogError {
            throw EventLogError(.invalidPayload, "\(topic): \(error.message)")
        }
    }

    /// Validates a record to produce and stamps its schema version.
    public func prepare(_ record: ProducerRecord) throws -> ProducerRecord {
        try validate(topic: record.topic, value: record.value, headers: record.headers)
        guard let version = topics[record.topic]?.value.schemaVersion,
              record.headers.value(named: schemaVersionHeader) == nil else { return record }
        var stamped = record
        stamped.headers.append(EventHeader(schemaVersionHeader, String(version)))
        return stamped
    }
}

/// What `topics apply` found for one declared topic.
public struct TopicPlanItem: Hashable, Sendable, CustomStringConvertible {
    public enum Action: Hashable, Sendable {
        /// Missing; created (or would be, in a dry run).
        case create
        /// Exists as declared.
        case unchanged
        /// Exists but differs; topics are never altered automatically.
        case drift([String])
    }

    public var topic: String
    public var action: Action
    public var spec: TopicSpec

    public var description: String {
        switch action {
        case .create: "create    \(topic) (partitions \(spec.partitions), replication \(spec.replicationFactor))"
        case .unchanged: "ok        \(topic)"
        case .drift(let differences): "drift     \(topic): " + differences.joined(separator: "; ")
        }
    }
}

extension TopicCatalog {
    /// Compares the declared topics with what exists; with `dryRun` false, creates the missing
    /// ones. Replication is capped at `maxReplicationFactor` (a single-broker test cluster).
    /// A topic that another process creates concurrently is compared like any existing one.
    public func apply(to admin: any EventLogAdmin, dryRun: Bool, maxReplicationFactor: Int? = nil) async throws -> [TopicPlanItem] {
        var plan: [TopicPlanItem] = []
        for definition in topics.values.sorted(by: { $0.name < $1.name }) {
            var spec = definition.spec
            if let cap = maxReplicationFactor { spec.replicationFactor = min(spec.replicationFactor, max(1, cap)) }
            var found = try await admin.describeTopic(spec.name)
            if found == nil {
                do {
                    if !dryRun { try await admin.createTopic(spec) }
                    plan.append(TopicPlanItem(topic: spec.name, action: .create, spec: spec))
                    continue
                } catch let error as EventLogError where error.kind == .topicExists {
                    found = try await admin.describeTopic(spec.name)
                }
            }
            guard let existing = found else { throw EventLogError(.unknownTopic, "topic \(spec.name) vanished while being applied") }
            var differences: [String] = []
            if existing.partitions != spec.partitions {
                differences.append("partitions \(existing.partitions), declared \(spec.partitions)")
            }
            if existing.replicationFactor != spec.replicationFactor {
                differences.append("replication \(existing.replicationFactor), declared \(spec.replicationFactor)")
            }
            for (key, value) in spec.configs.sorted(by: { $0.key < $1.key }) {
                if let actual = existing.configs[key], actual != value {
                    differences.append("\(key) \(actual), declared \(value)")
                }
            }
            plan.append(TopicPlanItem(topic: spec.name, action: differences.isEmpty ? .unchanged : .drift(differences), spec: spec))
        }
        return plan
    }
}
