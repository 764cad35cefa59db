import Cedar
import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing
import WardenCore
import WardenGateway
import WardenIdentity
import WardenTestSupport

@testable import WardenControlPlane
@testable import WardenServer

/// Every way a token or proof can be bad is refused on a protected endpoint with 401 and the right `error`, never a
/// crash; a good one passes.
@Suite("Request authentication at /v1/whoami")
struct AuthenticationTests {
    func whoami(_ f: Fixture, _ headers: HTTPFields) async throws -> (HTTPResponse.Status, String?, String) {
        try await f.app.test(.router) { client in
            try await client.execute(uri: "/v1/whoami", method: .get, headers: headers) { r in
                (r.status, r.errorCode, r.wwwAuthenticate)
            }
        }
    }

    @Test("a valid token and proof pass and whoami answers the agent")
    func valid() async throws {
        let f = try Fixture()
        let a = try f.agent("support-bot")
        let token = try f.token(a)
        try await f.app.test(.router) { client in
            try await client.execute(uri: "/v1/whoami", method: .get, headers: try f.authHeaders(a, token: token)) {
                r in
                #expect(r.status == .ok)
                #expect(r.json?["spiffe_id"]?.stringValue == "spiffe://warden.local/agent/support-bot")
                #expect(r.json?["agent_id"]?.stringValue == a.record.id)
                #expect(r.json?["exp"] != nil)
            }
        }
    }

    @Test("missing Authorization, missing proof, empty and malformed tokens")
    func missingAndMalformed() async throws {
        let f = try Fixture()
        let a = try f.agent("support-bot")
        let token = try f.token(a)
        var h = try f.authHeaders(a, token: token)
        h[.authorization] = nil
        var (s, e, w) = try await whoami(f, h)
        // RFC 6750 §3.1: a request without credentials is challenged without an error code.
        #expect(s == .unauthorized && e == "unauthenticated" && w == "DPoP algs=\"ES256\"")

        h = try f.authHeaders(a, token: token)
        h[HTTPField.Name("DPoP")!] = nil
        (s, e, w) = try await whoami(f, h)
        #expect(s == .unauthorized && e == "invalid_dpop_proof" && w.contains("invalid_dpop_proof"))

        for bad in ["DPoP ", "Bearer \(token)", "DPoP not.a.jwt", "DPoP a.b", "DPoP \(token) extra"] {
            h = try f.authHeaders(a, token: token)
            h[.authorization] = bad
            (s, e, _) = try await whoami(f, h)
            #expect(s == .unauthorized && e == "invalid_token", "\(bad.prefix(12))")
        }
        // Oversized token.
        h = try f.authHeaders(a, token: token)
        h[.authorization] = "DPoP " + String(repeating: "A", count: 20_000)
        (s, e, _) = try await whoami(f, h)
        #expect(s == .unauthorized && e == "invalid_token")
        // Oversized proof.
        h = try f.authHeaders(a, token: token)
        h[HTTPField.Name("DPoP")!] = String(repeating: "A", count: 20_000)
        (s, e, _) = try await whoami(f, h)
        #expect(s == .unauthorized && e == "invalid_dpop_proof")
    }

    @Test("two DPoP headers are refused")
    func twoProofs() async throws {
        let f = try Fixture()
        let a = try f.agent("support-bot")
        let token = try f.token(a)
        var h = try f.authHeaders(a, token: token)
        h.append(
            HTTPField(
                name: HTTPField.Name("DPoP")!,
                value: try a.signer.proof(
                    method: "GET", url: f.cp.url(path: "/v1/whoami"), accessToken: token, now: f.clock.now)))
        let (s, e, _) = try await whoami(f, h)
        #expect(s == .unauthorized && e == "invalid_dpop_proof")
    }

    @Test("expired and future-dated tokens")
    func timeWindows() async throws {
        let f = try Fixture()
        let a = try f.agent("support-bot")
        let token = try f.token(a)
        f.clock.advance(300 + 31)
        var (s, e, _) = try await whoami(f, try f.authHeaders(a, token: token))
        #expect(s == .unauthorized && e == "invalid_token")

        // A token issued in the future (signed by the real key, iat one hour ahead).
        let future = try AccessTokenIssuer(key: f.cp.keys.current, issuer: f.cp.issuer).issue(
            subject: a.record.spiffeID, audience: f.cp.issuer, jkt: a.signer.thumbprint, lifetime: 300,
            now: f.clock.now + 3600)
        (s, e, _) = try await whoami(f, try f.authHeaders(a, token: future))
        #expect(s == .unauthorized && e == "invalid_token")
    }

