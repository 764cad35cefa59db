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
        let candidates = policies.index.candidates(
            principal: request.principal, principalAncestors: evaluator.principalAncestors,
            resource: request.resource, resourceAncestors: evaluator.resourceAncestors)
        var permits: [String] = []
        var forbids: [String] = []
        var errors: [PolicyEvaluationError] = []
        for i in candidates {
            let p = policies.index.boxes[Int(i)]
            guard evaluator.scopeMatches(p) else { continue }
            do {
                guard try evaluator.conditionsHold(p.conditions) else { continue }
                if p.effect == .permit { permits.append(p.id) } else { forbids.append(p.id) }
            } catch {
                errors.append(PolicyEvaluationError(policyID: p.id, message: error.message))
            }
        }
        if !forbids.isEmpty { return Response(decision: .deny, reasons: forbids, errors: errors) }
        if !permits.isEmpty { return Response(decision: .allow, reasons: permits, errors: errors) }
        return Response(decision: .deny, reasons: [], errors: errors)
    }

}
