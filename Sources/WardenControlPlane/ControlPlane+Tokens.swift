import Cedar
import Crypto
import Foundation
import SwiftASN1
import Synchronization
import WardenAudit
import WardenCore
import WardenIdentity
import WardenRisk
import WardenStore
import X509

/// The token endpoint: client authentication (RFC 7523 assertions, RFC 8705 certificates), client credentials, RFC 8693
/// exchange and user delegation, narrowing and signing.
extension ControlPlane {
    // MARK: Tokens

    /// The scopes an agent may hold: `route:<r>`, `tool:<server/tool>`, `peer:<name>` from its manifest.
    public func scopes(of r: AgentRecord) -> Set<String> {
        Set(
            r.manifest.routes.map { "route:" + $0 } + r.manifest.tools.map { "tool:" + $0 }
                + r.manifest.peers.map { "peer:" + $0 })
    }

    /// The audiences an agent may request: this server, the configured extra audiences, and its peers' SPIFFE IDs.
    public func audiences(of r: AgentRecord) -> Set<String> {
        var out: Set<String> = [issuer]
        out.formUnion(config.audiences)
        for p in r.manifest.peers {
            if let id = try? SPIFFEID.agent(p, trustDomain: config.trustDomain) { out.insert(id.description) }
        }
        return out
    }

    /// Authenticates the client of a token request and decides what the token is bound to. With a `DPoP` proof: an
    /// RFC 7523 assertion signed by the enrolled key of an active agent and a proof made with that same key (token
    /// bound to the key). Without a proof, on mutual TLS with an X.509-SVID: the certificate identifies the agent
    /// (`tls_client_auth`, RFC 8705 §2.1; an assertion, if sent, must be the same agent's) and binds the token.
    func authenticateClient(
        _ form: [String: String], dpop: String?, base: String, certificate: ClientCertificate?
    ) throws(WardenError) -> (AgentRecord, TokenBinding) {
        // Once a credential has verified, a refusal is that agent's (recorded on its own, not summarised).
        var verified: String?
        do throws(WardenError) {
            return try authenticateClient(form, dpop: dpop, base: base, certificate: certificate, verified: &verified)
        } catch {
            throw verified.map { error.naming($0) } ?? error
        }
    }