    @Test("wrongly signed, alg none and HS256-confused tokens")
    func forgedTokens() async throws {
        let f = try Fixture()
        let a = try f.agent("support-bot")
        let good = try f.token(a)
        // Signed by a key Warden does not know, with the real kid.
        let other = SigningKey(kid: f.cp.keys.current.kid, privateKey: P256.Signing.PrivateKey())
        let wrong = try AccessTokenIssuer(key: other, issuer: f.cp.issuer).issue(
            subject: a.record.spiffeID, audience: f.cp.issuer, jkt: a.signer.thumbprint, lifetime: 300,
            now: f.clock.now)
        var (s, e, _) = try await whoami(f, try f.authHeaders(a, token: wrong))
        #expect(s == .unauthorized && e == "invalid_token")

        let parts = good.split(separator: ".").map(String.init)
        func header(_ alg: String) -> String {
            Base64URL.encode(Array("{\"alg\":\"\(alg)\",\"typ\":\"at+jwt\",\"kid\":\"\(f.cp.keys.current.kid)\"}".utf8))
        }
        let none = header("none") + "." + parts[1] + "."
        (s, e, _) = try await whoami(f, try f.authHeaders(a, token: none))
        #expect(s == .unauthorized && e == "invalid_token")

        // HS256 with the public key's bytes as the HMAC secret (the classic confusion).
        let input = header("HS256") + "." + parts[1]
        let secret = SymmetricKey(data: f.cp.keys.current.privateKey.publicKey.x963Representation)
        let mac = HMAC<SHA256>.authenticationCode(for: Array(input.utf8), using: secret)
        let hs = input + "." + Base64URL.encode(Array(mac))
        (s, e, _) = try await whoami(f, try f.authHeaders(a, token: hs))
        #expect(s == .unauthorized && e == "invalid_token")
    }

    @Test("replayed proof, wrong htu, wrong htm, stale proof, missing ath")
    func badProofs() async throws {
        let f = try Fixture()
        let a = try f.agent("support-bot")
        let token = try f.token(a)
        let h = try f.authHeaders(a, token: token)
        var (s, e, _) = try await whoami(f, h)
        #expect(s == .ok)
        (s, e, _) = try await whoami(f, h)
        #expect(s == .unauthorized && e == "invalid_dpop_proof")

        func with(proof: String) -> HTTPFields {
            var x = HTTPFields()
            x[.authorization] = "DPoP \(token)"
            x[HTTPField.Name("DPoP")!] = proof
            return x
        }
        let url = f.cp.url(path: "/v1/whoami")
        for proof in [
            try a.signer.proof(
                method: "GET", url: "http://evil.example/v1/whoami", accessToken: token, now: f.clock.now),
            try a.signer.proof(method: "GET", url: f.cp.url(path: "/v1/other"), accessToken: token, now: f.clock.now),
            try a.signer.proof(method: "POST", url: url, accessToken: token, now: f.clock.now),
            try a.signer.proof(method: "GET", url: url, accessToken: token, now: f.clock.now - 600),
            try a.signer.proof(method: "GET", url: url, accessToken: token, now: f.clock.now + 600),
            try a.signer.proof(method: "GET", url: url, now: f.clock.now),
            try a.signer.proof(method: "GET", url: url, accessToken: "another token", now: f.clock.now),
        ] {
            (s, e, _) = try await whoami(f, with(proof: proof))
            #expect(s == .unauthorized && e == "invalid_dpop_proof")
        }
        // htu normalisation: upper-case scheme and host, explicit default port, query are the same URI.
        let normalised = try a.signer.proof(
            method: "GET", url: "HTTP://127.0.0.1:8443/v1/whoami?x=1", accessToken: token, now: f.clock.now)
        (s, e, _) = try await whoami(f, with(proof: normalised))
        #expect(s == .ok)
    }

