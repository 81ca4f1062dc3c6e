import AttuneRegistry

/// `"tenant/acme"` as an `AdapterName` in tests (a malformed literal is a test bug).
extension AdapterName: ExpressibleByStringLiteral {
    public init(stringLiteral text: String) {
        guard let name = AdapterName(parsing: text) else { preconditionFailure("not an adapter name: \(text)") }
        self = name
    }
}