    func authenticateClient(
        _ form: [String: String], dpop: String?, base: String, certificate: ClientCertificate?,
        verified: inout String?
    ) throws(WardenError) -> (AgentRecord, TokenBinding) {
        let endpoint = base + "/v1/token"
        if form["client_assertion_type"] == Self.spiffeAssertionType {
            // A JWT-SVID from the agent's node (draft-ietf-oauth-spiffe-client-auth): the agent holds no enrolled
            // key; the token is bound to the key that signs the DPoP proof, which the proof must come with.
            guard let text = form["client_assertion"] else {
                throw WardenError(.invalidClient, "client_assertion is required")
            }
            let (r, jti, expiresAt) = try verifySPIFFEAssertion(text, endpoint: endpoint)
            if let cid = form["client_id"], cid != r.spiffeID.description {
                throw WardenError(.invalidClient, "client_id does not match the JWT-SVID")
            }
            verified = r.spiffeID.description
            guard r.state == .active else { throw WardenError(.unauthorizedClient, "the agent is \(r.state.rawValue)") }
            guard dpop != nil else {
                throw WardenError(.invalidDPoPProof, "a JWT-SVID client assertion needs a DPoP proof to bind the token")
            }
            let proof = try authenticator.proofs.verify(proof: dpop, method: "POST", url: endpoint)
            // Used once, and only once the proof verified: a nonce challenge does not spend it.
            try useSPIFFEAssertion(agent: r, jti: jti, expiresAt: expiresAt)
            return (r, .dpop(jkt: proof.thumbprint))
        }
        var record: AgentRecord?
        var key: AgentDirectory.EnrolledKey?
        if form["client_assertion"] != nil || form["client_assertion_type"] != nil || certificate == nil {
            guard form["client_assertion_type"] == ClientAssertion.type else {
                throw WardenError(
                    .invalidClient,
                    "client_assertion_type must be \(ClientAssertion.type) (private_key_jwt) or \(Self.spiffeAssertionType)"
                )
            }
            guard let text = form["client_assertion"] else {
                throw WardenError(.invalidClient, "client_assertion is required")
            }
            let assertion = try ClientAssertion.parse(text)
            if let cid = form["client_id"], cid != assertion.clientID.description {
                throw WardenError(.invalidClient, "client_id does not match the client assertion")
            }
            guard let entry = agents.entry(assertion.clientID.description), let k = entry.key else {
                throw WardenError(.invalidClient, "the agent is not registered or not enrolled")
            }
            do throws(WardenError) {
                try ClientAssertion.verify(
                    assertion, key: k.publicKey, audiences: [endpoint, tokenEndpoint, issuer], now: now(),
                    replayCache: assertionReplay, skew: config.clockSkew)
            } catch {
                // Signed by the agent's key but refused (replayed, expired, wrong audience): the agent's refusal.
                if (try? assertion.jws.verifyES256(with: k.publicKey, code: .invalidClient, what: "client assertion"))
                    != nil
                {
                    verified = entry.record.spiffeID.description
                }
                throw error
            }
            verified = entry.record.spiffeID.description
            if guardsAssertions {
                // Kept in the store for the assertion's longest life, so a restart does not forget it.
                var h = SHA256()
                let jti = assertion.jws.payload["jti"]?.stringValue ?? ""
                h.update(data: Array("\(assertion.clientID.description)\n\(jti)".utf8))
                // The longest an assertion is good for: 300 s ahead, with the clock skew on both sides.
                let until = now() + 300 + 2 * config.clockSkew + 1
                guard try store.useAssertion(key: Attestation.hex(h.finalize()), until: until, now: now()) else {
                    throw WardenError(.invalidClient, "the client assertion was already used (jti replay)")
                }
            }
            record = entry.record
            key = k
        }
        if let certificate, dpop == nil {
            if let record, record.spiffeID != certificate.spiffeID {
                throw WardenError(.invalidClient, "the client certificate belongs to another agent")
            }
            if let cid = form["client_id"], cid != certificate.spiffeID.description {
                throw WardenError(.invalidClient, "client_id does not match the client certificate")
            }
            guard let r = record ?? agents.agent(certificate.spiffeID.description),
                r.keyThumbprint != nil || r.manifest.node != nil
            else {
                throw WardenError(.invalidClient, "the client certificate's agent is not registered or not enrolled")
            }
            verified = r.spiffeID.description
            guard r.state == .active else { throw WardenError(.unauthorizedClient, "the agent is \(r.state.rawValue)") }
            return (r, .certificate(x5t: certificate.thumbprint))
        }
        guard let record, let key else { throw WardenError(.invalidClient, "client authentication is required") }
        guard record.state == .active else {
            throw WardenError(.unauthorizedClient, "the agent is \(record.state.rawValue)")
        }
        let proof = try authenticator.proofs.verify(
            proof: dpop, method: "POST", url: endpoint, expectedThumbprint: key.thumbprint)
        return (record, .dpop(jkt: proof.thumbprint))
    }

    /// The `client_assertion_type` of a JWT-SVID (draft-ietf-oauth-spiffe-client-auth).
    public static let spiffeAssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-spiffe"

    /// `POST /v1/token` with its form parameters (each at most once).
    public func token(
        form: [String: String], dpop: String?, base: String? = nil, certificate: ClientCertificate? = nil
    ) throws(WardenError) -> TokenResponse {
        guard let grant = form["grant_type"] else { throw WardenError(.invalidRequest, "grant_type is required") }
        switch grant {
        case "client_credentials", Self.tokenExchangeGrant: break
        default:
            throw WardenError(
                .unsupportedGrantType, "supported grant types: client_credentials, \(Self.tokenExchangeGrant)")
        }
        let (client, binding) = try authenticateClient(
            form, dpop: dpop, base: base ?? issuer, certificate: certificate)
        do throws(WardenError) {
            return try token(form: form, grant: grant, client: client, binding: binding)
        } catch {
            throw error.naming(client.spiffeID.description)
        }
    }

    /// The rest of ``token(form:dpop:base:certificate:)`` once the client is authenticated.
    func token(form: [String: String], grant: String, client: AgentRecord, binding: TokenBinding)
        throws(WardenError) -> TokenResponse
    {
        if form["resource"] != nil && form["audience"] != nil {
            throw WardenError(.invalidRequest, "give audience or resource, not both")
        }
        let audience = form["audience"] ?? form["resource"] ?? issuer
        guard audiences(of: client).contains(audience) else {
            throw WardenError(.invalidTarget, "the agent may not request tokens for that audience")
        }
        let requested: Set<String>? = form["scope"].map { Set($0.split(separator: " ").map(String.init)) }
        let t = now()
        if grant == "client_credentials" {
            let scope = try narrow(requested, within: scopes(of: client))
            let contents = AccessTokenContents(
                subject: client.spiffeID.description, audiences: [audience], binding: binding, issuedAt: t,
                expiresAt: t + config.accessTTL, scope: scope)
            return TokenResponse(
                accessToken: try sign(contents), expiresIn: config.accessTTL, scope: contents.scope,
                issuedTokenType: nil, contents: contents)
        }
        return try exchange(
            form: form, actor: client, binding: binding, audience: audience, requested: requested, now: t)
    }

