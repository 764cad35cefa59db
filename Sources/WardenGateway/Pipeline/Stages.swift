import Cedar
import HTTPTypes
import Hummingbird
import WardenControlPlane
import WardenCore
import WardenIdentity
import WardenRisk

/// Stage: who is calling. The source's unauthenticated-refusal budget, then the token and its proof (or client
/// certificate), then the agent's state and key binding. A refusal after the credentials verified carries the agent,
/// so that it is recorded as that agent's; a genuine token presented with another key's proof is reported to the
/// risk engine as its agent's stolen token.
package struct Authenticate: Sendable {
    let cp: ControlPlane

    @discardableResult
    package func run(
        _ call: inout Call, request: Request, context: WardenRequestContext, base: String, mutualTLS: Bool
    ) async throws(Refusal) -> Caller {
        // A source that keeps failing authentication waits, before any signature is checked.
        if let wait = cp.sources.blocked(call.source) {
            throw Limit.rateLimited(wait, "for unauthenticated requests from this address")
        }
        var who: AuthenticatedAgent?
        var authorization: String?
        var certificate: ClientCertificate?
        do throws(WardenError) {
            authorization = try HTTPSupport.single(request, .authorization, code: .invalidToken)
            let cert =
                mutualTLS && authorization?.utf8.prefix(7).lazy.map({ $0 | 0x20 }).elementsEqual("bearer ".utf8) == true
                ? try await context.clientCertificate() : nil
            certificate = cert
            let (claims, entry) = try cp.verifyCredentials(
                authorization: authorization, dpop: try HTTPSupport.single(request, .dpop, code: .invalidDPoPProof),
                method: request.method.rawValue, path: request.uri.path, base: base, certificate: cert)
            let agent = AuthenticatedAgent(claims: claims, agent: entry.record)
            who = agent
            try cp.admit(agent, key: entry.key, certificate: cert)
            let caller = Caller(agent: agent, principal: entry.entity, trust: entry.trustScore)
            call.caller = caller
            return caller
        } catch {
            let status: HTTPResponse.Status =
                switch error.code {
                case .accessDenied: .forbidden
                case .storage, .io: .serviceUnavailable
                case .invalidRequest: .badRequest
                default: .unauthorized
                }
            // A genuine token with another key's proof was stolen: the theft is its agent's to know about (the
            // refusal itself stays unattributed, as the credentials did not prove who is calling).
            if let victim = cp.stolenTokenHolder(error, authorization: authorization, certificate: certificate) {
                cp.risk.submit(
                    RiskEvent(
                        time: cp.clock.wallSeconds, agentID: victim.record.spiffeID.description,
                        roles: victim.record.manifest.roles, kind: .tokenMisuse,
                        resource: String(request.uri.path.prefix(256)), allowed: false, reason: error.auditReason))
            }
            throw Refusal(status: status, error: error, who: who)
        }
    }
}

/// Stage: how often. The risk engine's throttle of the agent (a small bucket of its own, shared by every front end),
/// then the front end's own limit (a route's `rate_limit`), then the agent's overall `rate_limit_per_agent`. A
/// refusal by a later bucket refunds the earlier one's token.
package struct Limit: Sendable {
    let cp: ControlPlane
    let limiter: RateLimiter

    /// The engine's throttle: one request a second, bursts of five.
    package static let riskThrottle = RateLimit(perSecond: 1, burst: 5)

    /// `own`: the front end's limit for this call, with the key of its bucket and what to call it in the message.
    package func run(_ caller: Caller, own: (key: String, limit: RateLimit, what: String)? = nil) throws(Refusal) {
        let agent = caller.agent.agent
        if cp.risk.isThrottled(agent.spiffeID.description, now: cp.clock.wallSeconds),
            let wait = limiter.take("risk-throttle|" + agent.id, Self.riskThrottle)
        {
            var refusal = Self.rateLimited(wait, "(throttled by the risk engine)")
            refusal.byRiskEngine = true
            throw refusal
        }
        var taken: String?
        if let own {
            if let wait = limiter.take(own.key, own.limit) { throw Self.rateLimited(wait, own.what) }
            taken = own.key
        }
        if let limit = cp.config.rateLimitPerAgent, let wait = limiter.take(agent.id, limit) {
            if let taken { limiter.refund(taken) }
            throw Self.rateLimited(wait, "for this agent")
        }
    }

    package static func rateLimited(_ wait: Double, _ what: String) -> Refusal {
        Refusal(
            .tooManyRequests, .accessDenied, .rateLimited, "rate limit exceeded \(what)",
            retryAfter: max(1, Int(min(wait, 86_400).rounded(.up))))
    }
}

