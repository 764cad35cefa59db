/// Why a request got its decision, policy by policy: for each policy of the set, whether its scope matched (principal,
/// action, resource) and, if so, whether its conditions held, which clause failed, or the error; in policy set order.
/// What `warden policy explain` shows: the determining policies, and for a deny the permits that came closest.
public struct Explanation: Sendable {
    public enum Outcome: Sendable, Hashable {
        /// The scope matched and every condition held.
        case applies
        /// The scope did not match: which parts did not, as Cedar text (`principal in Role::"ops"`).
        case scopeMismatch([String])
        /// The scope matched; this clause (Cedar text) made it not apply.
        case conditionFailed(String)
        /// The scope matched; evaluating the conditions erred.
        case error(String)
    }

    public struct Trace: Sendable, Hashable {
        public let id: String
        public let effect: Effect
        public let outcome: Outcome

        /// How close the policy came to applying: 3 for a condition that failed or erred (the scope matched),
        /// otherwise the number of scope parts that matched; 4 when it applies.
        public var closeness: Int {
            switch outcome {
            case .applies: 4
            case .conditionFailed, .error: 3
            case .scopeMismatch(let parts): 3 - parts.count
            }
        }
    }

    public let response: Response
    public let traces: [Trace]
}

extension Authorizer {
    /// The decision on `request` (as ``isAuthorized(_:policies:entities:)``) with every policy's trace.
    public func explain(_ request: Request, policies: PolicySet, entities: Entities) -> Explanation {
        let evaluator = Evaluator(request: request, entities: entities)
        var traces: [Explanation.Trace] = []
        for p in policies.policies {
            let box = PolicyBox(p)
            var mismatched: [String] = []
            if !evaluator.matches(box.principal, request.principal, evaluator.principalAncestors) {
                mismatched.append(CedarPrinter.scope("principal", p.principal))
            }
            if !evaluator.matches(box.action) { mismatched.append(CedarPrinter.action(p.action)) }
            if !evaluator.matches(box.resource, request.resource, evaluator.resourceAncestors) {
                mismatched.append(CedarPrinter.scope("resource", p.resource))
            }
            let outcome: Explanation.Outcome
            if !mismatched.isEmpty {
                outcome = .scopeMismatch(mismatched)
            } else {
                outcome = Self.clause(p, evaluator)
            }
            traces.append(Explanation.Trace(id: p.id, effect: p.effect, outcome: outcome))
        }
        return Explanation(response: isAuthorized(request, policies: policies, entities: entities), traces: traces)
    }

    /// The first clause of `p` that fails (or errs), as Cedar text; `applies` when they all hold.
    static func clause(_ p: Policy, _ evaluator: Evaluator) -> Explanation.Outcome {
        for c in p.conditions {
            do {
                let v = try evaluator.evaluate(c.body)
                guard case .bool(let b) = v else {
                    return .error("a '\(c.kind.rawValue)' clause must evaluate to a Bool")
                }
                if b != (c.kind == .when) {
                    return .conditionFailed("\(c.kind.rawValue) { \(CedarPrinter.text(c.body)) }")
                }
            } catch {
                return .error(error.message)
            }
        }
        return .applies
    }
}
