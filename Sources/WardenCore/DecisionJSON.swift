import Cedar

/// The JSON shape of a decision printed by `warden policy authorize`:
/// `{"decision": "allow"|"deny", "reasons": [ids], "errors": [ids], "diagnostics": [{"policy", "message"}]}`.
/// A policy is named by its `@id` when it has one (`names`: position id → `@id`), else by its position id.
public enum DecisionJSON {
    public static func encode(_ r: Response, names: [String: String] = [:]) -> JSONValue {
        func name(_ id: String) -> JSONValue { .string(names[id] ?? id) }
        return .object([
            ("decision", .string(r.decision.rawValue)),
            ("reasons", .array(r.reasons.map(name))),
            ("errors", .array(r.errors.map { name($0.policyID) })),
            (
                "diagnostics",
                .array(r.errors.map { .object([("policy", name($0.policyID)), ("message", .string($0.message))]) })
            ),
        ])
    }
}

/// Median and 99th percentile of a list of durations.
public struct LatencyStats: Sendable {
    public let medianMicros: Double
    public let p99Micros: Double

    public init(_ samples: [Duration]) {
        let sorted = samples.map { Double($0.components.attoseconds) / 1e12 + Double($0.components.seconds) * 1e6 }
            .sorted()
        func pct(_ p: Double) -> Double {
            guard !sorted.isEmpty else { return 0 }
            let i = min(sorted.count - 1, Int((p * Double(sorted.count - 1)).rounded()))
            return (sorted[i] * 100).rounded() / 100
        }
        medianMicros = pct(0.5)
        p99Micros = pct(0.99)
    }
}