    @Test("a stolen token presented with another key's proof is refused")
    func stolenToken() async throws {
        let f = try Fixture()
        let a = try f.agent("support-bot")
        let token = try f.token(a)
        let thief = DPoPProofSigner(key: P256.Signing.PrivateKey())
        var h = HTTPFields()
        h[.authorization] = "DPoP \(token)"
        h[HTTPField.Name("DPoP")!] = try thief.proof(
            method: "GET", url: f.cp.url(path: "/v1/whoami"), accessToken: token, now: f.clock.now)
        let (s, e, _) = try await whoami(f, h)
        #expect(s == .unauthorized && e == "invalid_dpop_proof")
    }

    @Test("revoked token, quarantined, revoked and reactivated agents")
    func revocation() async throws {
        let f = try Fixture()
        let a = try f.agent("support-bot")
        let t1 = try f.token(a)
        let t2 = try f.token(a)
        try f.cp.revokeToken(jti: try #require(claims(t1)["jti"]?.stringValue), reason: "test")
        var (s, e, _) = try await whoami(f, try f.authHeaders(a, token: t1))
        #expect(s == .unauthorized && e == "invalid_token")
        (s, _, _) = try await whoami(f, try f.authHeaders(a, token: t2))
        #expect(s == .ok)

        _ = try f.cp.transition(agent: "support-bot", to: .quarantined, reason: "test")
        (s, e, _) = try await whoami(f, try f.authHeaders(a, token: t2))
        #expect(s == .forbidden && e == "access_denied")
        #expect(throws: WardenError(.unauthorizedClient, "")) { try f.token(a) }

        _ = try f.cp.transition(agent: "support-bot", to: .active, reason: "cleared")
        (s, _, _) = try await whoami(f, try f.authHeaders(a, token: t2))
        #expect(s == .ok)

        _ = try f.cp.transition(agent: "support-bot", to: .revoked, reason: "compromised")
        (s, e, _) = try await whoami(f, try f.authHeaders(a, token: t2))
        #expect(s == .unauthorized && e == "invalid_token")
        #expect(throws: WardenError(.conflict, "")) {
            try f.cp.transition(agent: "support-bot", to: .active, reason: "undo")
        }
    }

    @Test("server-issued DPoP nonces: a proof without one gets use_dpop_nonce and the nonce, then passes")
    func nonces() async throws {
        let f = try Fixture { $0.dpopRequireNonce = true }
        let reg = try f.cp.register(manifest: f.manifest("support-bot"))
        let key = P256.Signing.PrivateKey()
        let signer = DPoPProofSigner(key: key)
        let body = f.enrollBody(joinToken: reg.joinToken, key: key, digest: reg.agent.manifestDigest)
        #expect(throws: WardenError(.useDPoPNonce, "")) {
            try f.cp.enroll(
                body: body, dpop: try signer.proof(method: "POST", url: f.cp.enrollEndpoint, now: f.clock.now))
        }
        let nonce = try #require(f.cp.currentNonce())
        let record = try f.cp.enroll(
            body: body,
            dpop: try signer.proof(method: "POST", url: f.cp.enrollEndpoint, nonce: nonce, now: f.clock.now))
        let a = TestAgent(record: record, key: key)
        let token = try f.cp.token(
            form: try f.form(a),
            dpop: try signer.proof(method: "POST", url: f.cp.tokenEndpoint, nonce: nonce, now: f.clock.now)
        ).accessToken
        try await f.app.test(.router) { client in
            try await client.execute(uri: "/v1/whoami", method: .get, headers: try f.authHeaders(a, token: token)) {
                r in
                #expect(r.status == .unauthorized)
                #expect(r.errorCode == "use_dpop_nonce")
                #expect(r.headers[HTTPField.Name("DPoP-Nonce")!] != nil)
            }
            var h = HTTPFields()
            h[.authorization] = "DPoP \(token)"
            h[HTTPField.Name("DPoP")!] = try signer.proof(
                method: "GET", url: f.cp.url(path: "/v1/whoami"), accessToken: token, nonce: nonce, now: f.clock.now)
            try await client.execute(uri: "/v1/whoami", method: .get, headers: h) { r in #expect(r.status == .ok) }
        }
        // A nonce two steps old is no longer accepted.
        f.clock.advance(180)
        #expect(!(f.cp.authenticator.proofs.nonces!.isValid(nonce, now: f.clock.now)))
    }
}
