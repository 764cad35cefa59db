import Cedar

/// The policies a change adds, removes and changes (by id: `@id`, or file and position), comparing each policy's
/// printed form, so a change of layout or comments alone is no change.
public struct PolicyChanges: Sendable, Equatable {
    public let added: [String]
    public let removed: [String]
    public let changed: [String]

    public init(old: PolicyEngine.Snapshot, new: PolicyEngine.Snapshot) {
        func texts(_ s: PolicyEngine.Snapshot) -> [String: String] {
            Dictionary(s.policies.policies.map { ($0.id, CedarPrinter.text($0)) }, uniquingKeysWith: { a, _ in a })
        }
        let (before, after) = (texts(old), texts(new))
        added = new.policies.policies.map(\.id).filter { before[$0] == nil }
        removed = old.policies.policies.map(\.id).filter { after[$0] == nil }
        changed = new.policies.policies.map(\.id).filter { id in before[id].map { $0 != after[id] } ?? false }
    }

    public var json: JSONValue {
        .object([
            ("added", .array(added.map { .string($0) })), ("removed", .array(removed.map { .string($0) })),
            ("changed", .array(changed.map { .string($0) })),
        ])
    }
}
