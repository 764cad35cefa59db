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

/// The scope index: for each dimension, buckets of policy positions.
struct ScopeIndex: Sendable {
    struct Dimension: Sendable {
        var unconstrained: [Int32] = []
        var byEntity: [EntityUID: [Int32]] = [:]
        var byType: [EntityType: [Int32]] = [:]

        mutating func insert(_ i: Int32, principalOrResource c: ScopeConstraint) {
            switch c {
            case .any: unconstrained.append(i)
            case .equals(.entity(let e)), .in(.entity(let e)), .isTypeIn(_, .entity(let e)):
                byEntity[e, default: []].append(i)
            case .isType(let t): byType[t, default: []].append(i)
            case .equals(.slot), .in(.slot), .isTypeIn(_, .slot): break  // templates are not indexed
            }
        }

        /// The buckets that can hold policies matching `uid` (with its ancestors), and their total size.
        func buckets(for uid: EntityUID, ancestors: Set<EntityUID>, into out: inout [[Int32]]) -> Int {
            var total = 0
            func add(_ b: [Int32]?) {
                guard let b, !b.isEmpty else { return }
                out.append(b)
                total += b.count
            }
            add(unconstrained)
            if !byEntity.isEmpty {
                add(byEntity[uid])
                for a in ancestors { add(byEntity[a]) }
            }
            if !byType.isEmpty { add(byType[uid.type]) }
            return total
        }
    }

    var principal = Dimension()
    var action = Dimension()
    var resource = Dimension()

    mutating func insert(_ p: Policy, at position: Int) {
        let i = Int32(position)
        principal.insert(i, principalOrResource: p.principal)
        resource.insert(i, principalOrResource: p.resource)
        switch p.action {
        case .any: action.unconstrained.append(i)
        case .equals(let e), .in(let e): action.byEntity[e, default: []].append(i)
        case .inAny(let es):
            for e in Set(es) { action.byEntity[e, default: []].append(i) }
        }
    }
}
