/// Cedar's strict validator: policies type-checked against a schema, as the reference engine's strict mode does
/// (`cedar-policy-core/src/validator`): the names in a policy (entity types, actions, enumerated ids), whether its
/// scope can apply to any action, and its condition type-checked in every request environment the schema allows
/// (each action × principal type × resource type), with singleton booleans, short-circuiting, `has`/`hasTag`
/// capabilities, strict least upper bounds, and the extension functions' signatures.
public struct Validator: Sendable {
    public let schema: Schema

    public init(schema: Schema) { self.schema = schema }

    /// One validation error.
    public struct Issue: Sendable, Hashable, CustomStringConvertible {
        public let policyID: String
        /// A short kind: `unrecognized_entity_type`, `unrecognized_action`, `invalid_enum_entity`,
        /// `invalid_action_application`, `unexpected_type`, `incompatible_types`, `unsafe_attribute_access`,
        /// `unsafe_optional_attribute_access`, `unsafe_tag_access`, `no_tags_allowed`, `empty_set`,
        /// `wrong_number_arguments`, `extension_argument`, `non_literal_extension_constructor`.
        public let kind: String
        public let message: String
        public let location: TextLocation?

        public var description: String {
            (location.map { "\($0): " } ?? "") + "policy \(policyID): \(message)"
        }
    }

    /// The errors of every policy of `set` (empty when the set is valid).
    public func validate(_ set: PolicySet) -> [Issue] {
        var out: [Issue] = []
        for p in set.policies { out.append(contentsOf: validate(p)) }
        return out
    }

    /// The errors of one policy, without duplicates, in a stable order.
    public func validate(_ policy: Policy) -> [Issue] {
        var issues: [Issue] = []
        var seen: Set<String> = []
        func add(_ kind: String, _ message: String) {
            guard seen.insert(kind + "\u{0}" + message).inserted else { return }
            issues.append(Issue(policyID: policy.id, kind: kind, message: message, location: policy.location))
        }
        checkNames(policy, add)
        if !actionApplies(policy) {
            add("invalid_action_application", "unable to find an applicable action given the policy scope constraints")
        }
        let condition = Self.condition(policy)
        for env in environments() {
            var checker = TypeChecker(schema: schema, env: env)
            _ = checker.expect(condition, [.bool(.any)], caps: [])
            for (kind, message) in checker.errors { add(kind, message) }
        }
        return issues
    }

    // MARK: Request environments

    struct Environment {
        let principal: EntityType
        let action: EntityUID
        let resource: EntityType
        let context: [String: Schema.Attribute]
    }

    func environments() -> [Environment] {
        var out: [Environment] = []
        for a in schema.actions.values.sorted(by: { $0.uid < $1.uid }) where a.appliesTo {
            for p in a.principals {
                for r in a.resources {
                    out.append(Environment(principal: p, action: a.uid, resource: r, context: a.context))
                }
            }
        }
        return out
    }

    // MARK: The condition typechecked: scope and body as one conjunction

    static func condition(_ p: Policy) -> Expr {
        func scope(_ v: Variable, _ c: ScopeConstraint) -> Expr {
            switch c {
            case .any: return .literal(.bool(true))
            case .equals(.entity(let e)): return .binary(.eq, .variable(v), .literal(.entity(e)))
            case .in(.entity(let e)): return .binary(.in, .variable(v), .literal(.entity(e)))
            case .isType(let t): return .isType(.variable(v), t, in: nil)
            case .isTypeIn(let t, .entity(let e)):
                return .and(.isType(.variable(v), t, in: nil), .binary(.in, .variable(v), .literal(.entity(e))))
            case .equals(.slot(let s)): return .binary(.eq, .variable(v), .slot(s))
            case .in(.slot(let s)): return .binary(.in, .variable(v), .slot(s))
            case .isTypeIn(let t, .slot(let s)):
                return .and(.isType(.variable(v), t, in: nil), .binary(.in, .variable(v), .slot(s)))
            }
        }
        let action: Expr
        switch p.action {
        case .any: action = .literal(.bool(true))
        case .equals(let a): action = .binary(.eq, .variable(.action), .literal(.entity(a)))
        case .in(let a): action = .binary(.in, .variable(.action), .set([.literal(.entity(a))]))
        case .inAny(let list): action = .binary(.in, .variable(.action), .set(list.map { .literal(.entity($0)) }))
        }
        var body: Expr = .literal(.bool(true))
        let clauses = p.conditions.map { c -> Expr in c.kind == .when ? c.body : .not(c.body) }
        if let last = clauses.last {
            body = clauses.dropLast().reversed().reduce(last) { acc, c in .and(c, acc) }
        }
        return .and(scope(.principal, p.principal), .and(action, .and(scope(.resource, p.resource), body)))
    }

