/// The types of the strict validator.
indirect enum VType: Hashable, CustomStringConvertible {
    enum BoolKind: Hashable { case any, tt, ff }
    struct Field: Hashable {
        let type: VType
        let required: Bool
    }

    case never
    case bool(BoolKind)
    case long, string
    /// An entity of one type; nil is any entity (an expectation pattern, or a slot).
    case entity(EntityType?)
    /// nil element: any set (an expectation pattern).
    case set(VType?)
    case record([String: Field], open: Bool)
    case ext(String)

    static let anyEntity = VType.entity(nil)
    static let anySet = VType.set(nil)
    static let anyRecord = VType.record([:], open: true)

    var description: String {
        switch self {
        case .never: "__cedar::internal::Never"
        case .bool(.any): "Bool"
        case .bool(.tt): "__cedar::internal::True"
        case .bool(.ff): "__cedar::internal::False"
        case .long: "Long"
        case .string: "String"
        case .entity(nil): "__cedar::internal::AnyEntity"
        case .entity(let t?): t.description
        case .set(nil): "Set<__cedar::internal::Any>"
        case .set(let e?): "Set<\(e)>"
        case .record(let f, let open):
            (open ? "__cedar::internal::OpenRecord" : "") + "{"
                + f.keys.sorted().map { "\($0)\(f[$0]!.required ? "" : "?"): \(f[$0]!.type)," }.joined() + "}"
        case .ext(let n): n
        }
    }

    init(_ t: Schema.AttributeType) {
        switch t {
        case .bool: self = .bool(.any)
        case .long: self = .long
        case .string: self = .string
        case .set(let e): self = .set(VType(e))
        case .record(let attrs):
            self = .record(attrs.mapValues { Field(type: VType($0.type), required: $0.required) }, open: false)
        case .entity(let e): self = .entity(e)
        case .ext(let n): self = .ext(n)
        // Any value: the bottom type, compatible with every use (the value is checked when the call comes).
        case .dynamic: self = .never
        }
    }

    /// Subtyping; `strict` for least upper bounds, permissive for expectations.
    func isSubtype(of other: VType, strict: Bool) -> Bool {
        switch (self, other) {
        case (.never, _): return true
        case (.bool(let a), .bool(let b)): return b == .any || a == b
        case (.long, .long), (.string, .string): return true
        case (.ext(let a), .ext(let b)): return a == b
        case (.set(let a), .set(let b)):
            guard let b else { return true }
            guard let a else { return false }
            return a.isSubtype(of: b, strict: strict)
        case (.record(let f0, let o0), .record(let f1, let o1)):
            guard !o0 || o1 else { return false }
            if strict || !o1 {
                guard Set(f0.keys) == Set(f1.keys) else { return false }
            }
            for (k, b) in f1 {
                guard let a = f0[k] else {
                    if strict || b.required { return false }
                    continue
                }
                if strict ? a.required != b.required : (!a.required && b.required) { return false }
                guard a.type.isSubtype(of: b.type, strict: strict) else { return false }
            }
            return true
        case (.entity(let a), .entity(let b)):
            if a == b { return true }
            return !strict && b == nil
        default: return false
        }
    }

    /// The strict least upper bound, or nil.
    static func lub(_ a: VType, _ b: VType) -> VType? {
        if a.isSubtype(of: b, strict: true) { return b }
        if b.isSubtype(of: a, strict: true) { return a }
        switch (a, b) {
        case (.bool, .bool): return .bool(.any)
        case (.set(let x), .set(let y)):
            guard let x, let y else { return .set(nil) }
            return lub(x, y).map { .set($0) }
        case (.record(let f0, let o0), .record(let f1, let o1)):
            guard Set(f0.keys) == Set(f1.keys) else { return nil }
            var out: [String: Field] = [:]
            for (k, x) in f0 {
                let y = f1[k]!
                guard let t = lub(x.type, y.type), x.required == y.required else { return nil }
                out[k] = Field(type: t, required: x.required)
            }
            return .record(out, open: o0 || o1)
        default: return nil
        }
    }

    var isEntityTyped: EntityType? { if case .entity(let t?) = self { t } else { nil } }
}

