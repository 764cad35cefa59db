/// Evaluates Cedar expressions against one request and an entity set, with Cedar's exact semantics:
/// short-circuit `&&`/`||`, checked 64-bit arithmetic, transitive `in`, and type errors for ill-typed operands.
public struct Evaluator {
    let request: Request
    let entities: Entities
    let context: Value
    let principalAncestors: Set<EntityUID>
    let actionAncestors: Set<EntityUID>
    let resourceAncestors: Set<EntityUID>
    /// The request's principal and resource entities, looked up once (most attribute accesses are on them).
    private let principalEntity: Entity?
    private let resourceEntity: Entity?

    /// Creates an evaluator for `request` over `entities`.
    public init(request: Request, entities: Entities) {
        self.request = request
        self.entities = entities
        self.context = .record(request.context)
        let principal = entities.stored(request.principal)
        let resource = entities.stored(request.resource)
        self.principalAncestors = principal?.ancestors ?? []
        self.principalEntity = principal?.entity
        self.actionAncestors = entities.ancestors(of: request.action)
        self.resourceAncestors = resource?.ancestors ?? []
        self.resourceEntity = resource?.entity
    }

    // MARK: - Scope

    /// Whether the policy's scope matches the request (scopes never error).
    func scopeMatches(_ p: PolicyBox) -> Bool {
        matches(p.principal, request.principal, principalAncestors) && matches(p.action)
            && matches(p.resource, request.resource, resourceAncestors)
    }

    func matches(_ c: ScopeConstraint, _ uid: EntityUID, _ ancestors: Set<EntityUID>) -> Bool {
        switch c {
        case .any: return true
        case .equals(.entity(let e)): return uid == e
        case .in(.entity(let e)): return uid == e || ancestors.contains(e)
        case .isType(let t): return uid.type == t
        case .isTypeIn(let t, .entity(let e)): return uid.type == t && (uid == e || ancestors.contains(e))
        case .equals(.slot), .in(.slot), .isTypeIn(_, .slot): return false  // unlinked templates never apply
        }
    }

    func matches(_ c: ActionConstraint) -> Bool {
        let a = request.action
        switch c {
        case .any: return true
        case .equals(let e): return a == e
        case .in(let e): return a == e || actionAncestors.contains(e)
        case .inAny(let es): return es.contains { a == $0 || actionAncestors.contains($0) }
        }
    }

    /// Whether all conditions hold. Throws the evaluation error of the first condition that fails to evaluate.
    /// Whether all the conditions hold.
    func conditionsHold(_ conditions: [Condition]) throws(CedarError) -> Bool {
        for c in conditions {
            let v = try evaluate(c.body)
            guard case .bool(let b) = v else {
                throw typeError("a '\(c.kind.rawValue)' clause must evaluate to a Bool", v)
            }
            if b != (c.kind == .when) { return false }
        }
        return true
    }

    // MARK: - Expressions

