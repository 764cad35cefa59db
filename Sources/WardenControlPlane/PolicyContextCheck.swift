import Cedar
import WardenCore

/// The context keys Warden's decisions have (`docs/configuration.md`), and a check that a policy reads none other:
/// a misspelt key (`context.metod`) is not silent. Cedar would only find it when a request comes: a permit with it
/// never matches, a forbid with it errs on every call (and an erring forbid denies). The set is what the pipeline's
/// one request builder (`Decide`) and the front ends put in the context; a policy whose action scope names only
/// `call` is held to the `/r/` keys, one that names only `mcp:*` actions to MCP's, any other to all of them.
package enum PolicyContextCheck {
    /// Every decision's keys.
    package static let common: Set<String> = [
        "risk", "time", "trust", "delegation", "delegated", "subject", "source",
    ]
    /// `/r/` calls (`Action::"call"`).
    package static let call: Set<String> = common.union(["method", "path", "route", "query", "contentLength"])
    /// MCP requests (`Action::"mcp:*"`).
    package static let mcp: Set<String> = common.union(["server", "approved", "protocolVersion", "arguments"])
    /// The keys of `context.risk` (`docs/risk.md`).
    package static let risk: Set<String> = ["ready", "newResource", "newSegment", "findings", "volumeRatio"]

    /// The first unknown context key `p` reads (`context.<key>`, `context has <key>`, `context.risk.<key>`), with
    /// the keys it may use; nil when it reads only known ones.
    static func unknownKey(in p: Policy) -> (key: String, known: Set<String>)? {
        let allowed = keys(for: p.action)
        for c in p.conditions {
            if let bad = walk(c.body, allowed) { return (bad, bad.hasPrefix("risk.") ? risk : allowed) }
        }
        return nil
    }

    static func keys(for action: ActionConstraint) -> Set<String> {
        let named: [EntityUID]
        switch action {
        case .any: return call.union(mcp)
        case .equals(let a), .in(let a): named = [a]
        case .inAny(let all): named = all
        }
        let ids = named.map(\.id)
        if ids.allSatisfy({ $0 == "call" }) { return call }
        if ids.allSatisfy({ $0.hasPrefix("mcp:") }) { return mcp }
        return call.union(mcp)
    }

    /// The first unknown key read in `e` (`risk.<key>` for one of the risk record).
    static func walk(_ e: Expr, _ allowed: Set<String>) -> String? {
        switch e {
        case .getAttr(.getAttr(.variable(.context), "risk"), let key),
            .hasAttr(.getAttr(.variable(.context), "risk"), let key):
            return allowed.contains("risk") && !risk.contains(key) ? "risk." + key : nil
        case .getAttr(.variable(.context), let key), .hasAttr(.variable(.context), let key):
            return allowed.contains(key) ? nil : key
        case .literal, .variable, .slot: return nil
        case .not(let a), .negate(let a), .getAttr(let a, _), .hasAttr(let a, _), .like(let a, _), .isEmpty(let a):
            return walk(a, allowed)
        case .isType(let a, _, let b): return walk(a, allowed) ?? b.flatMap { walk($0, allowed) }
        case .and(let a, let b), .or(let a, let b), .binary(_, let a, let b):
            return walk(a, allowed) ?? walk(b, allowed)
        case .ifThenElse(let a, let b, let c): return walk(a, allowed) ?? walk(b, allowed) ?? walk(c, allowed)
        case .set(let items), .call(_, let items):
            for i in items { if let bad = walk(i, allowed) { return bad } }
            return nil
        case .record(let entries):
            for entry in entries { if let bad = walk(entry.value, allowed) { return bad } }
            return nil
        }
    }
}
