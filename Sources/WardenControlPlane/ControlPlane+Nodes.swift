import Cedar
import Crypto
import Foundation
import WardenCore
import WardenIdentity

/// Node agents (`warden node`): an enrolled agent that attests the processes of its host by the kernel and obtains
/// X.509- and JWT-SVIDs for the agents whose manifests name it (`node:` and `selectors:`), the way a SPIRE agent
/// obtains them for its registration entries. The node never chooses whom it speaks for: the server answers only for
/// the agents that name the authenticated node, and only while they are served.
extension ControlPlane {
    /// The agents whose manifests name `node` (pending or active; quarantined, revoked and decommissioned agents are
    /// left out, so the node stops serving them).
    public func nodeAgents(of node: AgentRecord) -> [AgentRecord] {
        agents.all().filter { $0.manifest.node == node.name && ($0.state == .pending || $0.state == .active) }
            .sorted { $0.name < $1.name }
    }

    /// `GET /v1/node/entries`: what the node serves: its agents with their selectors, and the trust bundles.
    public func nodeEntries(for who: AuthenticatedAgent) -> JSONValue {
        .object([
            ("node", .string(who.agent.spiffeID.description)), ("trust_domain", .string(config.trustDomain)),
            (
                "agents",
                .array(
                    nodeAgents(of: who.agent).map { r in
                        .object([
                            ("name", .string(r.name)), ("spiffe_id", .string(r.spiffeID.description)),
                            ("selectors", .array(r.manifest.selectors.map { .string($0) })),
                        ])
                    })
            ),
            ("bundle", .string(bundlePEM)), ("jwks", spiffeBundle()),
        ])
    }

    /// The agent `name` if `who` is its node and it may be served; a pending agent becomes active here, the first
    /// time its node attests it (it has no join token enrollment of its own).
    func attestedAgent(_ name: String, by who: AuthenticatedAgent) throws(WardenError) -> AgentRecord {
        guard AgentManifest.isSegment(name), let id = try? SPIFFEID.agent(name, trustDomain: config.trustDomain),
            let r = agents.agent(id.description), r.manifest.node == who.agent.name
        else {
            throw WardenError(.accessDenied, "this node does not attest an agent named '\(name.prefix(64))'")
        }
        switch r.state {
        case .active: return r
        case .pending:
            return try writes.withLock { _ throws(WardenError) in
                // Its join token can never enroll it: retired, so that no credential is left outstanding.
                try store.retireJoinTokens(agentID: r.id, now: now())
                let updated = try store.transition(
                    agentID: r.id, to: .active, actor: "node:\(who.agent.name)",
                    reason: "attested by node \(who.agent.name) (\(r.manifest.selectors.joined(separator: ", ")))",
                    now: now())
                agents.update(updated)
                return updated
            }
        default: throw WardenError(.unauthorizedClient, "the agent is \(r.state.rawValue)")
        }
    }

    /// `POST /v1/node/svid`: an X.509-SVID for one of the node's agents from a CSR of a key the node generated for
    /// it; `ttl` (seconds) may shorten the configured lifetime. Returns `(agent, chain PEM, bundle PEM, expiry)`.
    public func issueNodeSVID(agent name: String, csrPEM: String, ttl: Int64?, by who: AuthenticatedAgent)
        throws(WardenError) -> (AgentRecord, String, String, Int64)
    {
        let r = try attestedAgent(name, by: who)
        let t = now()
        let lifetime = min(ttl ?? config.svidTTL, config.svidTTL)
        do {
            let cert = try ca.issueSVID(
                csrPEM: csrPEM, id: r.spiffeID, lifetime: TimeInterval(lifetime),
                now: Date(timeIntervalSince1970: TimeInterval(t)))
            try store.record(
                AgentEvent(
                    agentID: r.id, at: t, kind: "svid_issued", actor: "node:\(who.agent.name)",
                    reason: "serial \(cert.serialNumber), expires \(Int64(cert.notValidAfter.timeIntervalSince1970))"))
            return (r, try ca.chainPEM(cert), bundlePEM, Int64(cert.notValidAfter.timeIntervalSince1970))
        } catch let e as WardenError {
            throw e
        } catch {
            throw WardenError(.invalidRequest, "the SVID could not be issued")
        }
    }

