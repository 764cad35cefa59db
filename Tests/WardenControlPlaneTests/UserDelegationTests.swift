import Cedar
import Crypto
import Foundation
import Testing
import WardenCore
import WardenGateway
import WardenIdentity
import WardenTestSupport

@testable import WardenControlPlane
@testable import WardenServer

/// An agent acting for a user: token exchange of a user token from a trusted identity provider.
@Suite("Token exchange for users of a trusted identity provider")
struct UserDelegationTests {
    let idpKey = P256.Signing.PrivateKey()
    let idp = "https://idp.example.com"

    func fixture() throws -> Fixture {
        let jwks = JSONValue.object([
            ("keys", .array([SigningKeyRing.jwk(SigningKey(kid: "idp-1", privateKey: idpKey), use: "sig")]))
        ])
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("idp-\(UUID().uuidString).json").path
        try jwks.serialized.write(toFile: file, atomically: true, encoding: .utf8)
        let idp = self.idp
        return try Fixture { $0.subjectIssuers = [idp: file] }
    }

    func userToken(
        _ f: Fixture, sub: String = "alice@example.com", aud: String, scope: String? = "route:tickets",
        lifetime: Int64 = 600, kid: String = "idp-1", key: P256.Signing.PrivateKey? = nil
    ) throws -> String {
        var claims: [(String, JSONValue)] = [
            ("iss", .string(idp)), ("sub", .string(sub)), ("aud", .string(aud)),
            ("iat", .number(String(f.clock.now))), ("exp", .number(String(f.clock.now + lifetime))),
        ]
        if let scope { claims.append(("scope", .string(scope))) }
        return try CompactJWS.signES256(
            header: .object([("alg", .string("ES256")), ("typ", .string("JWT")), ("kid", .string(kid))]),
            payload: .object(claims), key: key ?? idpKey)
    }

    func exchange(_ f: Fixture, _ a: TestAgent, _ token: String, scope: String? = nil) throws -> TokenResponse {
        var form = [
            "grant_type": ControlPlane.tokenExchangeGrant, "subject_token": token,
            "subject_token_type": ControlPlane.jwtTokenType,
        ]
        if let scope { form["scope"] = scope }
        return try f.cp.token(form: try f.form(a, form), dpop: try f.tokenProof(a))
    }

    @Test("the agent gets sub = the user, act = itself, the user's scopes within its manifest")
    func actsForUser() throws {
        let f = try fixture()
        let a = try f.agent("support-bot")
        let r = try exchange(f, a, try userToken(f, aud: a.id, scope: "route:tickets route:billing"))
        let c = try claims(r.accessToken)
        #expect(c["sub"]?.stringValue == "alice@example.com")
        #expect(c["act"]?["sub"]?.stringValue == a.id)
        #expect(c["scope"]?.stringValue == "route:tickets")
        #expect(r.expiresIn == 300)
        let who = try f.cp.authenticate(
            authorization: "DPoP \(r.accessToken)",
            dpop: try a.signer.proof(
                method: "GET", url: f.cp.url(path: "/v1/whoami"), accessToken: r.accessToken, now: f.clock.now),
            method: "GET", path: "/v1/whoami")
        #expect(who.claims.delegation == ["alice@example.com"])
        #expect(who.agent.name == "support-bot")
        // A short user token caps the delegated token.
        let short = try exchange(f, a, try userToken(f, aud: a.id, lifetime: 60))
        #expect(short.expiresIn == 60)
    }

    @Test("refused: another agent's token, a workload subject, an unknown key, a forged signature, widening, expiry")
    func refusals() throws {
        let f = try fixture()
        let a = try f.agent("support-bot")
        let b = try f.agent("kb-agent")
        #expect(throws: WardenError(.invalidRequest, "")) { try exchange(f, a, try userToken(f, aud: b.id)) }
        #expect(throws: WardenError(.invalidRequest, "")) {
            try exchange(f, a, try userToken(f, sub: b.id, aud: a.id))
        }
        #expect(throws: WardenError(.invalidRequest, "")) {
            try exchange(f, a, try userToken(f, aud: a.id, kid: "other"))
        }
        #expect(throws: WardenError(.invalidRequest, "")) {
            try exchange(f, a, try userToken(f, aud: a.id, key: P256.Signing.PrivateKey()))
        }
        #expect(throws: WardenError(.invalidScope, "")) {
            try exchange(f, a, try userToken(f, aud: a.id, scope: "route:tickets"), scope: "tool:tickets/read")
        }
        let token = try userToken(f, aud: a.id, lifetime: 60)
        f.clock.advance(120)
        #expect(throws: WardenError(.invalidRequest, "")) { try exchange(f, a, token) }
        #expect(throws: WardenError(.invalidRequest, "")) {
            try exchange(f, a, try userToken(f, aud: a.id, lifetime: 200_000))
        }
    }
}
