/// The Cedar policy JSON format (the "EST"): conversion of policies, templates and policy sets to and from JSON.
public enum PolicyJSON {
    private static let binaryOps: [BinaryOp] = [
        .eq, .notEq, .less, .lessEq, .greater, .greaterEq, .add, .sub, .mul, .in, .contains, .containsAll,
        .containsAny, .hasTag, .getTag,
    ]
    private static let binaryByName: [String: BinaryOp] = Dictionary(
        uniqueKeysWithValues: binaryOps.map { ($0.rawValue, $0) })

    // MARK: - Encoding

    /// Encodes one policy or template.
    public static func encode(_ p: Policy) -> JSONValue {
        var pairs: [(String, JSONValue)] = [
            ("effect", .string(p.effect.rawValue)),
            ("principal", encode(p.principal)),
            ("action", encode(p.action)),
            ("resource", encode(p.resource)),
            (
                "conditions",
                .array(p.conditions.map { .object([("kind", .string($0.kind.rawValue)), ("body", encode($0.body))]) })
            ),
        ]
        if !p.annotations.isEmpty {
            pairs.append(
                ("annotations", .object(p.annotations.map { ($0.key, $0.value.map { .string($0) } ?? .null) })))
        }
        return .object(pairs)
    }

    /// Encodes a policy set: `{"staticPolicies": {...}, "templates": {...}, "templateLinks": [...]}`.
    public static func encode(_ set: PolicySet) -> JSONValue {
        var statics: [(String, JSONValue)] = []
        var links: [JSONValue] = []
        for p in set.policies {
            if let link = set.links[p.id] {
                let values = link.values.sorted { $0.key.rawValue < $1.key.rawValue }.map {
                    ($0.key.rawValue, CedarJSON.json($0.value))
                }
                links.append(
                    .object([
                        ("templateId", .string(link.templateID)), ("newId", .string(p.id)), ("values", .object(values)),
                    ]))
            } else {
                statics.append((p.id, encode(p)))
            }
        }
        let templates = set.templateIDs.map { ($0, encode(set.templates[$0]!)) }
        return .object([
            ("staticPolicies", .object(statics)), ("templates", .object(templates)), ("templateLinks", .array(links)),
        ])
    }

    private static func encode(_ r: EntityReference) -> (String, JSONValue) {
        switch r {
        case .entity(let e): ("entity", CedarJSON.json(e))
        case .slot(let s): ("slot", .string(s.rawValue))
        }
    }

    private static func encode(_ c: ScopeConstraint) -> JSONValue {
        switch c {
        case .any: return .object([("op", .string("All"))])
        case .equals(let r): return .object([("op", .string("==")), encode(r)])
        case .in(let r): return .object([("op", .string("in")), encode(r)])
        case .isType(let t): return .object([("op", .string("is")), ("entity_type", .string(t.name))])
        case .isTypeIn(let t, let r):
            return .object([("op", .string("is")), ("entity_type", .string(t.name)), ("in", .object([encode(r)]))])
        }
    }

    private static func encode(_ c: ActionConstraint) -> JSONValue {
        switch c {
        case .any: .object([("op", .string("All"))])
        case .equals(let e): .object([("op", .string("==")), ("entity", CedarJSON.json(e))])
        case .in(let e): .object([("op", .string("in")), ("entity", CedarJSON.json(e))])
        // Like the reference implementation, a one-element list is written as a single entity.
        case .inAny(let es) where es.count == 1: .object([("op", .string("in")), ("entity", CedarJSON.json(es[0]))])
        case .inAny(let es): .object([("op", .string("in")), ("entities", .array(es.map(CedarJSON.json)))])
        }
    }

