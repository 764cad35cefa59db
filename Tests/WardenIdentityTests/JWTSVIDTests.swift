import Cedar
import Crypto
import Testing
import WardenCore
import WardenIdentity

@Suite("JWT-SVIDs")
struct JWTSVIDTests {
    let signing = SigningKey(privateKey: P256.Signing.PrivateKey())
    let subject = try! SPIFFEID.agent("py-bot", trustDomain: "warden.local")
    let now: Int64 = 1_800_000_000

    func verify(_ token: String, audience: String = "https://api.example", at: Int64? = nil, td: String? = nil)
        throws(WardenError) -> JWTSVID.Verified
    {
        let kid = signing.kid
        let pub = signing.privateKey.publicKey
        return try JWTSVID.verify(
            token, audience: audience, now: at ?? now, trustDomain: td, key: { $0 == kid ? pub : nil })
    }

    @Test("signed ES256 with kid and typ JWT; verified for its audience, subject and lifetime")
    func roundTrip() throws {
        let (token, exp) = try JWTSVID.sign(
            subject: subject, audiences: ["https://api.example", "spiffe://warden.local/agent/kb"], key: signing,
            issuedAt: now, lifetime: 300)
        #expect(exp == now + 300)
        let jws = try CompactJWS(token, what: "JWT-SVID", code: .invalidToken)
        #expect(jws.header["alg"]?.stringValue == "ES256")
        #expect(jws.header["typ"]?.stringValue == "JWT")
        #expect(jws.header["kid"]?.stringValue == signing.kid)
        let v = try verify(token, td: "warden.local")
        #expect(v.subject == subject)
        #expect(v.audiences.count == 2)
        #expect(v.claims["jti"]?.stringValue?.isEmpty == false)
        _ = try verify(token, audience: "spiffe://warden.local/agent/kb")
        // Lifetimes are kept within 10 s and an hour.
        #expect(
            try JWTSVID.sign(subject: subject, audiences: ["a"], key: signing, issuedAt: now, lifetime: 1).1 == now + 10
        )
        #expect(
            try JWTSVID.sign(subject: subject, audiences: ["a"], key: signing, issuedAt: now, lifetime: 86400).1
                == now + 3600)
    }

    @Test("refused: other audience, expired, other trust domain, unknown key, forged signature, access-token typ")
    func refusals() throws {
        let (token, _) = try JWTSVID.sign(
            subject: subject, audiences: ["https://api.example"], key: signing, issuedAt: now, lifetime: 60)
        func refused(_ body: () throws(WardenError) -> JWTSVID.Verified, _ message: String) {
            #expect {
                _ = try body()
            } throws: { e in (e as? WardenError)?.message.contains(message) == true }
        }
        refused({ () throws(WardenError) in try verify(token, audience: "https://other.example") }, "audience")
        refused({ () throws(WardenError) in try verify(token, at: now + 60 + 31) }, "expired")
        refused({ () throws(WardenError) in try verify(token, td: "other.domain") }, "another trust domain")
        let parts = token.split(separator: ".")
        let forged = parts[0] + "." + parts[1] + "." + Base64URL.encode([UInt8](repeating: 1, count: 64))
        refused({ () throws(WardenError) in try verify(String(forged)) }, "signature")
        let stranger = SigningKey(privateKey: P256.Signing.PrivateKey())
        let (other, _) = try JWTSVID.sign(
            subject: subject, audiences: ["https://api.example"], key: stranger, issuedAt: now, lifetime: 60)
        refused({ () throws(WardenError) in try verify(other) }, "not signed by a key of the trust bundle")
        // An access token (typ at+jwt) signed by the same key is not a JWT-SVID.
        let access = try AccessTokenIssuer(key: signing, issuer: "https://warden.example").issue(
            subject: subject, audience: "https://api.example", jkt: String(repeating: "A", count: 43), lifetime: 60,
            now: now)
        refused({ () throws(WardenError) in try verify(access) }, "typ must be JWT or JOSE")
        #expect(throws: WardenError.self) {
            try JWTSVID.sign(subject: subject, audiences: [], key: signing, issuedAt: now, lifetime: 60)
        }
    }
}
