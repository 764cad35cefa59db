import Cedar
import Crypto
import Foundation
import SwiftASN1
import Testing
import WardenCore
import WardenGateway
import WardenIdentity
import WardenTestSupport
import X509

@testable import WardenControlPlane
@testable import WardenServer

/// RFC 8705 certificate-bound tokens: the control-plane logic behind the mutual-TLS listener (the TLS handshake
/// itself is exercised by the live interop test with requests and curl).
@Suite("Certificate-bound tokens (RFC 8705)")
struct MutualTLSTests {
    /// An X.509-SVID for `agent` issued by the fixture's CA, as the TLS layer would hand it over.
    func svid(_ f: Fixture, _ agent: TestAgent) throws -> ClientCertificate {
        let cert = try f.cp.ca.issueSVID(
            csrPEM: try X509CSR.make(P256.Signing.PrivateKey()), id: agent.record.spiffeID,
            now: Date(timeIntervalSince1970: TimeInterval(f.clock.now)))
        var der = DER.Serializer()
        try der.serialize(cert)
        return try ClientCertificate(der: der.serializedBytes)
    }

    @Test("tls_client_auth: the SVID identifies the agent and binds the token; only that certificate can use it")
    func certificateBound() throws {
        let f = try Fixture { $0.tlsListen = "127.0.0.1:8444" }
        let a = try f.agent("support-bot")
        let b = try f.agent("kb-agent")
        let certA = try svid(f, a)
        let r = try f.cp.token(form: ["grant_type": "client_credentials"], dpop: nil, certificate: certA)
        let c = try claims(r.accessToken)
        #expect(c["cnf"] == .object([("x5t#S256", .string(certA.thumbprint))]))
        #expect(c["sub"]?.stringValue == a.id)

        let who = try f.cp.authenticate(
            authorization: "Bearer \(r.accessToken)", dpop: nil, method: "GET", path: "/v1/whoami",
            certificate: certA)
        #expect(who.agent.name == "support-bot")
        // Another SVID of the same agent, another agent's SVID, no certificate, or the DPoP scheme: refused.
        for cert in [try svid(f, a), try svid(f, b), nil] {
            #expect(throws: WardenError(.invalidToken, "")) {
                try f.cp.authenticate(
                    authorization: "Bearer \(r.accessToken)", dpop: nil, method: "GET", path: "/v1/whoami",
                    certificate: cert)
            }
        }
        #expect(throws: WardenError(.invalidToken, "")) {
            try f.cp.authenticate(
                authorization: "DPoP \(r.accessToken)",
                dpop: try a.signer.proof(
                    method: "GET", url: f.cp.url(path: "/v1/whoami"), accessToken: r.accessToken, now: f.clock.now),
                method: "GET", path: "/v1/whoami", certificate: certA)
        }
        // A DPoP-bound token is never a bearer token, even with the agent's certificate.
        let dpopToken = try f.token(a)
        #expect(throws: WardenError(.invalidToken, "")) {
            try f.cp.authenticate(
                authorization: "Bearer \(dpopToken)", dpop: nil, method: "GET", path: "/v1/whoami", certificate: certA)
        }
        // Metadata advertises the binding and the mTLS token endpoint.
        let meta = f.cp.authorizationServerMetadata()
        #expect(meta["tls_client_certificate_bound_access_tokens"] == .bool(true))
        #expect(meta["mtls_endpoint_aliases"]?["token_endpoint"]?.stringValue == "https://127.0.0.1:8444/v1/token")
    }

    @Test("a certificate and an assertion of different agents, a quarantined agent, no credentials at all")
    func refusals() throws {
        let f = try Fixture()
        let a = try f.agent("support-bot")
        let b = try f.agent("kb-agent")
        let certA = try svid(f, a)
        #expect(throws: WardenError(.invalidClient, "")) {
            try f.cp.token(form: try f.form(b), dpop: nil, certificate: certA)
        }
        #expect(throws: WardenError(.invalidClient, "")) {
            try f.cp.token(
                form: ["grant_type": "client_credentials", "client_id": b.id], dpop: nil, certificate: certA)
        }
        #expect(throws: WardenError(.invalidClient, "")) {
            try f.cp.token(form: ["grant_type": "client_credentials"], dpop: nil, certificate: nil)
        }
        _ = try f.cp.transition(agent: "support-bot", to: .quarantined, reason: "test")
        #expect(throws: WardenError(.unauthorizedClient, "")) {
            try f.cp.token(form: ["grant_type": "client_credentials"], dpop: nil, certificate: certA)
        }
        // Warden's own server certificate names no agent; garbage is not a certificate.
        let server = try f.cp.ca.issueServerCertificate(key: P256.Signing.PrivateKey(), hosts: ["127.0.0.1"])
        var der = DER.Serializer()
        try der.serialize(server)
        let serverCert = try ClientCertificate(der: der.serializedBytes)
        #expect(serverCert.spiffeID.description == "spiffe://warden.local/warden")
        #expect(throws: WardenError(.invalidClient, "")) {
            try f.cp.token(form: ["grant_type": "client_credentials"], dpop: nil, certificate: serverCert)
        }
        #expect(throws: WardenError(.invalidClient, "")) { try ClientCertificate(der: [0x30, 0x03, 0x02, 0x01, 0x00]) }
    }
}