/// A capability: what is known to exist when an expression is true (an attribute or a tag of an expression).
struct Capability: Hashable {
    let on: Expr
    let attribute: String?
    let tag: Expr?
}

/// The answer for one expression: its type (nil when it failed without one), its capabilities, and whether it
/// type-checked.
struct Answer {
    var type: VType?
    var caps: Set<Capability>
    var ok: Bool

    static func fail(_ t: VType? = nil) -> Answer { Answer(type: t, caps: [], ok: false) }
    static func success(_ t: VType, _ caps: Set<Capability> = []) -> Answer { Answer(type: t, caps: caps, ok: true) }
}

/// Type-checks expressions in one request environment, collecting errors.
struct TypeChecker {
    let schema: Schema
    let env: Validator.Environment
    var errors: [(String, String)] = []
    var depth = 0

    init(schema: Schema, env: Validator.Environment) {
        self.schema = schema
        self.env = env
    }

    mutating func error(_ kind: String, _ message: String) { errors.append((kind, message)) }

    /// Type-checks `e` and checks its type against `expected` (permissive subtyping).
    mutating func expect(_ e: Expr, _ expected: [VType], caps: Set<Capability>) -> Answer {
        let a = check(e, caps: caps)
        guard let t = a.type else { return .fail() }
        guard expected.contains(where: { t.isSubtype(of: $0, strict: false) }) else {
            error(
                "unexpected_type",
                "unexpected type: expected \(expected.map(\.description).joined(separator: ", or ")) but saw \(t)")
            return .fail()
        }
        return a
    }

    /// The strict least upper bound of `types`, or an `incompatible_types` error.
    mutating func lub(_ types: [VType], _ what: String) -> VType? {
        var acc = VType.never
        for t in types {
            guard let next = VType.lub(acc, t) else {
                let shown = Set(types.map(\.description)).sorted().joined(separator: " and ")
                error("incompatible_types", "the types \(shown) are not compatible (\(what))")
                return nil
            }
            acc = next
        }
        return acc
    }

    func literalType(_ v: Value) -> VType? {
        switch v {
        case .bool(let b): return .bool(b ? .tt : .ff)
        case .long: return .long
        case .string: return .string
        case .entity(let u):
            if u.type.isAction { return schema.actions[u] != nil ? .entity(u.type) : nil }
            return schema.entityTypes[u.type] != nil ? .entity(u.type) : nil
        case .set, .record, .ext: return nil
        }
    }

    /// `action` stands for the environment's action literal in `==` and `in`.
    func actionLiteral(_ e: Expr) -> Expr {
        if case .variable(.action) = e { return .literal(.entity(env.action)) }
        return e
    }

