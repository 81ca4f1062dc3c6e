/// A JSON Schema restricted to the keywords Attune's payload schemas use: `type`,
/// `required`, `properties`, `additionalProperties`, `items`, `enum`, `minLength`,
/// `maxLength`, `minimum`, `maximum`. Loading a schema with any other validation keyword
/// fails, so a schema never silently validates less than it says.
public struct JSONSchema: Sendable {
    private let schema: [String: JSONValue]

    static let annotations: Set<String> = ["$schema", "$id", "$comment", "title", "description", "examples", "default", "format"]
    static let keywords: Set<String> = ["type", "required", "properties", "additionalProperties", "items", "enum",
                                        "minLength", "maxLength", "minimum", "maximum"]
    static let types: Set<String> = ["null", "boolean", "integer", "number", "string", "array", "object"]

    public init(_ value: JSONValue, path: String = "#") throws {
        guard case .object(let schema) = value else { throw Self.invalid(path, "a schema must be an object") }
        for key in schema.keys where !Self.keywords.contains(key) && !Self.annotations.contains(key) {
            throw Self.invalid(path, "unsupported keyword \"\(key)\"")
        }
        if let type = schema["type"] {
            let names: [JSONValue] = if case .array(let list) = type { list } else { [type] }
            for name in names {
                guard case .string(let n) = name, Self.types.contains(n) else { throw Self.invalid(path, "bad type \(name)") }
            }
        }
        if case .object(let properties)? = schema["properties"] {
            for (name, sub) in properties { _ = try JSONSchema(sub, path: "\(path)/properties/\(name)") }
        } else if schema["properties"] != nil {
            throw Self.invalid(path, "properties must be an object")
        }
        if case .object? = schema["additionalProperties"] { _ = try JSONSchema(schema["additionalProperties"]!, path: "\(path)/additionalProperties") }
        if let items = schema["items"] { _ = try JSONSchema(items, path: "\(path)/items") }
        if let required = schema["required"] {
            guard case .array(let names) = required, names.allSatisfy({ if case .string = $0 { true } else { false } }) else {
                throw Self.invalid(path, "required must be an array of strings")
            }
        }
        for key in ["minLength", "maxLength"] {
            if let bound = schema[key], case .integer = bound {} else if schema[key] != nil { throw Self.invalid(path, "\(key) must be an integer") }
        }
        self.schema = schema
    }

    public init(bytes: [UInt8]) throws {
        try self.init(try JSONValue.parse(bytes))
    }

    private static func invalid(_ path: String, _ message: String) -> EventLogError {
        EventLogError(.invalidConfiguration, "invalid schema at \(path): \(message)")
    }

    /// Every violation, as "path: problem"; empty when the value is valid.
    public func violations(of value: JSONValue, at path: String = "$") -> [String] {
        var problems: [String] = []
        if let type = schema["type"] {
            let allowed: [String] = if case .array(let list) = type {
                list.compactMap { if case .string(let s) = $0 { s } else { nil } }
            } else if case .string(let s) = type { [s] } else { [] }
            let actual = value.typeName
            if !(allowed.contains(actual) || (actual == "integer" && allowed.contains("number"))) {
                return ["\(path): expected \(allowed.joined(separator: " or ")), got \(actual)"]
            }
        }
        if case .array(let options)? = schema["enum"], !options.contains(value) {
            let shown = options.map(Self.render).joined(separator: ", ")
            problems.append("\(path): \(Self.render(value)) is not one of \(shown)")
        }
        switch value {
        case .string(let text):
            let length = text.count
            if case .integer(let min)? = schema["minLength"], length < min {
                problems.append("\(path): shorter than \(min) characters")
            }
            if case .integer(let max)? = schema["maxLength"], length > max {
                problems.append("\(path): longer than \(max) characters")
            }
        case .integer, .number:
            let number: Double = if case .integer(let i) = value { Double(i) } else if case .number(let d) = value { d } else { 0 }
            if let min = Self.number(schema["minimum"]), number < min { problems.append("\(path): less than \(Self.render(schema["minimum"]!))") }
            if let max = Self.number(schema["maximum"]), number > max { problems.append("\(path): greater than \(Self.render(schema["maximum"]!))") }
        case .array(let items):
            if let itemSchema = schema["items"], let sub = try? JSONSchema(itemSchema) {
                for (i, item) in items.enumerated() { problems += sub.violations(of: item, at: "\(path)[\(i)]") }
            }
        case .object(let members):
            if case .array(let required)? = schema["required"] {
                for case .string(let name) in required where members[name] == nil {
                    problems.append("\(path): required property \"\(name)\" is missing")
                }
            }
            var properties: [String: JSONValue] = [:]
            if case .object(let declared)? = schema["properties"] { properties = declared }
            for (name, member) in members.sorted(by: { $0.key < $1.key }) {
                if let sub = properties[name].flatMap({ try? JSONSchema($0) }) {
                    problems += sub.violations(of: member, at: "\(path).\(name)")
                } else {
                    switch schema["additionalProperties"] {
                    case .bool(false)?: problems.append("\(path): property \"\(name)\" is not allowed")
                    case .object?: if let sub = try? JSONSchema(schema["additionalProperties"]!) {
                        problems += sub.violations(of: member, at: "\(path).\(name)")
                    }
                    default: break
                    }
                }
            }
        default:
            break
        }
        return problems
    }

    private static func number(_ value: JSONValue?) -> Double? {
        switch value {
        case .integer(let i)?: Double(i)
        case .number(let d)?: d
        default: nil
        }
    }

    private static func render(_ value: JSONValue) -> String {
        switch value {
        case .string(let s): "\"\(s)\""
        case .integer(let i): String(i)
        case .number(let d): String(d)
        case .bool(let b): String(b)
        case .null: "null"
        case .array: "an array"
        case .object: "an object"
        }
    }
}
