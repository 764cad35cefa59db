/// Folds the parts of an expression that are the same for every request into literal values, once, when a policy
/// joins a policy set: extension constructors on string literals (`ip("10.0.0.0/8")`), and set and record literals
/// whose elements are all literals. Only sub-expressions that evaluate without error are folded, so a policy that
/// errors still errors, at the same point, with the same message.
enum ConstantFolding {
    static func fold(_ e: Expr) -> Expr {
        switch e {
        case .literal, .variable, .slot: return e
        case .not(let a): return .not(fold(a))
        case .negate(let a): return .negate(fold(a))
        case .and(let a, let b): return .and(fold(a), fold(b))
        case .or(let a, let b): return .or(fold(a), fold(b))
        case .ifThenElse(let a, let b, let c): return .ifThenElse(fold(a), fold(b), fold(c))
        case .binary(let op, let a, let b): return .binary(op, fold(a), fold(b))
        case .getAttr(let a, let n): return .getAttr(fold(a), n)
        case .hasAttr(let a, let n): return .hasAttr(fold(a), n)
        case .like(let a, let p): return .like(fold(a), p)
        case .isType(let a, let t, let i): return .isType(fold(a), t, in: i.map(fold))
        case .isEmpty(let a): return .isEmpty(fold(a))
        case .set(let es):
            let folded = es.map(fold)
            var values = Set<Value>()
            for x in folded {
                guard case .literal(let v) = x else { return .set(folded) }
                values.insert(v)
            }
            return .literal(.set(values))
        case .record(let entries):
            let folded = entries.map { Expr.RecordEntry($0.key, fold($0.value)) }
            var values: [String: Value] = [:]
            for entry in folded {
                guard case .literal(let v) = entry.value else { return .record(folded) }
                values[entry.key] = v
            }
            return .literal(.record(values))
        case .call(let f, let args):
            let folded = args.map(fold)
            if f.isConstructor, folded.count == 1, case .literal(let v) = folded[0],
                let value = try? Extensions.call(f, [v])
            {
                return .literal(value)
            }
            return .call(f, folded)
        }
    }
}
