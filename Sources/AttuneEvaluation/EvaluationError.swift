/// Bad evaluation input (a file, a model spec, an empty set), with a message that says what to fix.
public struct EvaluationError: Error, CustomStringConvertible, Equatable {
    public let description: String

    public init(_ description: String) {
        self.description = description
    }
}