    /// `POST /v1/node/jwt-svid`: a JWT-SVID for one of the node's agents and the audiences asked for (1 to 8, each at
    /// most 512 bytes); `ttl` in seconds (10 to 3600; the access token lifetime when absent).
    public func issueJWTSVID(agent name: String, audiences: [String], ttl: Int64?, by who: AuthenticatedAgent)
        throws(WardenError) -> (AgentRecord, String, Int64)
    {
        guard (1...8).contains(audiences.count), audiences.allSatisfy({ !$0.isEmpty && $0.utf8.count <= 512 }) else {
            throw WardenError(.invalidRequest, "audience must be 1 to 8 strings of 1 to 512 bytes")
        }
        let r = try attestedAgent(name, by: who)
        let t = now()
        let jti = UUID().uuidString
        let (token, exp) = try JWTSVID.sign(
            subject: r.spiffeID, audiences: audiences, key: keys.current, issuedAt: t,
            lifetime: ttl ?? config.accessTTL, jti: jti)
        try store.record(
            AgentEvent(
                agentID: r.id, at: t, kind: "jwt_svid_issued", actor: "node:\(who.agent.name)",
                reason: "jti \(jti), audience \(audiences.joined(separator: " ").prefix(512)), expires \(exp)"))
        return (r, token, exp)
    }

    /// Verifies a JWT-SVID presented as an OAuth client assertion (`jwt-spiffe`, draft-ietf-oauth-spiffe-client-auth)
    /// at `endpoint`: signed by this trust domain's keys, for this server, not yet expired, naming a node-attested
    /// agent. Returns the agent.
    func verifySPIFFEAssertion(_ text: String, endpoint: String) throws(WardenError) -> (
        AgentRecord, jti: String, expiresAt: Int64
    ) {
        let t = now()
        var verified: JWTSVID.Verified?
        for audience in [endpoint, tokenEndpoint] {
            if let v = try? JWTSVID.verify(
                text, audience: audience, now: t, skew: config.clockSkew, trustDomain: config.trustDomain,
                code: .invalidClient, key: { kid in keys.publicKey(kid: kid) })
            {
                verified = v
                break
            }
        }
        guard let verified else {
            // The first audience's error says what is wrong (signature, expiry, audience).
            _ = try JWTSVID.verify(
                text, audience: endpoint, now: t, skew: config.clockSkew, trustDomain: config.trustDomain,
                code: .invalidClient, key: { kid in keys.publicKey(kid: kid) })
            throw WardenError(.invalidClient, "the JWT-SVID does not verify")
        }
        // As a client assertion it must be short (the limit of private_key_jwt assertions) and is used once.
        guard let iat = verified.claims["iat"]?.integerValue, verified.expiresAt - iat <= Self.maxSPIFFEAssertionLife
        else {
            throw WardenError(
                .invalidClient,
                "a JWT-SVID client assertion needs iat and at most \(Self.maxSPIFFEAssertionLife) s of life")
        }
        guard let jti = verified.claims["jti"]?.stringValue, !jti.isEmpty, jti.utf8.count <= 256 else {
            throw WardenError(.invalidClient, "a JWT-SVID client assertion needs a jti")
        }
        guard let r = agents.agent(verified.subject.description), let nodeName = r.manifest.node else {
            throw WardenError(.invalidClient, "the JWT-SVID's agent is not registered as attested by a node")
        }
        // Its node must still be served: a quarantined or revoked node's JWT-SVIDs stop working at once.
        guard let node = try? SPIFFEID.agent(nodeName, trustDomain: config.trustDomain),
            agents.agent(node.description)?.state == .active
        else {
            throw WardenError(.invalidClient, "the agent's node is not active")
        }
        return (r, jti, verified.expiresAt)
    }

    /// The longest life of a JWT-SVID used as a client assertion, in seconds.
    static let maxSPIFFEAssertionLife: Int64 = 300

    /// Uses a JWT-SVID client assertion's `jti` up (kept in the store until the assertion expires).
    func useSPIFFEAssertion(agent: AgentRecord, jti: String, expiresAt: Int64) throws(WardenError) {
        var h = SHA256()
        h.update(data: Array("jwt-spiffe\n\(agent.spiffeID.description)\n\(jti)".utf8))
        guard
            try store.useAssertion(
                key: Attestation.hex(h.finalize()), until: expiresAt + config.clockSkew + 1, now: now())
        else {
            throw WardenError(.invalidClient, "the JWT-SVID was already used as a client assertion (jti replay)")
        }
    }
}
