/// The forgetting view of a lineage: `value[i][j]` is a metric (higher is better, e.g.
/// next-token accuracy) of the model after training step i on evaluation set j, where set j
/// is what step j trained on; `initial[j]` is the model before any step on set j.
/// Backward and forward transfer follow Lopez-Paz & Ranzato (GEM, 2017), as Avalanche's
/// `StreamBWT` and `StreamForwardTransfer` report them.
public struct TransferMatrix: Sendable, Equatable, Codable {
    public var value: [[Double]]
    public var initial: [Double]

    public init(value: [[Double]], initial: [Double]) {
        precondition(value.allSatisfy { $0.count == value.count } && initial.count == value.count,
                     "a transfer matrix is square, with one initial value per set")
        self.value = value
        self.initial = initial
    }

    public var steps: Int { value.count }

    /// BWT = 1/(T−1) Σ_{i<T} (R[T][i] − R[i][i]): how the last model does on each earlier set
    /// compared with right after learning it (negative = forgetting). Nil for fewer than 2 steps.
    public var backwardTransfer: Double? {
        let t = steps
        guard t >= 2 else { return nil }
        return (0..<(t - 1)).map { value[t - 1][$0] - value[$0][$0] }.reduce(0, +) / Double(t - 1)
    }

    /// FWT = 1/(T−1) Σ_{i≥2} (R[i−1][i] − b[i]): how much the model before step i already does
    /// on set i beyond the initial model. Nil for fewer than 2 steps.
    public var forwardTransfer: Double? {
        let t = steps
        guard t >= 2 else { return nil }
        return (1..<t).map { value[$0 - 1][$0] - initial[$0] }.reduce(0, +) / Double(t - 1)
    }

    /// Forgetting of set j: the best it was ever done after learning it, minus the last model's.
    public var forgetting: [Double] {
        (0..<steps).map { j in (j..<steps).map { value[$0][j] }.max()! - value[steps - 1][j] }
    }

    enum CodingKeys: String, CodingKey { case value, initial, backwardTransfer, forwardTransfer, forgetting }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let value = try c.decode([[Double]].self, forKey: .value), initial = try c.decode([Double].self, forKey: .initial)
        guard value.allSatisfy({ $0.count == value.count }), initial.count == value.count else {
            throw DecodingError.dataCorruptedError(forKey: .value, in: c, debugDescription: "a transfer matrix is square, with one initial value per set")
        }
        self.init(value: value, initial: initial)
    }

    /// The matrix with its derived numbers, so readers of the JSON need not recompute them.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(value, forKey: .value)
        try c.encode(initial, forKey: .initial)
        try c.encodeIfPresent(backwardTransfer, forKey: .backwardTransfer)
        try c.encodeIfPresent(forwardTransfer, forKey: .forwardTransfer)
        try c.encode(forgetting, forKey: .forgetting)
    }
}