    /// Encodes an expression.
    public static func encode(_ e: Expr) -> JSONValue {
        func lr(_ a: Expr, _ b: Expr) -> JSONValue { .object([("left", encode(a)), ("right", encode(b))]) }
        switch e {
        case .literal(let v): return .object([("Value", CedarJSON.json(v))])
        case .variable(let v): return .object([("Var", .string(v.rawValue))])
        case .slot(let s): return .object([("Slot", .string(s.rawValue))])
        case .not(let a): return .object([("!", .object([("arg", encode(a))]))])
        case .negate(let a): return .object([("neg", .object([("arg", encode(a))]))])
        case .and(let a, let b): return .object([("&&", lr(a, b))])
        case .or(let a, let b): return .object([("||", lr(a, b))])
        case .binary(let op, let a, let b): return .object([(op.rawValue, lr(a, b))])
        case .ifThenElse(let c, let a, let b):
            return .object([("if-then-else", .object([("if", encode(c)), ("then", encode(a)), ("else", encode(b))]))])
        case .getAttr(let a, let name):
            return .object([(".", .object([("left", encode(a)), ("attr", .string(name))]))])
        case .hasAttr(let a, let name):
            return .object([("has", .object([("left", encode(a)), ("attr", .string(name))]))])
        case .like(let a, let pattern):
            // One element per character, as the reference implementation writes it.
            let elements: [JSONValue] = pattern.elements.map {
                switch $0 {
                case .literal(let c): .object([("Literal", .string(String(c)))])
                case .wildcard: .string("Wildcard")
                }
            }
            return .object([("like", .object([("left", encode(a)), ("pattern", .array(elements))]))])
        case .isType(let a, let t, let inExpr):
            var pairs: [(String, JSONValue)] = [("left", encode(a)), ("entity_type", .string(t.name))]
            if let inExpr { pairs.append(("in", encode(inExpr))) }
            return .object([("is", .object(pairs))])
        case .isEmpty(let a): return .object([("isEmpty", .object([("arg", encode(a))]))])
        case .set(let es): return .object([("Set", .array(es.map(encode)))])
        case .record(let entries): return .object([("Record", .object(entries.map { ($0.key, encode($0.value)) }))])
        case .call(let f, let args): return .object([(f.rawValue, .array(args.map(encode)))])
        }
    }

    // MARK: - Decoding

    /// Decodes one policy or template; `id` becomes its id.
    public static func decode(_ json: JSONValue, id: String) throws(CedarError) -> Policy {
        guard case .object(let pairs) = json else { throw bad("policy \"\(id)\" must be an object") }
        for (k, _) in pairs
        where !["effect", "principal", "action", "resource", "conditions", "annotations"].contains(k) {
            throw bad("policy \"\(id)\" has an unknown field \"\(k.prefix(60))\"")
        }
        guard case .string(let e)? = json["effect"], let effect = Effect(rawValue: e) else {
            throw bad("policy \"\(id)\" needs \"effect\": \"permit\" or \"forbid\"")
        }
        guard let p = json["principal"], let a = json["action"], let r = json["resource"] else {
            throw bad("policy \"\(id)\" needs \"principal\", \"action\" and \"resource\"")
        }
        var conditions: [Condition] = []
        if let c = json["conditions"] {
            guard case .array(let items) = c else { throw bad("\"conditions\" must be an array") }
            for item in items {
                guard case .string(let k)? = item["kind"], let kind = Condition.Kind(rawValue: k),
                    let body = item["body"]
                else {
                    throw bad("each condition needs \"kind\" (\"when\" or \"unless\") and \"body\"")
                }
                conditions.append(Condition(kind, try expr(body, depth: 0)))
            }
        }
        var annotations: [Annotation] = []
        if let an = json["annotations"] {
            guard case .object(let items) = an else { throw bad("\"annotations\" must be an object") }
            for (k, v) in items {
                guard Name.isValidIdentifier(k) else {
                    throw bad("annotation key \"\(k.prefix(60))\" is not an identifier")
                }
                switch v {
                case .string(let s): annotations.append(Annotation(key: k, value: s))
                case .null: annotations.append(Annotation(key: k, value: nil))
                default: throw bad("annotation \"\(k)\" must be a string")
                }
            }
        }
        let policy = Policy(
            id: id, effect: effect, annotations: annotations,
            principal: try scope(p, slot: .principal, "principal"), action: try actionScope(a),
            resource: try scope(r, slot: .resource, "resource"), conditions: conditions)
        for c in conditions where c.body.firstSlot != nil {
            throw bad("policy \"\(id)\": template slots may only appear in the scope")
        }
        return policy
    }