/// Stage: may it. One Cedar request builder for every front end: the caller as principal, the action, the resource
/// with the entities it needs, and a context whose common part (`time`, `trust`, `source`, `delegation`,
/// `delegated`, `subject`, and the risk engine's `risk` record) is built here and only here; a front end adds its
/// own keys (`docs/configuration.md`).
package struct Decide: Sendable {
    let cp: ControlPlane

    /// The Cedar request and its entities; nil when the entities are invalid (two with one id). `feed`: what the
    /// risk engine is told of this call (the resource as text and the segment), so that `context.risk` is judged on
    /// the same keys the engine learns from; by default the resource's Cedar spelling and no segment.
    package func request(
        _ caller: Caller, source: String?, action: String, resource: EntityUID, entities: [Entity],
        context extra: [String: Value], feed: Recorder.RiskFeed? = nil
    ) -> (Cedar.Request, Entities)? {
        let claims = caller.agent.claims
        return request(
            Principal(
                entity: caller.principal, spiffeID: caller.spiffeID, roles: caller.agent.agent.manifest.roles,
                trust: caller.trust, delegation: claims.delegation, delegated: !claims.actors.isEmpty,
                subject: claims.subject),
            source: source, action: action, resource: resource, entities: entities, context: extra, feed: feed)
    }

    /// Who a decision is about: the principal entity and what the common context says of the caller.
    package struct Principal: Sendable {
        package let entity: Entity
        package let spiffeID: String
        package let roles: [String]
        package let trust: Int
        package let delegation: [String]
        package let delegated: Bool
        package let subject: String
    }

    /// The Cedar request for `who` (a caller, or an agent a policy analysis asks about).
    package func request(
        _ who: Principal, source: String?, action: String, resource: EntityUID, entities: [Entity],
        context extra: [String: Value], feed: Recorder.RiskFeed? = nil
    ) -> (Cedar.Request, Entities)? {
        var context = extra
        context.reserveCapacity(extra.count + 7)
        // What the risk engine knows before the call (always present, so that a policy reading it never errs).
        let signals = cp.risk.signals(
            agentID: who.spiffeID, roles: who.roles, resource: feed?.resource ?? resource.description,
            segment: feed?.segment, now: cp.clock.wallSeconds)
        context["risk"] = .record([
            "ready": .bool(signals.ready), "newResource": .bool(signals.newResource),
            "newSegment": .bool(signals.newSegment), "findings": .long(signals.findings),
            "volumeRatio": .ext(.decimal(CedarDecimal(raw: Int64((signals.volumeRatio * 10_000).rounded())))),
        ])
        context["time"] = .ext(.datetime(CedarDatetime(milliseconds: cp.now() * 1000)))
        context["trust"] = .long(Int64(who.trust))
        context["delegation"] = .set(Set(who.delegation.map { .string($0) }))
        context["delegated"] = .bool(who.delegated)
        context["subject"] = .string(who.subject)
        if let source, let ip = IPAddr.parse(source) { context["source"] = .ext(.ipaddr(ip)) }
        var all = [who.entity]
        all.append(contentsOf: entities)
        guard let built = try? Entities(all) else { return nil }
        return (
            Cedar.Request(
                principal: who.entity.uid, action: EntityUID("Action", action), resource: resource, context: context),
            built
        )
    }

    /// The decision; invalid entities deny with `policy_error`.
    package func run(
        _ caller: Caller, source: String?, action: String, resource: EntityUID, entities: [Entity],
        context: [String: Value], feed: Recorder.RiskFeed? = nil
    ) -> PolicyEngine.Verdict {
        guard
            let (request, built) = request(
                caller, source: source, action: action, resource: resource, entities: entities, context: context,
                feed: feed)
        else {
            return PolicyEngine.Verdict(
                allowed: false, policies: [], errors: [], reason: Reason.policyError.rawValue,
                message: "the entities are invalid")
        }
        return cp.policies.authorize(request, entities: built)
    }

    /// Whether some request like ``run(_:source:action:resource:entities:context:)``'s, with the context keys
    /// `unknown` not known yet, may be allowed (Cedar partial evaluation); false when none can be.
    package func may(
        _ caller: Caller, source: String?, action: String, resource: EntityUID, entities: [Entity],
        unknown: Set<String>, context: [String: Value] = [:]
    ) -> Bool {
        guard
            let (request, built) = request(
                caller, source: source, action: action, resource: resource, entities: entities, context: context)
        else { return false }
        return cp.policies.mayAuthorize(request, unknownContextKeys: unknown, entities: built)
    }

    /// A denying verdict as a refusal (403 with the verdict's reason and policies).
    package static func refusal(_ verdict: PolicyEngine.Verdict) -> Refusal {
        Refusal(
            .forbidden, .accessDenied, Reason(verdict.reason ?? Reason.policyDenied.rawValue), verdict.message,
            policies: verdict.policies)
    }
}