    mutating func check(_ e: Expr, caps: Set<Capability>) -> Answer {
        depth += 1
        defer { depth -= 1 }
        guard depth < 400 else { return .fail() }
        switch e {
        case .literal(let v):
            guard let t = literalType(v) else { return .fail() }
            return .success(t)
        case .variable(.principal): return .success(.entity(env.principal))
        case .variable(.resource): return .success(.entity(env.resource))
        case .variable(.action): return .success(.entity(env.action.type))
        case .variable(.context):
            return .success(VType(.record(env.context)))
        case .slot: return .success(.anyEntity)

        case .ifThenElse(let c, let a, let b):
            let ca = expect(c, [.bool(.any)], caps: caps)
            // A singleton guard (even one that failed with that type) leaves the other branch unchecked.
            if case .bool(.tt)? = ca.type {
                var x = check(a, caps: caps.union(ca.caps))
                x.caps.formUnion(ca.caps)
                return x
            }
            if case .bool(.ff)? = ca.type {
                var y = check(b, caps: caps)
                if !ca.ok { y.ok = false }
                return y
            }
            let x = check(a, caps: caps.union(ca.caps))
            let y = check(b, caps: caps)
            guard let tx = x.type, let ty = y.type else { return .fail() }
            guard let t = lub([tx, ty], "both branches of a conditional") else { return .fail() }
            let ok = ca.ok && x.ok && y.ok
            return Answer(type: t, caps: x.caps.union(ca.caps).intersection(y.caps), ok: ok)

        case .not(let a):
            let x = expect(a, [.bool(.any)], caps: caps)
            guard case .bool(let k)? = x.type else { return .fail(.bool(.any)) }
            return Answer(type: .bool(k == .tt ? .ff : k == .ff ? .tt : .any), caps: [], ok: x.ok)

        case .and(let l, let r):
            let x = expect(l, [.bool(.any)], caps: caps)
            // `false && r`: r is not checked (also when l failed with the type False).
            if case .bool(.ff)? = x.type { return Answer(type: .bool(.ff), caps: [], ok: x.ok) }
            let y = expect(r, [.bool(.any)], caps: caps.union(x.caps))
            let ok = x.ok && y.ok
            func done(_ t: VType, _ c: Set<Capability>) -> Answer { Answer(type: t, caps: c, ok: ok) }
            if case .bool(.ff)? = y.type { return ok ? done(.bool(.ff), []) : .fail(.bool(.any)) }
            if case .bool(.tt)? = y.type, let tl = x.type {
                return ok ? done(tl, x.caps.union(y.caps)) : .fail(.bool(.any))
            }
            if case .bool(.tt)? = x.type, let tr = y.type { return ok ? done(tr, y.caps) : .fail(.bool(.any)) }
            if x.type != nil && y.type != nil && ok { return done(.bool(.any), x.caps.union(y.caps)) }
            return .fail(.bool(.any))

        case .or(let l, let r):
            let x = expect(l, [.bool(.any)], caps: caps)
            if case .bool(.tt)? = x.type { return Answer(type: .bool(.tt), caps: x.caps, ok: x.ok) }
            let y = expect(r, [.bool(.any)], caps: caps)
            let ok = x.ok && y.ok
            guard ok else { return .fail(.bool(.any)) }
            if case .bool(.tt)? = y.type { return .success(.bool(.tt), y.caps) }
            if case .bool(.ff)? = y.type, let tl = x.type { return .success(tl, x.caps) }
            if case .bool(.ff)? = x.type, let tr = y.type { return .success(tr, y.caps) }
            return .success(.bool(.any), x.caps.intersection(y.caps))

        case .binary(let op, let a, let b):
            return binary(op, a, b, caps: caps)

        case .negate(let a):
            let x = expect(a, [.long], caps: caps)
            return x.ok ? .success(.long) : .fail(.long)

        case .like(let a, _):
            let x = expect(a, [.string], caps: caps)
            return x.ok ? .success(.bool(.any)) : .fail(.bool(.any))

        case .isType(let a, let t, let inExpr):
            if let inExpr {
                return check(.and(.isType(a, t, in: nil), .binary(.in, a, inExpr)), caps: caps)
            }
            let x = expect(a, [.anyEntity], caps: caps)
            guard x.ok, case .entity(let et)? = x.type else { return .fail(.bool(.any)) }
            guard let et else { return .success(.bool(.any)) }
            return .success(.bool(et == t ? .tt : .ff))

        case .isEmpty(let a):
            let x = expect(a, [.anySet], caps: caps)
            return x.ok ? .success(.bool(.any)) : .fail(.bool(.any))

        case .hasAttr(let a, let name):
            let x = expect(a, [.anyEntity, .anyRecord], caps: caps)
            guard x.ok, let t = x.type else { return .fail(.bool(.any)) }
            let cap = Capability(on: a, attribute: name, tag: nil)
            switch attributes(of: t) {
            case .known(let fields):
                guard let f = fields[name] else { return .success(.bool(.ff)) }
                if case .record = t, f.required { return .success(.bool(.tt), [cap]) }
                return .success(.bool(caps.contains(cap) ? .tt : .any), [cap])
            case .unknown: return .success(.bool(.any))
            }

        case .getAttr(let a, let name):
            let x = expect(a, [.anyEntity, .anyRecord], caps: caps)
            guard x.ok, let t = x.type else { return .fail() }
            if case .never = t { return .success(.never) }  // inside a value of any shape: checked when it comes
            guard case .known(let fields) = attributes(of: t), let f = fields[name] else {
                error("unsafe_attribute_access", "attribute `\(name)` not found")
                return .fail()
            }
            if !f.required && !caps.contains(Capability(on: a, attribute: name, tag: nil)) {
                error(
                    "unsafe_optional_attribute_access",
                    "unable to guarantee safety of access to optional attribute `\(name)`")
                return .fail(f.type)
            }
            return .success(f.type)

        case .set(let items):
            var types: [VType] = []
            var ok = true
            for i in items {
                let x = check(i, caps: caps)
                if let t = x.type { types.append(t) } else { ok = false }
                if !x.ok { ok = false }
            }
            if items.isEmpty {
                error("empty_set", "empty set literals are forbidden in policies")
                return .fail()
            }
            guard types.count == items.count, let t = lub(types, "elements of a set") else { return .fail() }
            return ok ? .success(.set(t)) : .fail(.set(t))

        case .record(let entries):
            var fields: [String: VType.Field] = [:]
            var ok = true
            var typed = true
            for en in entries {
                let x = check(en.value, caps: caps)
                if !x.ok { ok = false }
                if let t = x.type { fields[en.key] = VType.Field(type: t, required: true) } else { typed = false }
            }
            guard typed else { return .fail() }
            let t = VType.record(fields, open: false)
            return ok ? .success(t) : .fail(t)

        case .call(let f, let args):
            return call(f, args, caps: caps)
        }
    }

