/// The outcome of an authorization request.
public enum Decision: String, Sendable, Hashable, Codable {
    case allow, deny
}

/// A policy whose evaluation raised an error (it was skipped).
public struct PolicyEvaluationError: Sendable, Hashable {
    /// The id of the policy that errored.
    public let policyID: String
    /// What went wrong.
    public let message: String
}

/// The answer to an authorization request.
public struct Response: Sendable, Hashable {
    /// Allow or deny.
    public let decision: Decision
    /// The ids of the determining policies: the satisfied forbids on deny, the satisfied permits on allow, in policy
    /// set order; empty when nothing applied (deny by default).
    public let reasons: [String]
    /// Policies that errored during evaluation, in policy set order. An erroring policy never grants.
    public let errors: [PolicyEvaluationError]
}

/// Cedar's authorization algorithm: deny by default, forbid overrides permit, erroring policies are skipped.
public struct Authorizer: Sendable {
    public init() {}

    /// Decides `request` against `policies` and `entities`.
    public func isAuthorized(_ request: Request, policies: PolicySet, entities: Entities) -> Response {
        let evaluator = Evaluator(request: request, entities: entities)
        let candidates = Self.candidates(policies.index, request, entities)
        var permits: [String] = []
        var forbids: [String] = []
        var errors: [PolicyEvaluationError] = []
        for i in candidates {
            let p = policies.policies[Int(i)]
            guard evaluator.scopeMatches(p) else { continue }
            do {
                guard try evaluator.conditionsHold(p) else { continue }
                if p.effect == .permit { permits.append(p.id) } else { forbids.append(p.id) }
            } catch {
                errors.append(PolicyEvaluationError(policyID: p.id, message: error.message))
            }
        }
        if !forbids.isEmpty { return Response(decision: .deny, reasons: forbids, errors: errors) }
        if !permits.isEmpty { return Response(decision: .allow, reasons: permits, errors: errors) }
        return Response(decision: .deny, reasons: [], errors: errors)
    }

    /// Positions of the policies whose scope could match, in ascending order, from the most selective dimension.
    static func candidates(_ index: ScopeIndex, _ request: Request, _ entities: Entities) -> [Int32] {
        var pb: [[Int32]] = []
        var ab: [[Int32]] = []
        var rb: [[Int32]] = []
        let pn = index.principal.buckets(
            for: request.principal, ancestors: entities.ancestors(of: request.principal), into: &pb)
        if pn == 0 { return [] }
        let an = index.action.buckets(for: request.action, ancestors: entities.ancestors(of: request.action), into: &ab)
        if an == 0 { return [] }
        let rn = index.resource.buckets(
            for: request.resource, ancestors: entities.ancestors(of: request.resource), into: &rb)
        if rn == 0 { return [] }
        let chosen = pn <= an && pn <= rn ? pb : (an <= rn ? ab : rb)
        if chosen.count == 1 { return chosen[0] }
        var all: [Int32] = []
        all.reserveCapacity(min(pn, an, rn))
        for b in chosen { all.append(contentsOf: b) }
        all.sort()
        var out: [Int32] = []
        out.reserveCapacity(all.count)
        for x in all where out.last != x { out.append(x) }
        return out
    }
}
