import Cedar
import Crypto
import Testing
import WardenCore
import WardenIdentity

@Suite("Access tokens and request authentication")
struct AccessTokenTests {
    let signing = SigningKey(privateKey: P256.Signing.PrivateKey())
    let agentKey = P256.Signing.PrivateKey()
    let clock = TestClock()
    let subject = try! SPIFFEID.agent("support-bot", trustDomain: "warden.local")
    let url = "https://127.0.0.1:8443/v1/whoami"

    var issuer: AccessTokenIssuer { AccessTokenIssuer(key: signing, issuer: "https://127.0.0.1:8443") }

    func verifier(keys: [String: P256.Signing.PublicKey]? = nil) -> AccessTokenVerifier {
        let c = clock
        return AccessTokenVerifier(
            keys: keys ?? [signing.kid: signing.privateKey.publicKey], issuer: "https://127.0.0.1:8443",
            audience: "warden", clock: c)
    }

    var jkt: String { ECPublicJWK(agentKey.publicKey).thumbprint }

    func token(lifetime: Int64 = 300, audience: String = "warden", at: Int64? = nil) throws -> String {
        try issuer.issue(subject: subject, audience: audience, jkt: jkt, lifetime: lifetime, now: at ?? clock.now)
    }

    func proof(for token: String, jti: String, key: P256.Signing.PrivateKey? = nil) throws -> String {
        let k = key ?? agentKey
        let ath = Base64URL.encode(SHA256.hash(data: Array(token.utf8)))
        return try CompactJWS.signES256(
            header: .object([
                ("typ", .string("dpop+jwt")), ("alg", .string("ES256")), ("jwk", ECPublicJWK(k.publicKey).json),
            ]),
            payload: .object([
                ("jti", .string(jti)), ("htm", .string("GET")), ("htu", .string(url)),
                ("iat", .number(String(clock.now))),
                ("ath", .string(ath)),
            ]), key: k)
    }

    @Test("an issued token verifies with its claims")
    func roundTrip() throws {
        let claims = try verifier().verify(try token())
        #expect(claims.agent == subject)
        #expect(claims.confirmationThumbprint == jkt)
        #expect(claims.expiresAt - claims.issuedAt == 300)
    }

    @Test("expired, future, over-long, wrong-audience, unknown-key and tampered tokens are refused")
    func refusals() throws {
        let v = verifier()
        var bad: [(String, String)] = [
            ("expired", try token(at: clock.now - 400)),
            ("future", try token(at: clock.now + 120)),
            ("too long", try token(lifetime: 3600)),
            ("audience", try token(audience: "other")),
            ("empty", ""),
            ("garbage", "a.b.c"),
        ]
        let other = AccessTokenIssuer(
            key: SigningKey(privateKey: P256.Signing.PrivateKey()), issuer: "https://127.0.0.1:8443")
        bad.append(
            (
                "unknown key",
                try other.issue(subject: subject, audience: "warden", jkt: jkt, lifetime: 300, now: clock.now)
            ))
        var parts = try token().split(separator: ".").map(String.init)
        parts[1] = Base64URL.encode(Array(#"{"sub":"spiffe://warden.local/agent/admin"}"#.utf8))
        bad.append(("tampered", parts.joined(separator: ".")))
        let noneHeader = Base64URL.encode(Array(#"{"alg":"none","typ":"at+jwt","kid":"\#(signing.kid)"}"#.utf8))
        bad.append(("alg none", noneHeader + "." + parts[1] + "."))
        for (name, t) in bad {
            #expect(throws: WardenError(.invalidToken, ""), "\(name)") { try v.verify(t) }
        }
    }

    @Test("during key rotation both keys verify")
    func rotation() throws {
        let next = SigningKey(privateKey: P256.Signing.PrivateKey())
        let v = verifier(keys: [signing.kid: signing.privateKey.publicKey, next.kid: next.privateKey.publicKey])
        _ = try v.verify(try token())
        let newToken = try AccessTokenIssuer(key: next, issuer: "https://127.0.0.1:8443").issue(
            subject: subject, audience: "warden", jkt: jkt, lifetime: 300, now: clock.now)
        _ = try v.verify(newToken)
    }

    @Test(
        "a request authenticates with token and proof; a stolen token with another key's proof does not",
        arguments: [0, 100])
    func authenticate(cacheCapacity: Int) throws {
        let c = clock
        let auth = RequestAuthenticator(
            tokens: verifier(), proofs: DPoPVerifier(replayCache: ReplayCache(), clock: c),
            cacheCapacity: cacheCapacity)
        let t = try token()
        for i in 0..<3 {
            let claims = try auth.authenticate(
                authorization: "DPoP \(t)", dpop: try proof(for: t, jti: "p\(i)"), method: "GET", url: url)
            #expect(claims.agent == subject)
        }
        let thief = P256.Signing.PrivateKey()
        #expect(throws: WardenError(.invalidDPoPProof, "")) {
            try auth.authenticate(
                authorization: "DPoP \(t)", dpop: try proof(for: t, jti: "x1", key: thief), method: "GET", url: url)
        }
        #expect(throws: WardenError(.invalidToken, "")) {
            try auth.authenticate(
                authorization: "Bearer \(t)", dpop: try proof(for: t, jti: "x2"), method: "GET", url: url)
        }
        #expect(throws: WardenError(.invalidDPoPProof, "")) {
            try auth.authenticate(authorization: "DPoP \(t)", dpop: nil, method: "GET", url: url)
        }
        // The cache never outlives the token.
        clock.now += 400
        #expect(throws: WardenError(.invalidToken, "")) {
            try auth.authenticate(
                authorization: "DPoP \(t)", dpop: try proof(for: t, jti: "late"), method: "GET", url: url)
        }
    }
}