    enum Attributes {
        case known([String: VType.Field])
        case unknown
    }

    func attributes(of t: VType) -> Attributes {
        switch t {
        case .record(let f, let open): return open && f.isEmpty ? .unknown : .known(f)
        case .entity(nil), .never: return .unknown
        case .entity(let et?):
            if et.isAction { return .known([:]) }
            guard let info = schema.entityTypes[et] else { return .known([:]) }
            return .known(info.attributes.mapValues { VType.Field(type: VType($0.type), required: $0.required) })
        default: return .known([:])
        }
    }

    // MARK: Binary operators

    mutating func binary(_ op: BinaryOp, _ a: Expr, _ b: Expr, caps: Set<Capability>) -> Answer {
        switch op {
        case .eq, .notEq:
            let x = check(a, caps: caps)
            let y = check(b, caps: caps)
            var t: VType.BoolKind = .any
            if let ea = x.type?.isEntityTyped, let eb = y.type?.isEntityTyped, ea != eb {
                t = .ff
            } else if case .literal(let va) = actionLiteral(a), case .literal(let vb) = actionLiteral(b) {
                // Two literals: decided now, whether or not they type-checked (an unknown literal fails silently).
                t = va == vb ? .tt : .ff
            }
            guard x.ok && y.ok, let ta = x.type, let tb = y.type else {
                let k: VType.BoolKind = op == .notEq ? (t == .tt ? .ff : t == .ff ? .tt : .any) : t
                return .fail(.bool(k))
            }
            if t == .any {
                guard lub([ta, tb], "both operands to a `==` expression") != nil else { return .fail(.bool(.any)) }
            }
            if op == .notEq { t = t == .tt ? .ff : t == .ff ? .tt : .any }
            return .success(.bool(t))

        case .less, .lessEq, .greater, .greaterEq:
            let x = check(a, caps: caps)
            let y = check(b, caps: caps)
            guard let ta = x.type, let tb = y.type else { return .fail(.bool(.any)) }
            func valid(_ t: VType) -> Bool {
                switch t {
                case .long, .ext("datetime"), .ext("duration"): true
                default: false
                }
            }
            let ok: Bool
            if case .never = ta {
                ok = valid(tb)
            } else if case .never = tb {
                ok = valid(ta)
            } else {
                ok = ta == tb && valid(ta)
            }
            if !ok {
                error(
                    "unexpected_type",
                    "unexpected type: \(ta) \(op.rawValue) \(tb) compares no Long, datetime or duration")
                return .fail(.bool(.any))
            }
            return x.ok && y.ok ? .success(.bool(.any)) : .fail(.bool(.any))

        case .add, .sub, .mul:
            let x = expect(a, [.long], caps: caps)
            let y = expect(b, [.long], caps: caps)
            return x.ok && y.ok ? .success(.long) : .fail(.long)

        case .in:
            return typeOfIn(a, b, caps: caps)

        case .contains:
            let x = expect(a, [.anySet], caps: caps)
            let y = check(b, caps: caps)
            guard x.ok && y.ok else { return .fail(.bool(.any)) }
            if case .set(let el?)? = x.type, let tb = y.type {
                guard
                    lub([el, tb], "elements of the first operand and the second operand to a `contains` expression")
                        != nil
                else { return .fail(.bool(.any)) }
            }
            return .success(.bool(.any))

        case .containsAll, .containsAny:
            let x = expect(a, [.anySet], caps: caps)
            let y = expect(b, [.anySet], caps: caps)
            guard x.ok && y.ok, let ta = x.type, let tb = y.type else { return .fail(.bool(.any)) }
            guard lub([ta, tb], "elements of both set operands to a `containsAll` or `containsAny` expression") != nil
            else { return .fail(.bool(.any)) }
            return .success(.bool(.any))

        case .hasTag, .getTag:
            let x = expect(a, [.anyEntity], caps: caps)
            let y = expect(b, [.string], caps: caps)
            guard x.ok && y.ok, case .entity(let et)? = x.type else { return .fail(op == .hasTag ? .bool(.any) : nil) }
            let tagTypes = tagTypes(et)
            let cap = Capability(on: a, attribute: nil, tag: b)
            if op == .hasTag {
                if tagTypes.isEmpty { return .success(.bool(.ff), [cap]) }
                return .success(.bool(caps.contains(cap) ? .tt : .any), [cap])
            }
            guard caps.contains(cap) else {
                error("unsafe_tag_access", "unable to guarantee safety of access to a tag")
                return .fail()
            }
            guard !tagTypes.isEmpty else {
                error("no_tags_allowed", "`.getTag()` is not allowed on entities without declared tags")
                return .fail()
            }
            guard let t = lub(tagTypes, "tag types for a `.getTag()` operation") else { return .fail() }
            return .success(t)
        }
    }