    /// Evaluates an expression.
    public func evaluate(_ e: Expr) throws(CedarError) -> Value {
        switch e {
        case .literal(let v):
            return v
        case .variable(let v):
            switch v {
            case .principal: return .entity(request.principal)
            case .action: return .entity(request.action)
            case .resource: return .entity(request.resource)
            case .context: return context
            }
        case .slot(let s):
            throw CedarError(.evaluation, "template slot \(s.rawValue) is not linked")
        case .not(let a):
            return .bool(!(try bool(a, "operand of '!'")))
        case .negate(let a):
            let v = try long(a, "operand of unary '-'")
            let (r, o) = Int64(0).subtractingReportingOverflow(v)
            guard !o else { throw CedarError(.evaluation, "integer overflow: -(\(v)) does not fit in a Long") }
            return .long(r)
        case .and(let a, let b):
            guard try bool(a, "left operand of '&&'") else { return .bool(false) }
            return .bool(try bool(b, "right operand of '&&'"))
        case .or(let a, let b):
            if try bool(a, "left operand of '||'") { return .bool(true) }
            return .bool(try bool(b, "right operand of '||'"))
        case .ifThenElse(let c, let a, let b):
            return try bool(c, "condition of 'if'") ? try evaluate(a) : try evaluate(b)
        case .binary(let op, let a, let b):
            return try binary(op, try evaluate(a), try evaluate(b))
        case .getAttr(.variable(let v), let name) where v == .principal || v == .resource:
            let uid = v == .principal ? request.principal : request.resource
            guard let entity = v == .principal ? principalEntity : resourceEntity else {
                throw CedarError(.evaluation, "entity \(uid) does not exist")
            }
            guard let x = entity.attributes[name] else {
                throw CedarError(.evaluation, "entity \(uid) does not have the attribute \(CedarString.quote(name))")
            }
            return x
        case .getAttr(.variable(.context), let name):
            guard let x = request.context[name] else {
                throw CedarError(.evaluation, "record does not have the attribute \(CedarString.quote(name))")
            }
            return x
        case .getAttr(let a, let name):
            return try getAttr(try evaluate(a), name)
        case .hasAttr(.variable(let v), let name) where v == .principal || v == .resource:
            return .bool((v == .principal ? principalEntity : resourceEntity)?.attributes[name] != nil)
        case .hasAttr(.variable(.context), let name):
            return .bool(request.context[name] != nil)
        case .hasAttr(let a, let name):
            switch try evaluate(a) {
            case .record(let r): return .bool(r[name] != nil)
            case .entity(let uid): return .bool(entities[uid]?.attributes[name] != nil)
            case let v: throw typeError("'has' needs an entity or a record", v)
            }
        case .like(let a, let pattern):
            let v = try evaluate(a)
            guard case .string(let s) = v else { throw typeError("'like' needs a String", v) }
            return .bool(pattern.matches(s))
        case .isType(let a, let type, let inExpr):
            let v = try evaluate(a)
            guard case .entity(let uid) = v else { throw typeError("'is' needs an entity", v) }
            guard uid.type == type else { return .bool(false) }
            guard let inExpr else { return .bool(true) }
            return try binary(.in, v, try evaluate(inExpr))
        case .isEmpty(let a):
            let v = try evaluate(a)
            guard case .set(let s) = v else { throw typeError("isEmpty() needs a Set", v) }
            return .bool(s.isEmpty)
        case .set(let es):
            var s = Set<Value>(minimumCapacity: es.count)
            for x in es { s.insert(try evaluate(x)) }
            return .set(s)
        case .record(let entries):
            var r = [String: Value](minimumCapacity: entries.count)
            for entry in entries { r[entry.key] = try evaluate(entry.value) }
            return .record(r)
        case .call(let f, let args):
            var values: [Value] = []
            values.reserveCapacity(args.count)
            for a in args { values.append(try evaluate(a)) }
            return try Extensions.call(f, values)
        }
    }

    private func bool(_ e: Expr, _ what: String) throws(CedarError) -> Bool {
        let v = try evaluate(e)
        guard case .bool(let b) = v else { throw typeError("the \(what) must be a Bool", v) }
        return b
    }

    private func long(_ e: Expr, _ what: String) throws(CedarError) -> Int64 {
        let v = try evaluate(e)
        guard case .long(let n) = v else { throw typeError("the \(what) must be a Long", v) }
        return n
    }

    private func typeError(_ message: String, _ v: Value) -> CedarError {
        CedarError(.evaluation, "type error: \(message), got \(v.typeName)")
    }

    private func getAttr(_ v: Value, _ name: String) throws(CedarError) -> Value {
        switch v {
        case .record(let r):
            guard let x = r[name] else {
                throw CedarError(.evaluation, "record does not have the attribute \(CedarString.quote(name))")
            }
            return x
        case .entity(let uid):
            guard let entity = entities[uid] else {
                throw CedarError(.evaluation, "entity \(uid) does not exist")
            }
            guard let x = entity.attributes[name] else {
                throw CedarError(.evaluation, "entity \(uid) does not have the attribute \(CedarString.quote(name))")
            }
            return x
        default:
            throw typeError("attribute access needs an entity or a record", v)
        }
    }