    /// `POST /v1/token` with its audit record: a token is returned only once the record of its grant is on disk
    /// (`storage_error`, and no token, when it cannot be written).
    public func auditedToken(
        form: [String: String], dpop: String?, base: String? = nil, certificate: ClientCertificate? = nil,
        requestDigest: String? = nil, source: String? = nil
    ) async throws(WardenError) -> TokenResponse {
        let start = ContinuousClock.now
        let grant = form["grant_type"] ?? ""
        let action = grant == Self.tokenExchangeGrant ? "token.exchange" : "token.issue"
        func micros() -> Int64 {
            let d = ContinuousClock.now - start
            return d.components.seconds * 1_000_000 + d.components.attoseconds / 1_000_000_000_000
        }
        // A refusal is recorded where every refusal of the endpoint is (`WardenRouter.respond`).
        let response = try token(form: form, dpop: dpop, base: base, certificate: certificate)
        let c = response.contents
        let client = c.actors.first ?? c.subject
        var details: [(String, String)] = [
            ("grant_type", grant), ("jti", c.jti), ("scope", c.scope ?? ""), ("expires_at", String(c.expiresAt)),
        ]
        switch c.binding {
        case .dpop(let jkt): details.append(("cnf.jkt", jkt))
        case .certificate(let x5t): details.append(("cnf.x5t#S256", x5t))
        }
        if !c.actors.isEmpty { details.append(("subject", c.subject)) }
        try await audit.record(
            AuditEvent(
                kind: .decision, action: action, actor: client, agent: client, agentID: agents.agent(client)?.id,
                resource: c.audiences.first, decision: .allow,
                delegation: c.actors.isEmpty ? [] : c.actors.dropFirst() + [c.subject],
                requestDigest: requestDigest, latencyMicros: micros(), source: source, details: details))
        return response
    }

    /// RFC 8693 delegation. The subject token is a Warden access token whose audience names the acting agent (the
    /// subject's consent: it asked for a token for this peer). The new token keeps `sub`, adds the actor on top of
    /// the `act` chain, and only narrows: its audience must be allowed for the actor and every agent of the chain,
    /// its scopes are within the subject token's and every party's, and it expires no later than the subject token.
    /// An unacceptable subject token is `invalid_request` (RFC 8693 §2.2.2).
    func exchange(
        form: [String: String], actor: AgentRecord, binding: TokenBinding, audience: String, requested: Set<String>?,
        now t: Int64
    ) throws(WardenError) -> TokenResponse {
        guard let subjectToken = form["subject_token"] else {
            throw WardenError(.invalidRequest, "subject_token is required for token exchange")
        }
        guard let type = form["subject_token_type"], type == Self.accessTokenType || type == Self.jwtTokenType else {
            throw WardenError(.invalidRequest, "subject_token_type must be \(Self.accessTokenType)")
        }
        if form["actor_token"] != nil {
            throw WardenError(.invalidRequest, "actor_token is not accepted: the actor is the authenticated client")
        }
        if let rtt = form["requested_token_type"], rtt != Self.accessTokenType {
            throw WardenError(.invalidRequest, "requested_token_type must be \(Self.accessTokenType)")
        }
        if let iss = UserSubjectToken.claimedIssuer(subjectToken), iss != issuer, let trusted = trustedIssuers[iss] {
            return try userExchange(
                subjectToken, issuer: trusted, actor: actor, binding: binding, audience: audience, requested: requested,
                now: t)
        }
        let subject: AccessTokenClaims
        do {
            subject = try authenticator.tokens.verify(subjectToken, audience: actor.spiffeID.description)
        } catch {
            throw WardenError(.invalidRequest, "subject_token: \(error.message)")
        }
        guard !revocations.isRevoked(subject.jti) else {
            throw WardenError(.invalidRequest, "subject_token is revoked")
        }
        guard agents.agent(subject.agent.description)?.state == .active else {
            throw WardenError(.invalidRequest, "the subject token's agent is not active")
        }
        let actors = [actor.spiffeID.description] + subject.actors
        guard actors.count <= config.maxDelegationDepth else {
            throw WardenError(.invalidRequest, "the delegation chain would be deeper than \(config.maxDelegationDepth)")
        }
        guard !subject.actors.contains(actors[0]) && subject.subject != actors[0] else {
            throw WardenError(.invalidRequest, "the agent is already in the delegation chain")
        }
        // Every agent of the chain must be active, must be allowed the audience, and bounds the scopes, which also
        // stay within the subject token's (no scope claim means none).
        var ceiling = subject.scopes.intersection(scopes(of: actor))
        for party in [subject.subject] + subject.actors {
            guard let p = agents.agent(party) else {
                // A user (from a trusted identity provider) is not an agent; an agent that is gone ends the chain.
                if party.hasPrefix("spiffe://") {
                    throw WardenError(.invalidRequest, "a party in the delegation chain is no longer registered")
                }
                continue
            }
            guard p.state == .active else {
                throw WardenError(.invalidRequest, "a party in the delegation chain is \(p.state.rawValue)")
            }
            guard audiences(of: p).contains(audience) else {
                throw WardenError(.invalidTarget, "a delegating agent may not reach that audience")
            }
            ceiling.formIntersection(scopes(of: p))
        }
        return try delegated(
            subject: subject.subject, actors: actors, scope: try narrow(requested, within: ceiling),
            until: subject.expiresAt, audience: audience, binding: binding, now: t)
    }

