/// Prints policies and expressions as Cedar text that parses back to the same syntax tree.
public enum CedarPrinter {
    /// Cedar text for a list of policies (a policy file), one blank line between policies.
    public static func text(_ policies: [Policy]) -> String {
        policies.map(text).joined(separator: "\n\n") + (policies.isEmpty ? "" : "\n")
    }

    /// Cedar text for a whole policy set: static and linked policies are printed as static policies, templates
    /// with their slots.
    public static func text(_ set: PolicySet) -> String {
        text(set.policies + set.templateIDs.compactMap { set.templates[$0] })
    }

    /// Cedar text for one policy.
    public static func text(_ p: Policy) -> String {
        var out = ""
        for a in p.annotations {
            out += a.value.map { "@\(a.key)(\(CedarString.quote($0)))\n" } ?? "@\(a.key)\n"
        }
        out += "\(p.effect.rawValue) (\n  \(scope("principal", p.principal)),\n  \(action(p.action)),\n"
        out += "  \(scope("resource", p.resource))\n)"
        for c in p.conditions {
            out += "\n\(c.kind.rawValue) { \(text(c.body)) }"
        }
        return out + ";"
    }

    private static func ref(_ r: EntityReference) -> String {
        switch r {
        case .entity(let e): e.description
        case .slot(let s): s.rawValue
        }
    }

    static func scope(_ v: String, _ c: ScopeConstraint) -> String {
        switch c {
        case .any: v
        case .equals(let r): "\(v) == \(ref(r))"
        case .in(let r): "\(v) in \(ref(r))"
        case .isType(let t): "\(v) is \(t.name)"
        case .isTypeIn(let t, let r): "\(v) is \(t.name) in \(ref(r))"
        }
    }

    static func action(_ c: ActionConstraint) -> String {
        switch c {
        case .any: "action"
        case .equals(let e): "action == \(e)"
        case .in(let e): "action in \(e)"
        case .inAny(let es): "action in [\(es.map(\.description).joined(separator: ", "))]"
        }
    }

    /// Cedar text for an expression.
    public static func text(_ e: Expr) -> String {
        var out = ""
        write(e, 0, &out)
        return out
    }

    private static func precedence(_ e: Expr) -> Int {
        switch e {
        case .ifThenElse: 0
        case .or: 1
        case .and: 2
        case .hasAttr, .like, .isType: 3
        case .binary(let op, _, _):
            switch op {
            case .eq, .notEq, .less, .lessEq, .greater, .greaterEq, .in: 3
            case .add, .sub: 4
            case .mul: 5
            case .contains, .containsAll, .containsAny, .hasTag, .getTag: 7
            }
        case .not, .negate: 6
        case .literal(.long(let n)) where n < 0: 6
        case .getAttr, .isEmpty: 7
        case .call(let f, _): f.isConstructor ? 8 : 7
        case .literal, .variable, .slot, .set, .record: 8
        }
    }

    private static func attrName(_ name: String) -> String? {
        Name.isValidIdentifier(name) && !Name.reserved.contains(name) ? name : nil
    }

    private static func write(_ e: Expr, _ minPrec: Int, _ out: inout String) {
        if precedence(e) < minPrec {
            out += "("
            write(e, 0, &out)
            out += ")"
            return
        }
        func list(_ es: [Expr]) {
            for (i, x) in es.enumerated() {
                if i > 0 { out += ", " }
                write(x, 0, &out)
            }
        }
        switch e {
        case .literal(let v):
            switch v {
            case .bool(let b): out += b ? "true" : "false"
            case .long(let n): out += String(n)
            case .string(let s): out += CedarString.quote(s)
            case .entity(let uid): out += uid.description
            default: out += "/* unsupported literal */"
            }
        case .variable(let v): out += v.rawValue
        case .slot(let s): out += s.rawValue
        case .not(let a):
            out += "!"
            write(a, precedence(a) == 6 ? 7 : 6, &out)
        case .negate(let a):
            out += "-"
            if case .literal(.long) = a {
                write(a, 9, &out)
            } else {
                write(a, precedence(a) == 6 ? 7 : 6, &out)
            }
        case .and(let a, let b):
            write(a, 2, &out)
            out += " && "
            write(b, 3, &out)
        case .or(let a, let b):
            write(a, 1, &out)
            out += " || "
            write(b, 2, &out)
        case .ifThenElse(let c, let a, let b):
            out += "if "
            write(c, 0, &out)
            out += " then "
            write(a, 0, &out)
            out += " else "
            write(b, 0, &out)
        case .binary(let op, let a, let b):
            switch op {
            case .eq, .notEq, .less, .lessEq, .greater, .greaterEq, .in:
                write(a, 4, &out)
                out += " \(op.rawValue) "
                write(b, 4, &out)
            case .add, .sub:
                write(a, 4, &out)
                out += " \(op.rawValue) "
                write(b, 5, &out)
            case .mul:
                write(a, 5, &out)
                out += " * "
                write(b, 6, &out)
            case .contains, .containsAll, .containsAny, .hasTag, .getTag:
                write(a, 7, &out)
                out += ".\(op.rawValue)("
                write(b, 0, &out)
                out += ")"
            }
        case .getAttr(let a, let name):
            write(a, 7, &out)
            if let n = attrName(name) { out += ".\(n)" } else { out += "[\(CedarString.quote(name))]" }
        case .hasAttr(let a, let name):
            write(a, 4, &out)
            out += " has " + (attrName(name) ?? CedarString.quote(name))
        case .like(let a, let pattern):
            write(a, 4, &out)
            var p = "\""
            for el in pattern.elements {
                switch el {
                case .wildcard: p += "*"
                case .literal("*"): p += "\\*"
                case .literal(let c): p += CedarString.escape(c)
                }
            }
            out += " like " + p + "\""
        case .isType(let a, let t, let inExpr):
            write(a, 4, &out)
            out += " is \(t.name)"
            if let inExpr {
                out += " in "
                write(inExpr, 4, &out)
            }
        case .isEmpty(let a):
            write(a, 7, &out)
            out += ".isEmpty()"
        case .set(let es):
            out += "["
            list(es)
            out += "]"
        case .record(let entries):
            out += "{"
            for (i, entry) in entries.enumerated() {
                if i > 0 { out += ", " }
                out += CedarString.quote(entry.key) + ": "
                write(entry.value, 0, &out)
            }
            out += "}"
        case .call(let f, let args):
            if f.isConstructor || args.isEmpty {
                out += "\(f.rawValue)("
                list(args)
                out += ")"
            } else {
                write(args[0], 7, &out)
                out += ".\(f.rawValue)("
                list(Array(args.dropFirst()))
                out += ")"
            }
        }
    }
}
