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

/// Request authentication: the token and its proof of possession (or certificate), then the agent's state and binding.
extension ControlPlane {
    // MARK: Request authentication

    /// Authenticates a request to a protected endpoint: token and DPoP proof (see ``RequestAuthenticator``), then the
    /// revocation list, then the state of the agent and of every agent in its delegation chain.
    public func authenticate(
        authorization: String?, dpop: String?, method: String, path: String, base: String? = nil,
        certificate: ClientCertificate? = nil
    ) throws(WardenError) -> AuthenticatedAgent {
        let (claims, entry) = try verifyCredentials(
            authorization: authorization, dpop: dpop, method: method, path: path, base: base, certificate: certificate)
        let who = AuthenticatedAgent(claims: claims, agent: entry.record)
        do throws(WardenError) {
            try admit(who, key: entry.key, certificate: certificate)
        } catch {
            throw error.naming(entry.record.spiffeID.description)
        }
        return who
    }

    /// The first half of ``authenticate``: the token and its proof of possession; returns the claims and the token's
    /// agent. A failure here names no agent (the credentials prove nothing).
    public func verifyCredentials(
        authorization: String?, dpop: String?, method: String, path: String, base: String? = nil,
        certificate: ClientCertificate? = nil
    ) throws(WardenError) -> (AccessTokenClaims, AgentDirectory.Entry) {
        let claims = try authenticator.authenticate(
            authorization: authorization, dpop: dpop, method: method, url: (base ?? issuer) + path,
            clientCertificate: certificate?.thumbprint)
        guard let entry = agents.entry(claims.agent.description) else {
            throw WardenError(.invalidToken, "the token's agent is not registered")
        }
        return (claims, entry)
    }

    /// The agent whose genuine token was presented with another key's proof (or another client certificate), when
    /// `error` is that refusal: the token alone verifies and is not revoked. Used to attribute the theft to the
    /// victim (the risk engine revokes its tokens); never to admit anything.
    /// A certificate-bound token over a connection with another SVID of the same agent (a renewal race) is not a
    /// theft: the certificate proves who is calling.
    public func stolenTokenHolder(_ error: WardenError, authorization: String?, certificate: ClientCertificate? = nil)
        -> AgentDirectory.Entry?
    {
        guard RequestAuthenticator.isKeyMismatch(error),
            let claims = authenticator.claimsOfPresentedToken(authorization: authorization),
            !revocations.isRevoked(claims.jti)
        else { return nil }
        if let certificate, certificate.spiffeID == claims.agent { return nil }
        if risk.isCutOff(agent: claims.agent.description, issuedAt: claims.issuedAt, jti: claims.jti) { return nil }
        return agents.entry(claims.agent.description)
    }

    /// The second half of ``authenticate``: the revocation list, the agent's state, the token's binding to its
    /// enrolled key or SVID, and the state of every agent in the delegation chain. A failure here is the named
    /// agent's (its token is genuine).
    public func admit(_ who: AuthenticatedAgent, key: AgentDirectory.EnrolledKey?, certificate: ClientCertificate?)
        throws(WardenError)
    {
        let (claims, record) = (who.claims, who.agent)
        guard !revocations.isRevoked(claims.jti) else {
            throw WardenError(.invalidToken, "the access token is revoked", reason: "token_revoked")
        }
        if risk.isCutOff(agent: claims.agent.description, issuedAt: claims.issuedAt, jti: claims.jti) {
            throw WardenError(.invalidToken, "the access token is revoked", reason: "token_revoked")
        }
        switch record.state {
        case .active: break
        case .quarantined: throw WardenError(.accessDenied, "the agent is quarantined", reason: "quarantined")
        case .pending, .revoked, .decommissioned:
            throw WardenError(
                .invalidToken, "the agent is \(record.state.rawValue)", reason: "agent_\(record.state.rawValue)")
        }
        switch claims.binding {
        case .dpop where key == nil && record.manifest.node != nil:
            // A node-attested agent has no enrolled key: its token is bound to the key that proved possession at
            // the token endpoint (with its node's JWT-SVID), and the proof of this request was made with that key.
            break
        case .dpop(let jkt):
            guard let enrolled = key?.thumbprint, DPoPVerifier.constantTimeEqual(enrolled, jkt) else {
                throw WardenError(.invalidToken, "the access token is not bound to the agent's enrolled key")
            }
        case .certificate:
            // The thumbprint matched the presented certificate; it must also be the agent's own SVID.
            guard certificate?.spiffeID == claims.agent else {
                throw WardenError(.invalidToken, "the client certificate is not the agent's")
            }
        }
        for party in claims.delegation {
            if let a = agents.agent(party), a.state != .active {
                throw WardenError(
                    .invalidToken, "a party in the delegation chain is \(a.state.rawValue)",
                    reason: "delegation_\(a.state.rawValue)")
            }
        }
    }
}