    func binary(_ op: BinaryOp, _ a: Value, _ b: Value) throws(CedarError) -> Value {
        switch op {
        case .eq: return .bool(a == b)
        case .notEq: return .bool(a != b)
        case .less, .lessEq, .greater, .greaterEq:
            let c: Int64
            let d: Int64
            switch (a, b) {
            case (.long(let x), .long(let y)):
                (c, d) = (x, y)
            case (.ext(.datetime(let x)), .ext(.datetime(let y))):
                (c, d) = (x.milliseconds, y.milliseconds)
            case (.ext(.duration(let x)), .ext(.duration(let y))):
                (c, d) = (x.milliseconds, y.milliseconds)
            default:
                throw CedarError(
                    .evaluation,
                    "type error: '\(op.rawValue)' compares two Longs, two datetimes or two durations, got \(a.typeName) and \(b.typeName)"
                )
            }
            switch op {
            case .less: return .bool(c < d)
            case .lessEq: return .bool(c <= d)
            case .greater: return .bool(c > d)
            default: return .bool(c >= d)
            }
        case .add, .sub, .mul:
            guard case .long(let x) = a, case .long(let y) = b else {
                throw CedarError(
                    .evaluation, "type error: '\(op.rawValue)' needs two Longs, got \(a.typeName) and \(b.typeName)")
            }
            let (r, o): (Int64, Bool)
            switch op {
            case .add: (r, o) = x.addingReportingOverflow(y)
            case .sub: (r, o) = x.subtractingReportingOverflow(y)
            default: (r, o) = x.multipliedReportingOverflow(by: y)
            }
            guard !o else {
                throw CedarError(.evaluation, "integer overflow: \(x) \(op.rawValue) \(y) does not fit in a Long")
            }
            return .long(r)
        case .in:
            guard case .entity(let uid) = a else { throw typeError("the left side of 'in' must be an entity", a) }
            switch b {
            case .entity(let target):
                return .bool(isDescendant(uid, of: target))
            case .set(let s):
                var targets: [EntityUID] = []
                targets.reserveCapacity(s.count)
                for x in s {
                    guard case .entity(let t) = x else {
                        throw typeError("the set on the right of 'in' must hold only entities", x)
                    }
                    targets.append(t)
                }
                return .bool(targets.contains { isDescendant(uid, of: $0) })
            default:
                throw typeError("the right side of 'in' must be an entity or a set of entities", b)
            }
        case .contains:
            guard case .set(let s) = a else { throw typeError("contains() needs a Set", a) }
            return .bool(s.contains(b))
        case .containsAll, .containsAny:
            guard case .set(let s) = a else { throw typeError("\(op.rawValue)() needs a Set", a) }
            guard case .set(let t) = b else { throw typeError("the argument of \(op.rawValue)() must be a Set", b) }
            return .bool(op == .containsAll ? t.isSubset(of: s) : !s.isDisjoint(with: t))
        case .hasTag, .getTag:
            guard case .entity(let uid) = a else { throw typeError("\(op.rawValue)() needs an entity", a) }
            guard case .string(let tag) = b else { throw typeError("the tag name must be a String", b) }
            guard let entity = entities[uid] else {
                if op == .hasTag { return .bool(false) }
                throw CedarError(.evaluation, "entity \(uid) does not exist")
            }
            if op == .hasTag { return .bool(entity.tags[tag] != nil) }
            guard let v = entity.tags[tag] else {
                throw CedarError(.evaluation, "entity \(uid) does not have the tag \(CedarString.quote(tag))")
            }
            return v
        }
    }

    private func isDescendant(_ uid: EntityUID, of target: EntityUID) -> Bool {
        if uid == target { return true }
        if uid == request.principal { return principalAncestors.contains(target) }
        if uid == request.resource { return resourceAncestors.contains(target) }
        if uid == request.action { return actionAncestors.contains(target) }
        return entities.isDescendant(uid, of: target)
    }
}
