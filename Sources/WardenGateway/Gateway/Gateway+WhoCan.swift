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

    /// The context keys a `/r/` call's decision has (the front end's and the pipeline's): unknown to who-can, except
    /// `route`, which it knows.
    static let callContextKeys: Set<String> = [
        "method", "path", "query", "contentLength", "risk", "time", "trust", "delegation", "delegated", "subject",
        "source",
    ]

    /// Every agent's access to route `name`; `notFound` for an unknown route.
    package func whoCan(route name: String, agents: [AgentRecord]) throws(WardenError) -> [Access] {
        guard let route = routes[name] else { throw WardenError(.notFound, "no route named \(name)") }
        let snapshot = cp.policies.snapshot
        return agents.sorted { $0.manifest.name < $1.manifest.name }.map { access(to: route, by: $0, snapshot) }
    }

    func access(to route: Route, by agent: AgentRecord, _ snapshot: PolicyEngine.Snapshot) -> Access {
        func never(_ reason: String, _ policies: [String] = []) -> Access {
            Access(agent: agent, kind: .never, reason: reason, policies: policies, conditions: [])
        }
        guard agent.state == .active else { return never("the agent is \(agent.state.rawValue)") }
        guard cp.scopes(of: agent).contains(route.scope) else {
            return never("its manifest does not name \(route.scope) (not in its token's scopes)")
        }
        let principal = AgentDirectory.entity(agent)
        var entities = [principal]
        if let service = route.service {
            entities.append(service)
        } else {
            guard let target = cp.agents.entry(route.resource.id), target.record.state == .active else {
                return never("the route's agent is not active")
            }
            if target.entity.uid != principal.uid { entities.append(target.entity) }
        }
        guard let built = try? Entities(entities) else { return never("the entities are invalid") }
        let request = Cedar.Request(
            principal: principal.uid, action: EntityUID("Action", "call"), resource: route.resource,
            context: ["route": .string(route.config.name)])
        let answer = Authorizer().isAuthorized(
            request, unknownContextKeys: Self.callContextKeys, policies: snapshot.policies, entities: built)
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
        if !answer.residualForbids.isEmpty {
            why.append("unless the conditions of \(answer.residualForbids.joined(separator: ", ")) hold")
        }
        return Access(
            agent: agent, kind: .conditional, reason: why.joined(separator: "; "),
            policies: answer.permits + deciding, conditions: texts)
    }
}