    /// Decodes a policy set (`staticPolicies`, `templates`, `templateLinks`); a single policy object is also accepted
    /// and gets the id `policy0`.
    public static func decodePolicySet(_ json: JSONValue) throws(CedarError) -> PolicySet {
        guard case .object(let pairs) = json else { throw bad("a policy set must be an object") }
        if json["effect"] != nil { return try PolicySet([decode(json, id: "policy0")]) }
        var set = PolicySet()
        for (k, _) in pairs where !["staticPolicies", "templates", "templateLinks"].contains(k) {
            throw bad("a policy set has an unknown field \"\(k.prefix(60))\"")
        }
        for field in ["staticPolicies", "templates"] {
            if let v = json[field], case .object = v {
            } else if json[field] != nil {
                throw bad("\"\(field)\" must be an object of policies by id")
            }
        }
        if let v = json["templateLinks"], case .array = v {
        } else if json["templateLinks"] != nil {
            throw bad("\"templateLinks\" must be an array")
        }
        if case .object(let items)? = json["staticPolicies"] {
            for (id, p) in items {
                let policy = try decode(p, id: id)
                guard !policy.isTemplate else {
                    throw bad("static policy \"\(id)\" has a slot: put it in \"templates\"")
                }
                try set.add(policy)
            }
        }
        if case .object(let items)? = json["templates"] {
            for (id, p) in items {
                let policy = try decode(p, id: id)
                guard policy.isTemplate else { throw bad("template \"\(id)\" has no slot") }
                try set.add(policy)
            }
        }
        if case .array(let items)? = json["templateLinks"] {
            for item in items {
                guard case .string(let t)? = item["templateId"], case .string(let n)? = item["newId"],
                    case .object(let vs)? = item["values"]
                else {
                    throw bad("a template link needs \"templateId\", \"newId\" and \"values\"")
                }
                var values: [SlotID: EntityUID] = [:]
                for (k, v) in vs {
                    guard let slot = SlotID(rawValue: k) else { throw bad("unknown slot \"\(k.prefix(60))\"") }
                    values[slot] = try CedarJSON.entityUID(v, "slot value")
                }
                try set.link(template: t, newID: n, values: values)
            }
        }
        return set
    }

    /// A literal value as the expression that writes it: sets and records element by element, extension values as
    /// their constructor call on a string.
    private static func literalExpr(_ v: Value) -> Expr {
        switch v {
        case .bool, .long, .string, .entity: return .literal(v)
        case .set(let s): return .set(s.map(literalExpr))
        case .record(let r): return .record(r.keys.sorted().map { Expr.RecordEntry($0, literalExpr(r[$0]!)) })
        case .ext(let e):
            switch e {
            case .ipaddr(let x): return .call(.ip, [.literal(.string(x.description))])
            case .decimal(let x): return .call(.decimal, [.literal(.string(x.description))])
            case .duration(let x): return .call(.duration, [.literal(.string(x.description))])
            case .datetime(let x) where x.isParsableAsText:
                return .call(.datetime, [.literal(.string(x.description))])
            case .datetime(let x):
                return .call(
                    .offset,
                    [
                        .call(.datetime, [.literal(.string("1970-01-01"))]),
                        .call(.duration, [.literal(.string("\(x.milliseconds)ms"))]),
                    ])
            }
        }
    }

    private static func bad(_ message: String) -> CedarError { CedarError(.json, "policy JSON: \(message)") }

    private static func reference(_ json: JSONValue, slot: SlotID) throws(CedarError) -> EntityReference {
        if case .string(let s)? = json["slot"] {
            guard s == slot.rawValue else { throw bad("slot \"\(s.prefix(20))\" cannot be used here") }
            return .slot(slot)
        }
        guard let e = json["entity"] else { throw bad("a scope constraint needs \"entity\" or \"slot\"") }
        return .entity(try CedarJSON.entityUID(e))
    }

    private static func scope(_ json: JSONValue, slot: SlotID, _ what: String) throws(CedarError) -> ScopeConstraint {
        guard case .string(let op)? = json["op"] else { throw bad("the \(what) constraint needs \"op\"") }
        switch op {
        case "All": return .any
        case "==": return .equals(try reference(json, slot: slot))
        case "in": return .in(try reference(json, slot: slot))
        case "is":
            guard case .string(let t)? = json["entity_type"], let type = EntityType.parse(t) else {
                throw bad("an \"is\" constraint needs a valid \"entity_type\"")
            }
            if let inner = json["in"] { return .isTypeIn(type, try reference(inner, slot: slot)) }
            return .isType(type)
        default: throw bad("unknown \(what) constraint op \"\(op.prefix(20))\"")
        }
    }