    /// An agent acting for a user: the subject token comes from a trusted identity provider and names the agent as
    /// its audience (the user's consent). The new token has `sub` = the user and `act` = the agent; scopes are those
    /// the user's token grants (`scope`, none when absent) within the agent's manifest; it expires no later than the
    /// user's token.
    func userExchange(
        _ token: String, issuer trusted: TrustedIssuer, actor: AgentRecord, binding: TokenBinding, audience: String,
        requested: Set<String>?, now t: Int64
    ) throws(WardenError) -> TokenResponse {
        let user = try UserSubjectToken(
            token, issuer: trusted, actor: actor.spiffeID.description, now: t, skew: config.clockSkew)
        if let jti = user.jti, revocations.isRevoked(jti) {
            throw WardenError(.invalidRequest, "subject_token is revoked")
        }
        return try delegated(
            subject: user.subject, actors: [actor.spiffeID.description],
            scope: try narrow(requested, within: user.scopes.intersection(scopes(of: actor))), until: user.expiresAt,
            audience: audience, binding: binding, now: t)
    }

    /// The scope string for `requested` (all of `allowed` when nothing is requested); `invalid_scope` when the request
    /// asks for more than `allowed`.
    func narrow(_ requested: Set<String>?, within allowed: Set<String>) throws(WardenError) -> String {
        if let requested, !requested.isSubset(of: allowed) {
            throw WardenError(
                .invalidScope,
                "scopes can only narrow; not granted: \(requested.subtracting(allowed).sorted().joined(separator: " "))"
            )
        }
        return (requested ?? allowed).sorted().joined(separator: " ")
    }

    /// Signs a delegated token that expires no later than `until` (the subject token's expiry).
    func delegated(
        subject: String, actors: [String], scope: String, until: Int64, audience: String, binding: TokenBinding,
        now t: Int64
    ) throws(WardenError) -> TokenResponse {
        let exp = min(t + config.accessTTL, until)
        guard exp > t else { throw WardenError(.invalidRequest, "subject_token has expired") }
        let contents = AccessTokenContents(
            subject: subject, audiences: [audience], binding: binding, issuedAt: t, expiresAt: exp, scope: scope,
            actors: actors)
        return TokenResponse(
            accessToken: try sign(contents), expiresIn: exp - t, scope: scope, issuedTokenType: Self.accessTokenType,
            contents: contents)
    }

    func sign(_ c: AccessTokenContents) throws(WardenError) -> String {
        let token: String
        do {
            token = try AccessTokenIssuer(key: keys.current, issuer: issuer).issue(c)
        } catch {
            throw WardenError(.storage, "the token could not be signed")
        }
        // The holder of the token's key (as `AccessTokenClaims.agent` reads it), for the engine's cut-offs.
        risk.noteIssued(agent: c.actors.first ?? c.subject, issuedAt: c.issuedAt, jti: c.jti)
        return token
    }
}
