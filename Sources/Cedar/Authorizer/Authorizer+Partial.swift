/// The answer to an authorization request some of whose context values are unknown: what holds whatever they turn
/// out to be, and what depends on them.
public struct PartialResponse: Sendable, Hashable {
    /// The permits satisfied whatever the unknowns are, in policy set order.
    public let permits: [String]
    /// The forbids satisfied whatever the unknowns are, in policy set order.
    public let forbids: [String]
    /// The permits that some values of the unknowns satisfy (and others may not), in policy set order.
    public let residualPermits: [String]
    /// The forbids that some values of the unknowns satisfy (and others may not), in policy set order.
    public let residualForbids: [String]
    /// The policies that error whatever the unknowns are, in policy set order. (A policy whose error depends on the
    /// unknowns is residual, or left out when no values of the unknowns can satisfy it.)
    public let errors: [PolicyEvaluationError]

    /// Whether some values of the unknowns may lead to `allow`: a permit may apply and no forbid surely applies.
    public var mayBeAllowed: Bool { forbids.isEmpty && !(permits.isEmpty && residualPermits.isEmpty) }

    /// The decision when it is the same whatever the unknowns are; nil when it depends on them.
    public var decision: Decision? {
        if !forbids.isEmpty || (permits.isEmpty && residualPermits.isEmpty) { return .deny }
        if residualForbids.isEmpty && !permits.isEmpty { return .allow }
        return nil
    }
}

extension Authorizer {
    /// Decides `request` as far as it can be decided without the values of `unknownContextKeys` (partial
    /// evaluation): those keys are taken to be present in the context with values not known yet; whatever the request
    /// gives for them is ignored. With no unknown keys the answer agrees with ``isAuthorized(_:policies:entities:)``.
    ///
    /// An expression that depends on an unknown value is unknown, except where a short-circuit decides anyway
    /// (`false && x`, `true || x`); a policy that errors whatever the unknowns are is skipped and reported, as in
    /// Cedar. Uses the same scope index as ``isAuthorized(_:policies:entities:)``.
    public func isAuthorized(
        _ request: Request, unknownContextKeys: Set<String>, policies: PolicySet, entities: Entities
    ) -> PartialResponse {
        let partial = PartialEvaluator(request: request, unknownContextKeys: unknownContextKeys, entities: entities)
        let evaluator = partial.evaluator
        let candidates = policies.index.candidates(
            principal: request.principal, principalAncestors: evaluator.principalAncestors,
            resource: request.resource, resourceAncestors: evaluator.resourceAncestors)
        var permits: [String] = []
        var forbids: [String] = []
        var residualPermits: [String] = []
        var residualForbids: [String] = []
        var errors: [PolicyEvaluationError] = []
        for i in candidates {
            let p = policies.index.boxes[Int(i)]
            guard evaluator.scopeMatches(p) else { continue }
            switch partial.conditions(p.conditions) {
            case .satisfied:
                if p.effect == .permit { permits.append(p.id) } else { forbids.append(p.id) }
            case .residual(canBeSatisfied: true):
                if p.effect == .permit { residualPermits.append(p.id) } else { residualForbids.append(p.id) }
            case .notSatisfied, .residual(canBeSatisfied: false):
                continue
            case .error(let error):
                errors.append(PolicyEvaluationError(policyID: p.id, message: error.message))
            }
        }
        return PartialResponse(
            permits: permits, forbids: forbids, residualPermits: residualPermits, residualForbids: residualForbids,
            errors: errors)
    }

    /// Whether some values of `unknownContextKeys` may get `request` allowed: some permit is satisfied or depends on
    /// the unknowns, and no forbid is satisfied whatever they are. False means no such request can be allowed.
    public func mayBeAuthorized(
        _ request: Request, unknownContextKeys: Set<String>, policies: PolicySet, entities: Entities
    ) -> Bool {
        isAuthorized(request, unknownContextKeys: unknownContextKeys, policies: policies, entities: entities)
            .mayBeAllowed
    }
}