    func tagTypes(_ et: EntityType?) -> [VType] {
        if let et {
            guard !et.isAction, let t = schema.entityTypes[et]?.tags else { return [] }
            return [VType(t)]
        }
        return schema.entityTypes.values.compactMap { $0.tags.map(VType.init) }
    }

    /// `e1 in e2`.
    mutating func typeOfIn(_ a: Expr, _ b: Expr, caps: Set<Capability>) -> Answer {
        let x = expect(a, [.anyEntity], caps: caps)
        let y = expect(b, [.set(.anyEntity), .anyEntity], caps: caps)
        guard x.ok && y.ok, let ta = x.type, let tb = y.type else { return .fail(.bool(.any)) }
        // Actions: exact, from the action hierarchy.
        let lhs = actionLiteral(a)
        if case .literal(.entity(let la)) = lhs, la.type.isAction {
            var rhs: [Expr] = []
            var simple = true
            switch actionLiteral(b) {
            case .literal(.entity): rhs = [actionLiteral(b)]
            case .set(let items): rhs = items.map(actionLiteral)
            default: simple = false
            }
            var uids: [EntityUID] = []
            for r in rhs {
                if case .literal(.entity(let u)) = r { uids.append(u) } else { simple = false }
            }
            if simple {
                let actions = uids.filter { $0.type.isAction }
                if actions.isEmpty { return .success(.bool(.ff)) }
                var all: Set<EntityUID> = []
                for g in actions {
                    guard let s = Validator(schema: schema).actionsIn(g) else { return .fail(.bool(.any)) }
                    all.formUnion(s)
                }
                return .success(.bool(all.contains(la) ? .tt : .ff))
            }
        }
        guard case .entity(let l) = ta else { return .success(.bool(.any)) }
        var r: EntityType??
        switch tb {
        case .entity(let t): r = .some(t)
        case .set(.entity(let t)?): r = .some(t)
        default: r = nil
        }
        guard let l, let rr = r, let rt = rr else { return .success(.bool(.any)) }
        let validator = Validator(schema: schema)
        let possible =
            validator.typesIn(rt).contains(l)
            || (rt.isAction && l.isAction && schema.actions.keys.contains { $0.type == rt })
        return .success(.bool(possible ? .any : .ff))
    }