    // MARK: Names (once per policy)

    func checkNames(_ p: Policy, _ add: (String, String) -> Void) {
        var types: [EntityType] = []
        var uids: [EntityUID] = []
        func scope(_ c: ScopeConstraint) {
            switch c {
            case .equals(.entity(let e)), .in(.entity(let e)):
                types.append(e.type)
                uids.append(e)
            case .isType(let t): types.append(t)
            case .isTypeIn(let t, .entity(let e)):
                types.append(t)
                types.append(e.type)
                uids.append(e)
            case .isTypeIn(let t, .slot): types.append(t)
            default: break
            }
        }
        scope(p.principal)
        scope(p.resource)
        switch p.action {
        case .any: break
        case .equals(let a), .in(let a):
            types.append(a.type)
            uids.append(a)
        case .inAny(let list):
            types.append(contentsOf: list.map(\.type))
            uids.append(contentsOf: list)
        }
        func walk(_ e: Expr) {
            switch e {
            case .literal(.entity(let u)):
                types.append(u.type)
                uids.append(u)
            case .isType(_, let t, _): types.append(t)
            default: break
            }
            for c in e.children { walk(c) }
        }
        for c in p.conditions { walk(c.body) }
        for t in types where schema.entityTypes[t] == nil && !t.isAction {
            add("unrecognized_entity_type", "unrecognized entity type `\(t)`")
        }
        for u in uids where u.type.isAction && schema.actions[u] == nil {
            add("unrecognized_action", "unrecognized action `\(u)`")
        }
        for u in uids where !u.type.isAction {
            if let ids = schema.entityTypes[u.type]?.enumIDs, !ids.contains(u.id) {
                add("invalid_enum_entity", "entity `\(u)` is not one of the enumerated ids of \(u.type)")
            }
        }
    }

    /// The types a principal or resource scope admits.
    func types(_ c: ScopeConstraint) -> Set<EntityType>? {
        switch c {
        case .any, .equals(.slot), .in(.slot): return nil  // every type
        case .equals(.entity(let e)): return [e.type]
        case .in(.entity(let e)): return typesIn(e.type)
        case .isType(let t), .isTypeIn(let t, .slot): return schema.entityTypes[t] != nil ? [t] : []
        case .isTypeIn(let t, .entity(let e)): return typesIn(e.type).intersection([t])
        }
    }

    /// `t` and the declared types that can be its descendants (their `memberOf` reaches `t`).
    func typesIn(_ t: EntityType) -> Set<EntityType> {
        Self.descendants(of: t, schema.entityTypes.mapValues(\.memberOf))
    }

    /// The declared actions that are `a` or in it, transitively; nil when `a` is not declared.
    func actionsIn(_ a: EntityUID) -> Set<EntityUID>? {
        guard schema.actions[a] != nil else { return nil }
        return Self.descendants(of: a, schema.actions.mapValues(\.memberOf))
    }

    /// `root` and everything whose parents (`parents`) reach it.
    static func descendants<T: Hashable>(of root: T, _ parents: [T: [T]]) -> Set<T> {
        var out: Set<T> = [root]
        var changed = true
        while changed {
            changed = false
            for (node, ps) in parents where !out.contains(node) && ps.contains(where: out.contains) {
                out.insert(node)
                changed = true
            }
        }
        return out
    }

    func actionApplies(_ p: Policy) -> Bool {
        var actions: [Schema.ActionInfo]
        switch p.action {
        case .any: actions = Array(schema.actions.values)
        case .equals(let a): actions = schema.actions[a].map { [$0] } ?? []
        case .in(let a): actions = (actionsIn(a) ?? []).compactMap { schema.actions[$0] }
        case .inAny(let list):
            var all: Set<EntityUID> = []
            var unknown = false
            for a in list {
                if let s = actionsIn(a) { all.formUnion(s) } else { unknown = true }
            }
            actions = unknown ? [] : all.compactMap { schema.actions[$0] }
        }
        let principals = types(p.principal)
        let resources = types(p.resource)
        return actions.contains { a in
            (principals.map { !$0.isDisjoint(with: a.principals) } ?? !a.principals.isEmpty)
                && (resources.map { !$0.isDisjoint(with: a.resources) } ?? !a.resources.isEmpty)
        }
    }
}
