/// A set of static policies, templates and template-linked policies, indexed by scope.
///
/// Each policy sits in exactly one bucket per scope dimension (principal, action, resource): the entity its
/// constraint names, the entity type of an `is` constraint, or the unconstrained bucket. A request looks up only the
/// buckets that can match it and walks the smallest dimension, so the cost of a decision grows with the number of
/// policies that could apply, not with the size of the set.
public struct PolicySet: Sendable {
    /// Policies that take part in authorization (static and linked), in insertion order.
    public private(set) var policies: [Policy] = []
    /// Templates by id.
    public private(set) var templates: [String: Policy] = [:]
    /// Template order, for stable output.
    public private(set) var templateIDs: [String] = []
    /// For each linked policy id: its template id and slot values.
    public private(set) var links: [String: Link] = [:]
    private var ids: Set<String> = []
    private(set) var index = ScopeIndex()

    /// A template link.
    public struct Link: Sendable, Hashable {
        public let templateID: String
        public let values: [SlotID: EntityUID]
    }

    /// An empty policy set.
    public init() {}

    /// Parses Cedar policy text; static policies and templates get ids `policy0`, `policy1`, ... in file order.
    public init(text: String, idPrefix: String = "policy") throws(CedarError) {
        for p in try Parser.parsePolicies(text, idPrefix: idPrefix) {
            try add(p)
        }
    }

    /// Builds a policy set from policies and templates (a policy with a slot is a template).
    public init(_ policies: [Policy]) throws(CedarError) {
        for p in policies { try add(p) }
    }

    /// Adds a static policy or a template. Ids must be unique across policies, templates and links.
    public mutating func add(_ policy: Policy) throws(CedarError) {
        guard ids.insert(policy.id).inserted else {
            throw CedarError(.policySet, "duplicate policy id \"\(policy.id)\"")
        }
        if policy.isTemplate {
            templates[policy.id] = policy
            templateIDs.append(policy.id)
        } else {
            index.insert(policy, at: policies.count)
            policies.append(policy)
        }
    }

    /// Links a template: fills its slots with `values` and adds the result under `newID`.
    public mutating func link(template templateID: String, newID: String, values: [SlotID: EntityUID])
        throws(CedarError)
    {
        guard let t = templates[templateID] else {
            throw CedarError(.link, "no template with id \"\(templateID)\"")
        }
        func fill(_ c: ScopeConstraint) throws(CedarError) -> ScopeConstraint {
            func ref(_ r: EntityReference) throws(CedarError) -> EntityReference {
                guard case .slot(let s) = r else { return r }
                guard let v = values[s] else {
                    throw CedarError(.link, "template \"\(templateID)\" needs a value for \(s.rawValue)")
                }
                return .entity(v)
            }
            switch c {
            case .any, .isType: return c
            case .equals(let r): return .equals(try ref(r))
            case .in(let r): return .in(try ref(r))
            case .isTypeIn(let type, let r): return .isTypeIn(type, try ref(r))
            }
        }
        let used = Set([t.principal.slot, t.resource.slot].compactMap { $0 })
        for key in values.keys where !used.contains(key) {
            throw CedarError(.link, "template \"\(templateID)\" has no slot \(key.rawValue)")
        }
        var p = t
        p.id = newID
        p.principal = try fill(t.principal)
        p.resource = try fill(t.resource)
        guard ids.insert(newID).inserted else {
            throw CedarError(.policySet, "duplicate policy id \"\(newID)\"")
        }
        links[newID] = Link(templateID: templateID, values: values)
        index.insert(p, at: policies.count)
        policies.append(p)
    }

    /// The policy (static or linked) with this id.
    public func policy(_ id: String) -> Policy? { policies.first { $0.id == id } }
}

/// The scope index: policy positions bucketed by the pair (principal key, resource key) of their scope.
///
/// A key is "unconstrained", an entity (for `==`, `in` and `is ... in`, the entity named) or an entity type (for
/// `is`). Entities and types named by scopes are interned to small integers when policies are added, so that a
/// request only hashes its principal, resource and their ancestors once each, and then probes a few integer pair keys:
/// (1 + 1 + ancestors) x (1 + 1 + ancestors) lookups that return exactly the policies whose principal and resource
/// constraints can match. The action constraint and the exact operators are checked per candidate.
struct ScopeIndex: Sendable {
    private var entityIDs: [EntityUID: UInt32] = [:]
    private var typeIDs: [EntityType: UInt32] = [:]
    private var table = IntTable()
    private var buckets: [[Int32]] = []
    /// The policies in insertion order, boxed so that evaluation reads them without copying.
    private(set) var boxes: [PolicyBox] = []

    private static let unconstrained: UInt32 = 0

