import Cedar
import Crypto
import Foundation
import WardenCore

/// JWT-SVIDs (the SPIFFE JWT-SVID specification): ES256 JWS with `kid` (a key of the trust domain's JWT bundle),
/// `typ: JWT`, and the claims `sub` (the SPIFFE ID), `aud` (one or more audiences), `exp`, `iat` and `jti`. Never
/// EdDSA: the specification allows the RSA and ECDSA algorithms only. The header `typ` keeps them apart from
/// Warden's access tokens (`at+jwt`), which are signed by the same keys: neither is accepted as the other.
public enum JWTSVID {
    /// The longest lifetime issued, in seconds.
    public static let maxLifetime: Int64 = 3600
    /// The shortest lifetime issued, in seconds.
    public static let minLifetime: Int64 = 10

    /// Signs a JWT-SVID for `subject` and `audiences`.
    public static func sign(
        subject: SPIFFEID, audiences: [String], key: SigningKey, issuedAt: Int64, lifetime: Int64,
        jti: String = UUID().uuidString
    ) throws(WardenError) -> (token: String, expiresAt: Int64) {
        guard !audiences.isEmpty else { throw WardenError(.invalidRequest, "a JWT-SVID needs at least one audience") }
        let lifetime = min(max(lifetime, minLifetime), maxLifetime)
        let exp = issuedAt + lifetime
        let aud: JSONValue = audiences.count == 1 ? .string(audiences[0]) : .array(audiences.map { .string($0) })
        do {
            let token = try CompactJWS.signES256(
                header: .object([("alg", .string("ES256")), ("kid", .string(key.kid)), ("typ", .string("JWT"))]),
                payload: .object([
                    ("sub", .string(subject.description)), ("aud", aud), ("exp", .number(String(exp))),
                    ("iat", .number(String(issuedAt))), ("jti", .string(jti)),
                ]), key: key.privateKey)
            return (token, exp)
        } catch {
            throw WardenError(.storage, "the JWT-SVID could not be signed")
        }
    }

    /// A verified JWT-SVID.
    public struct Verified: Sendable {
        public let subject: SPIFFEID
        public let audiences: [String]
        public let expiresAt: Int64
        /// Every claim of the payload.
        public let claims: JSONValue
    }

    /// Verifies a JWT-SVID: its size, ES256 signature by the bundle key named by `kid` (`key(kid)`), `typ` (absent,
    /// `JWT` or `JOSE`), `sub` a SPIFFE ID (in `trustDomain` when given), `aud` containing `audience`, `exp` in the
    /// future (with `skew`), and `iat`/`nbf` not in the future.
    public static func verify(
        _ text: String, audience: String, now: Int64, skew: Int64 = 30, trustDomain: String? = nil,
        code: WardenError.Code = .invalidToken, key: (String) -> P256.Signing.PublicKey?
    ) throws(WardenError) -> Verified {
        guard text.utf8.count <= 8192 else { throw WardenError(code, "the JWT-SVID is larger than 8 KiB") }
        let jws = try CompactJWS(text, what: "JWT-SVID", code: code)
        guard jws.header["alg"]?.stringValue == "ES256" else {
            throw WardenError(code, "the JWT-SVID must be signed with ES256")
        }
        switch jws.header["typ"] {
        case nil: break
        case .string(let t)? where t == "JWT" || t == "JOSE": break
        default: throw WardenError(code, "the JWT-SVID header typ must be JWT or JOSE")
        }
        guard let kid = jws.header["kid"]?.stringValue, let publicKey = key(kid) else {
            throw WardenError(code, "the JWT-SVID is not signed by a key of the trust bundle")
        }
        try jws.verifyES256(with: publicKey, code: code, what: "JWT-SVID")
        let c = jws.payload
        guard let sub = c["sub"]?.stringValue, let id = try? SPIFFEID(parsing: sub) else {
            throw WardenError(code, "the JWT-SVID sub is not a SPIFFE ID")
        }
        if let trustDomain, id.trustDomain != trustDomain {
            throw WardenError(code, "the JWT-SVID is from another trust domain")
        }
        let aud: [String]
        switch c["aud"] {
        case .string(let s)?: aud = [s]
        case .array(let items)?: aud = items.compactMap(\.stringValue)
        default: aud = []
        }
        guard !aud.isEmpty else { throw WardenError(code, "the JWT-SVID has no audience") }
        guard aud.contains(audience) else { throw WardenError(code, "the JWT-SVID audience does not match") }
        guard let exp = c["exp"]?.integerValue else { throw WardenError(code, "the JWT-SVID has no exp") }
        guard exp > now - skew else { throw WardenError(code, "the JWT-SVID has expired") }
        for claim in ["iat", "nbf"] {
            if let v = c[claim] {
                guard let t = v.integerValue, t <= now + skew else {
                    throw WardenError(code, "the JWT-SVID \(claim) is in the future")
                }
            }
        }
        return Verified(subject: id, audiences: aud, expiresAt: exp, claims: c)
    }
}