    // MARK: Extension functions

    mutating func call(_ f: ExtensionFunction, _ args: [Expr], caps: Set<Capability>) -> Answer {
        let signature: ([VType], VType)
        switch f {
        case .ip: signature = ([.string], .ext("ipaddr"))
        case .decimal: signature = ([.string], .ext("decimal"))
        case .datetime: signature = ([.string], .ext("datetime"))
        case .duration: signature = ([.string], .ext("duration"))
        case .isIpv4, .isIpv6, .isLoopback, .isMulticast: signature = ([.ext("ipaddr")], .bool(.any))
        case .isInRange: signature = ([.ext("ipaddr"), .ext("ipaddr")], .bool(.any))
        case .lessThan, .lessThanOrEqual, .greaterThan, .greaterThanOrEqual:
            signature = ([.ext("decimal"), .ext("decimal")], .bool(.any))
        case .offset: signature = ([.ext("datetime"), .ext("duration")], .ext("datetime"))
        case .durationSince: signature = ([.ext("datetime"), .ext("datetime")], .ext("duration"))
        case .toDate: signature = ([.ext("datetime")], .ext("datetime"))
        case .toTime: signature = ([.ext("datetime")], .ext("duration"))
        case .toMilliseconds, .toSeconds, .toMinutes, .toHours, .toDays: signature = ([.ext("duration")], .long)
        }
        var failed = false
        if args.count != signature.0.count {
            error(
                "wrong_number_arguments",
                "wrong number of arguments in extension function application. Expected \(signature.0.count), got \(args.count)"
            )
            failed = true
        }
        if f.isConstructor {
            if args.count == 1, case .literal(.string(let s)) = args[0] {
                if (try? Extensions.construct(f.rawValue, [.string(s)])) == nil {
                    error(
                        "extension_argument",
                        "error during extension function argument validation: failed to parse \(f.rawValue)(\"\(s)\")")
                    failed = true
                }
            }
            if !args.allSatisfy({ if case .literal = $0 { true } else { false } }) {
                error(
                    "non_literal_extension_constructor",
                    "extension constructors may not be called with non-literal expressions")
                failed = true
            }
        }
        if failed {
            for a in args { _ = check(a, caps: caps) }
            return .fail(signature.1)
        }
        var ok = true
        for (a, t) in zip(args, signature.0) where !expect(a, [t], caps: caps).ok { ok = false }
        return ok ? .success(signature.1) : .fail(signature.1)
    }
}