    private mutating func key(_ c: ScopeConstraint) -> UInt32 {
        func entityKey(_ e: EntityUID) -> UInt32 {
            if let id = entityIDs[e] { return id }
            let id = UInt32(entityIDs.count + 1) << 1 | 1
            entityIDs[e] = id
            return id
        }
        switch c {
        case .any: return Self.unconstrained
        case .equals(.entity(let e)), .in(.entity(let e)), .isTypeIn(_, .entity(let e)): return entityKey(e)
        case .isType(let t):
            if let id = typeIDs[t] { return id }
            let id = UInt32(typeIDs.count + 1) << 1
            typeIDs[t] = id
            return id
        case .equals(.slot), .in(.slot), .isTypeIn(_, .slot): return Self.unconstrained  // never indexed
        }
    }

    mutating func insert(_ p: Policy, at position: Int) {
        let k = UInt64(key(p.principal)) << 32 | UInt64(key(p.resource))
        if let b = table[k] {
            buckets[Int(b)].append(Int32(position))
        } else {
            table.insert(k, Int32(buckets.count))
            buckets.append([Int32(position)])
        }
        boxes.append(PolicyBox(p))
    }

    /// The index keys that a request's principal or resource can match: unconstrained, its type, itself and each
    /// ancestor (only those that some policy names).
    func keys(for uid: EntityUID, ancestors: Set<EntityUID>, into keys: inout [UInt32]) {
        keys.append(Self.unconstrained)
        if let t = typeIDs[uid.type] { keys.append(t) }
        guard !entityIDs.isEmpty else { return }
        if let e = entityIDs[uid] { keys.append(e) }
        for a in ancestors {
            if let e = entityIDs[a] { keys.append(e) }
        }
    }

    /// Positions of the policies whose principal and resource constraints can match, in ascending order.
    func candidates(
        principal: EntityUID, principalAncestors: Set<EntityUID>, resource: EntityUID,
        resourceAncestors: Set<EntityUID>
    ) -> [Int32] {
        var pk: [UInt32] = []
        var rk: [UInt32] = []
        pk.reserveCapacity(principalAncestors.count + 3)
        rk.reserveCapacity(resourceAncestors.count + 3)
        keys(for: principal, ancestors: principalAncestors, into: &pk)
        keys(for: resource, ancestors: resourceAncestors, into: &rk)
        var out: [Int32] = []
        var lists = 0
        for p in pk {
            let high = UInt64(p) << 32
            for r in rk {
                if let b = table[high | UInt64(r)] {
                    out.append(contentsOf: buckets[Int(b)])
                    lists += 1
                }
            }
        }
        // Each policy sits in exactly one bucket and the keys are distinct, so there are no duplicates.
        if lists > 1 { out.sort() }
        return out
    }
}

/// A policy held by reference in the index, with its conditions constant-folded for evaluation (the policy set
/// keeps the policy as written for export).
final class PolicyBox: Sendable {
    let id: String
    let effect: Effect
    let principal: ScopeConstraint
    let action: ActionConstraint
    let resource: ScopeConstraint
    let conditions: [Condition]

    init(_ policy: Policy) {
        id = policy.id
        effect = policy.effect
        principal = policy.principal
        action = policy.action
        resource = policy.resource
        conditions = policy.conditions.map { Condition($0.kind, ConstantFolding.fold($0.body)) }
    }
}

/// An open-addressing hash table from our own interned 64-bit keys to bucket numbers. The keys are small integers
/// that Warden assigns (never chosen by a requester), so a multiplicative hash is safe and avoids SipHash per probe.
struct IntTable: Sendable {
    private var keys: [UInt64] = Array(repeating: .max, count: 16)
    private var values: [Int32] = Array(repeating: -1, count: 16)
    private var count = 0

    private static func slot(_ k: UInt64, _ mask: Int) -> Int {
        Int(truncatingIfNeeded: (k &* 0x9E37_79B9_7F4A_7C15) >> 32) & mask
    }

    subscript(key: UInt64) -> Int32? {
        let mask = keys.count - 1
        var i = Self.slot(key, mask)
        while true {
            let k = keys[i]
            if k == key { return values[i] }
            if k == .max { return nil }
            i = (i + 1) & mask
        }
    }

    mutating func insert(_ key: UInt64, _ value: Int32) {
        if (count + 1) * 2 > keys.count { grow() }
        let mask = keys.count - 1
        var i = Self.slot(key, mask)
        while keys[i] != .max && keys[i] != key { i = (i + 1) & mask }
        if keys[i] == .max { count += 1 }
        keys[i] = key
        values[i] = value
    }

    private mutating func grow() {
        let oldKeys = keys
        let oldValues = values
        keys = Array(repeating: .max, count: oldKeys.count * 2)
        values = Array(repeating: -1, count: oldKeys.count * 2)
        count = 0
        for (i, k) in oldKeys.enumerated() where k != .max { insert(k, oldValues[i]) }
    }
}
