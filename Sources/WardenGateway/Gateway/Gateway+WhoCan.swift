import Cedar
import WardenControlPlane
import WardenCore

/// "Who can reach this route?" (`warden policy who-can`): for every registered agent, whether a call to the route is
/// allowed always, never, or depending on the call (its method, path, query, time, trust, delegation, risk signals:
/// the context is left unknown and the policy set evaluated partially), with the reason and, for a conditional
/// answer, the policies whose conditions decide. The same two layers as a real call: the agent's state and its
/// manifest's scopes first, then Cedar on the entities the gateway builds.
extension Gateway {
    /// One agent's access to a route.
    package struct Access: Sendable {
        package enum Kind: String, Sendable { case always, never, conditional }
        package let agent: AgentRecord
        package let kind: Kind
        package let reason: String
        /// The policies that decided (always, never) or may decide (conditional).
        package let policies: [String]
        /// For a conditional answer: each deciding policy's text, whose conditions on the context decide.
        package let conditions: [String]
    }

    /// The context keys of a `/r/` call (``PolicyContextCheck/call``, the one list), unknown to who-can but `route`,
    /// which it knows.
    static let callContextKeys = PolicyContextCheck.call.subtracting(["route"])

    /// Every agent's access to route `name`; `notFound` for an unknown route.
    package func whoCan(route name: String, agents: [AgentRecord]) throws(WardenError) -> [Access] {
        guard let route = routes[name] else { throw WardenError(.notFound, "no route named \(name)") }
        let snapshot = cp.policies.snapshot
        return agents.sorted { $0.manifest.name < $1.manifest.name }.map { agent in
            var entities: [Entity] = []
            if let service = route.service {
                entities.append(service)
            } else {
                guard let target = cp.agents.entry(route.resource.id), target.record.state == .active else {
                    return Access(
                        agent: agent, kind: .never, reason: "the route's agent is not active", policies: [],
                        conditions: [])
                }
                if target.record.spiffeID != agent.spiffeID { entities.append(target.entity) }
            }
            return access(
                by: agent, scopes: [route.scope], action: "call", resource: route.resource, entities: entities,
                known: ["route": .string(route.config.name)], unknown: Self.callContextKeys, snapshot)
        }
    }

    /// One agent's access to `resource` by `action`: its state, then its scopes (any of `scopes`), then the policy
    /// set on the principal and `entities` with the context keys `unknown` not known.
    package func access(
        by agent: AgentRecord, scopes: [String], action: String, resource: EntityUID, entities: [Entity],
        known: [String: Value], unknown: Set<String>, _ snapshot: PolicyEngine.Snapshot
    ) -> Access {
        func never(_ reason: String, _ policies: [String] = []) -> Access {
            Access(agent: agent, kind: .never, reason: reason, policies: policies, conditions: [])
        }
        guard agent.state == .active else { return never("the agent is \(agent.state.rawValue)") }
        let held = cp.scopes(of: agent)
        guard scopes.contains(where: held.contains) else {
            return never("its manifest does not name \(scopes[0]) (not in its token's scopes)")
        }
        let principal = AgentDirectory.entity(agent)
        guard let built = try? Entities([principal] + entities) else { return never("the entities are invalid") }
        let request = Cedar.Request(
            principal: principal.uid, action: EntityUID("Action", action), resource: resource, context: known)
        let answer = Authorizer().isAuthorized(
            request, unknownContextKeys: unknown, policies: snapshot.policies, entities: built)
        // Warden denies when a forbid errs (fail closed), whatever else applies.
        let erring = answer.errors.filter { snapshot.forbids.contains($0.policyID) }
        if let e = erring.first {
            return never("forbid \(e.policyID) errs: \(e.message)", erring.map(\.policyID))
        }
        if !answer.forbids.isEmpty {
            return never("forbidden by \(answer.forbids.joined(separator: ", "))", answer.forbids)
        }
        if answer.permits.isEmpty && answer.residualPermits.isEmpty { return never("no permit applies") }
        if answer.decision == .allow {
            return Access(
                agent: agent, kind: .always, reason: "permitted by \(answer.permits.joined(separator: ", "))",
                policies: answer.permits, conditions: [])
        }
        let deciding = answer.residualPermits + answer.residualForbids
        let texts = deciding.compactMap { snapshot.policies.policy($0).map { CedarPrinter.text($0) } }
        var why: [String] = []
        if !answer.permits.isEmpty { why.append("permitted by \(answer.permits.joined(separator: ", "))") }
        if !answer.residualPermits.isEmpty {
            why.append("permitted when the conditions of \(answer.residualPermits.joined(separator: ", ")) hold")
        }
        let approvals = answer.residualForbids.filter { snapshot.approvalPolicies.contains($0) }
        let others = answer.residualForbids.filter { !snapshot.approvalPolicies.contains($0) }
        if !others.isEmpty { why.append("unless the conditions of \(others.joined(separator: ", ")) hold") }
        if !approvals.isEmpty {
            why.append("held for a human's approval when the conditions of \(approvals.joined(separator: ", ")) hold")
        }
        return Access(
            agent: agent, kind: .conditional, reason: why.joined(separator: "; "),
            policies: answer.permits + deciding, conditions: texts)
    }

    /// Why `agent` would be allowed or refused a `method` call to `path` of route `name` now (`warden policy
    /// explain`): the layers before the policy (state, scopes), then the decision on the Cedar request the gateway
    /// would build (the agent's trust and the risk engine's signals as they stand, no delegation, no body), with
    /// every policy's trace.
    package func explain(agent: AgentRecord, route name: String, method: String, path: String) throws(WardenError)
        -> (refusedBefore: String?, explanation: Explanation)
    {
        guard let route = routes[name] else { throw WardenError(.notFound, "no route named \(name)") }
        guard path.hasPrefix("/"), path.utf8.count <= 4096 else {
            throw WardenError(.invalidRequest, "the path must start with / (the part after /r/<route>)")
        }
        var refused: String?
        if agent.state != .active {
            refused = "the agent is \(agent.state.rawValue)"
        } else if !cp.scopes(of: agent).contains(route.scope) {
            refused = "insufficient_scope: its manifest does not name \(route.scope)"
        }
        var entities: [Entity] = []
        if let service = route.service {
            entities.append(service)
        } else if let target = cp.agents.entry(route.resource.id), target.record.spiffeID != agent.spiffeID {
            entities.append(target.entity)
        }
        let who = Decide.Principal(
            entity: AgentDirectory.entity(agent), spiffeID: agent.spiffeID.description, roles: agent.manifest.roles,
            trust: cp.trust.score(agent), delegation: [], delegated: false, subject: agent.spiffeID.description)
        guard
            let (request, built) = pipeline.decide.request(
                who, source: nil, action: "call", resource: route.resource, entities: entities,
                context: Self.callContext(
                    method: method.uppercased(), path: path, route: name, query: [], length: nil),
                feed: route.riskFeed)
        else { throw WardenError(.invalidRequest, "the entities are invalid") }
        return (refused, Authorizer().explain(request, policies: cp.policies.snapshot.policies, entities: built))
    }
}