    private static func actionScope(_ json: JSONValue) throws(CedarError) -> ActionConstraint {
        guard case .string(let op)? = json["op"] else { throw bad("the action constraint needs \"op\"") }
        func action(_ j: JSONValue) throws(CedarError) -> EntityUID {
            let uid = try CedarJSON.entityUID(j, "action")
            guard uid.type.isAction else { throw bad("\(uid) is not an action entity") }
            return uid
        }
        switch op {
        case "All": return .any
        case "==":
            guard let e = json["entity"] else { throw bad("an action \"==\" needs \"entity\"") }
            return .equals(try action(e))
        case "in":
            if case .array(let items)? = json["entities"] {
                var list: [EntityUID] = []
                for i in items { list.append(try action(i)) }
                return .inAny(list)
            }
            guard let e = json["entity"] else { throw bad("an action \"in\" needs \"entity\" or \"entities\"") }
            return .in(try action(e))
        default: throw bad("unknown action constraint op \"\(op.prefix(20))\"")
        }
    }

    static func expr(_ json: JSONValue, depth: Int) throws(CedarError) -> Expr {
        guard depth < Parser.maxDepth else { throw bad("expression nested too deeply") }
        guard case .object(let pairs) = json, pairs.count == 1 else {
            throw bad("an expression must be an object with exactly one key")
        }
        let (key, body) = pairs[0]
        func sub(_ j: JSONValue?) throws(CedarError) -> Expr {
            guard let j else { throw bad("\"\(key)\" is missing an operand") }
            return try expr(j, depth: depth + 1)
        }
        func attr() throws(CedarError) -> String {
            guard case .string(let s)? = body["attr"] else { throw bad("\"\(key)\" needs a string \"attr\"") }
            return s
        }
        switch key {
        case "Value":
            return Self.literalExpr(try CedarJSON.value(body))
        case "Var":
            guard case .string(let s) = body, let v = Variable(rawValue: s) else { throw bad("unknown variable") }
            return .variable(v)
        case "Slot":
            guard case .string(let s) = body, let v = SlotID(rawValue: s) else { throw bad("unknown slot") }
            return .slot(v)
        case "!": return .not(try sub(body["arg"]))
        case "neg": return .negate(try sub(body["arg"]))
        case "isEmpty": return .isEmpty(try sub(body["arg"]))
        case "&&": return .and(try sub(body["left"]), try sub(body["right"]))
        case "||": return .or(try sub(body["left"]), try sub(body["right"]))
        case ".": return .getAttr(try sub(body["left"]), try attr())
        case "has": return .hasAttr(try sub(body["left"]), try attr())
        case "if-then-else": return .ifThenElse(try sub(body["if"]), try sub(body["then"]), try sub(body["else"]))
        case "is":
            guard case .string(let t)? = body["entity_type"], let type = EntityType.parse(t) else {
                throw bad("\"is\" needs a valid \"entity_type\"")
            }
            return .isType(try sub(body["left"]), type, in: try body["in"].map { j throws(CedarError) in try sub(j) })
        case "like":
            guard case .array(let items)? = body["pattern"] else { throw bad("\"like\" needs a \"pattern\" array") }
            var elements: [Pattern.Element] = []
            for item in items {
                if case .string("Wildcard") = item {
                    elements.append(.wildcard)
                } else if case .string(let lit)? = item["Literal"] {
                    elements.append(contentsOf: lit.unicodeScalars.map { .literal($0) })
                } else {
                    throw bad("a pattern element is \"Wildcard\" or {\"Literal\": \"...\"}")
                }
            }
            return .like(try sub(body["left"]), Pattern(elements))
        case "Set":
            guard case .array(let items) = body else { throw bad("\"Set\" must be an array") }
            var es: [Expr] = []
            for i in items { es.append(try expr(i, depth: depth + 1)) }
            return .set(es)
        case "Record":
            guard case .object(let items) = body else { throw bad("\"Record\" must be an object") }
            var es: [Expr.RecordEntry] = []
            for (k, v) in items { es.append(Expr.RecordEntry(k, try expr(v, depth: depth + 1))) }
            return .record(es)
        default:
            if let op = binaryByName[key] { return .binary(op, try sub(body["left"]), try sub(body["right"])) }
            if let f = ExtensionFunction(rawValue: key) {
                guard case .array(let items) = body else { throw bad("arguments of \"\(key)\" must be an array") }
                var es: [Expr] = []
                for i in items { es.append(try expr(i, depth: depth + 1)) }
                return .call(f, es)
            }
            throw bad("unknown expression \"\(key.prefix(40))\"")
        }
    }
}
