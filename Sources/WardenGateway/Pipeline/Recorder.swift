import Cedar
import Crypto
import WardenAudit
import WardenControlPlane
import WardenCore
import WardenIdentity
import WardenRisk

/// Stage: write it down. The one place a call's audit entry and risk event are built, for every front end: the
/// allowed call's admission entry (fail closed: no entry, no call), a refusal's entry (or, when it names no agent,
/// its line in the source's refusal summary) and risk event, and the risk event of a finished exchange with the bytes
/// that moved.
package struct Recorder: Sendable {
    let cp: ControlPlane

    /// What the risk engine is told about a call: the resource and segment it reached, and what kind of call it was.
    /// Calls without one are recorded but not judged (an MCP transport refusal).
    package struct RiskFeed: Sendable {
        package var kind: RiskEvent.Kind
        package var resource: String
        package var segment: String?

        package init(_ kind: RiskEvent.Kind, resource: String, segment: String? = nil) {
            self.kind = kind
            self.resource = resource
            self.segment = segment
        }
    }

    /// What a front end says about its call for the record.
    package struct Entry: Sendable {
        package var action: String
        package var resource: String
        package var details: [(String, String)]
        /// `sha256:` over what the agent asked for (the request line for `/r/`).
        package var requestDigest: String?
        package var risk: RiskFeed?

        package init(
            action: String, resource: String, details: [(String, String)] = [], requestDigest: String? = nil,
            risk: RiskFeed? = nil
        ) {
            self.action = action
            self.resource = resource
            self.details = details
            self.requestDigest = requestDigest
            self.risk = risk
        }
    }

    /// The audit entry (a `decision` when `decision` is given, else a `system` entry about the call).
    package func event(
        _ call: Call, _ entry: Entry, who: AuthenticatedAgent? = nil, decision: AuditEvent.Decision?,
        reason: String?, policies: [String] = [], message: String? = nil
    ) -> AuditEvent {
        let agent = who ?? call.caller?.agent
        var details = entry.details
        if let agent { details.append(("jti", agent.claims.jti)) }
        let record = agent?.agent
        return AuditEvent(
            kind: decision == nil ? .system : .decision, action: entry.action,
            actor: record?.spiffeID.description ?? "unauthenticated", agent: record?.spiffeID.description,
            agentID: record?.id, resource: entry.resource, decision: decision, reason: reason, policies: policies,
            trust: call.caller?.trust ?? record.map { cp.trust.score($0) }, delegation: agent?.claims.delegation ?? [],
            requestDigest: entry.requestDigest, latencyMicros: call.elapsedMicros, source: call.source,
            message: message, details: details)
    }

    /// Refusal reasons that follow from a containment already in force, not handed back to the risk engine.
    static let consequences: Set<String> = ["token_revoked", "quarantined"]

    /// The admission record of an allowed call: written before anything is forwarded, or the call is refused.
    /// Returns the entry's ticket, for the risk engine's event about the exchange.
    @discardableResult
    package func admit(_ call: Call, _ entry: Entry, policies: [String]) throws(Refusal) -> AuditTicket {
        do throws(WardenError) {
            var e = event(call, entry, decision: .allow, reason: nil, policies: policies)
            let ticket = AuditTicket()
            e.ticket = ticket
            try cp.audit.submit(e)
            return ticket
        } catch {
            throw Refusal(.serviceUnavailable, .storage, .auditUnavailable, "the audit log is unavailable")
        }
    }

    /// A refused call: recorded as its agent's when the credentials were genuine, else counted in the source's
    /// refusal summary (so that a flood of garbage does not flood the log); then handed to the risk engine, by agent
    /// or by source address. The nonce challenge is neither.
    package func refused(_ call: Call, _ entry: Entry, _ refusal: Refusal) {
        guard !refusal.isChallenge else { return }
        let who = refusal.who ?? call.caller?.agent
        let reason = refusal.reason.rawValue
        var ticket: AuditTicket?
        if who == nil {
            cp.sources.refused(call.source, reason: reason, now: cp.now())
        } else {
            var e = event(
                call, entry, who: who, decision: .deny, reason: reason, policies: refusal.policies,
                message: refusal.error.message)
            ticket = AuditTicket()
            e.ticket = ticket
            try? cp.audit.submit(e)
        }
        guard let feed = entry.risk else { return }
        // A genuine but revoked token, a quarantined agent or the engine's throttle is the consequence of a
        // containment (or an operator's action), not new behaviour: counted as the agent's refusals, a revocation the
        // engine made after a theft would throttle and then quarantine the victim while its client catches up, and a
        // throttle would escalate into a quarantine on the agent's own retries.
        if who != nil, refusal.byRiskEngine || Self.consequences.contains(reason) { return }
        submit(call, who: who, feed: feed, allowed: false, reason: reason, bytesIn: 0, bytesOut: 0, cause: ticket)
    }

    /// An allowed call's exchange ended: the risk engine sees it with the bytes that moved each way.
    /// While a long response still streams (`ended` false, every few MiB), only its bytes: the engine counts them
    /// toward the agent's volume at once, not as a request; the call itself is judged when it ends.
    package func exchanged(
        _ call: Call, _ feed: RiskFeed, bytesIn: Int64, bytesOut: Int64, ended: Bool = true, cause: AuditTicket?
    ) {
        submit(
            call, who: call.caller?.agent, feed: feed, allowed: true, reason: nil, bytesIn: bytesIn, bytesOut: bytesOut,
            cause: cause, continuation: !ended)
    }

    /// Records something about the call that is neither its admission nor its refusal (best effort: a listing, a
    /// call held for approval, a DLP finding).
    package func note(
        _ call: Call, _ entry: Entry, decision: AuditEvent.Decision?, reason: String?, policies: [String] = [],
        message: String? = nil
    ) {
        try? cp.audit.submit(
            event(call, entry, decision: decision, reason: reason, policies: policies, message: message))
    }

    private func submit(
        _ call: Call, who: AuthenticatedAgent?, feed: RiskFeed, allowed: Bool, reason: String?, bytesIn: Int64,
        bytesOut: Int64, cause: AuditTicket?, continuation: Bool = false
    ) {
        let agentID = who?.agent.spiffeID.description ?? call.source.map { "source:" + $0 } ?? ""
        var e = RiskEvent(
            time: cp.clock.wallSeconds, agentID: agentID, roles: who?.agent.manifest.roles ?? [],
            kind: who == nil && !allowed ? .authFailure : feed.kind, resource: feed.resource,
            segment: feed.segment, allowed: allowed, reason: reason, bytesIn: bytesIn, bytesOut: bytesOut,
            subject: who.flatMap { $0.claims.actors.isEmpty ? nil : $0.claims.subject })
        e.cause = cause
        e.continuation = continuation
        cp.risk.submit(e)
    }
}

/// The pipeline's stages, shared by every front end.
package struct Pipeline: Sendable {
    package let authenticate: Authenticate
    package let limit: Limit
    package let decide: Decide
    package let recorder: Recorder

    package init(cp: ControlPlane, limiter: RateLimiter) {
        authenticate = Authenticate(cp: cp)
        limit = Limit(cp: cp, limiter: limiter)
        decide = Decide(cp: cp)
        recorder = Recorder(cp: cp)
    }
}
