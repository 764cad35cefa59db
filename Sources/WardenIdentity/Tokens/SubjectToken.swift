import Cedar
import Crypto
import WardenCore

/// An identity provider trusted to vouch for users in token exchange: its issuer and its ES256 keys (from a JWKS).
public struct TrustedIssuer: Sendable {
    public let issuer: String
    public let keys: [String: P256.Signing.PublicKey]

    /// Reads the P-256 keys with a `kid` from a JWKS document; other keys are skipped, none at all is an error.
    public init(issuer: String, jwks: JSONValue) throws(WardenError) {
        guard case .array(let items)? = jwks["keys"] else {
            throw WardenError(.invalidConfig, "the JWKS of \(issuer) has no keys array")
        }
        var keys: [String: P256.Signing.PublicKey] = [:]
        for item in items {
            guard let kid = item["kid"]?.stringValue, item["kty"]?.stringValue == "EC",
                item["crv"]?.stringValue == "P-256", let jwk = try? ECPublicJWK(json: item)
            else { continue }
            keys[kid] = try jwk.publicKey()
        }
        guard !keys.isEmpty else {
            throw WardenError(.invalidConfig, "the JWKS of \(issuer) has no P-256 keys with a kid (ES256 only)")
        }
        self.issuer = issuer
        self.keys = keys
    }
}

/// A user's token from a trusted identity provider, verified for token exchange.
public struct UserSubjectToken: Sendable {
    public let issuer: String
    /// The user (`sub`).
    public let subject: String
    public let expiresAt: Int64
    /// The scopes the user delegates (`scope`); none when absent.
    public let scopes: Set<String>
    public let jti: String?

    /// The issuer a compact JWS claims, without verifying anything (to choose the verifier).
    public static func claimedIssuer(_ token: String) -> String? {
        (try? CompactJWS(token, what: "subject token", code: .invalidRequest))?.payload["iss"]?.stringValue
    }

    /// Verifies a user token: ES256 by a key of `issuer`, `aud` naming the acting agent (the user's consent to that
    /// agent), `exp` in the future and at most `maxLifetime` after `iat`, and a `sub` that is not a SPIFFE ID (an
    /// identity provider vouches for people, never for workloads).
    public init(
        _ token: String, issuer: TrustedIssuer, actor: String, now: Int64, skew: Int64, maxLifetime: Int64 = 86_400
    ) throws(WardenError) {
        let code = WardenError.Code.invalidRequest
        let jws = try CompactJWS(token, what: "subject token", code: code)
        guard let kid = jws.header["kid"]?.stringValue, let key = issuer.keys[kid] else {
            throw WardenError(code, "the subject token is signed by a key its issuer does not publish")
        }
        try jws.verifyES256(with: key, code: code, what: "subject token")
        let c = jws.payload
        guard c["iss"]?.stringValue == issuer.issuer else {
            throw WardenError(code, "the subject token issuer differs")
        }
        let aud: [String]
        switch c["aud"] {
        case .string(let s)?: aud = [s]
        case .array(let items)?: aud = items.compactMap(\.stringValue)
        default: aud = []
        }
        guard aud.contains(actor) else {
            throw WardenError(code, "the subject token is not addressed to this agent (aud)")
        }
        guard let exp = c["exp"]?.integerValue, exp > now - skew else {
            throw WardenError(code, "the subject token has expired or has no exp")
        }
        if let iat = c["iat"] {
            guard let i = iat.integerValue, i <= now + skew, exp - i <= maxLifetime else {
                throw WardenError(code, "the subject token iat is out of range")
            }
        } else {
            guard exp - now <= maxLifetime else { throw WardenError(code, "the subject token lives too long") }
        }
        if let nbf = c["nbf"] {
            guard let n = nbf.integerValue, n <= now + skew else {
                throw WardenError(code, "the subject token is not valid yet")
            }
        }
        guard let sub = c["sub"]?.stringValue, !sub.isEmpty, sub.utf8.count <= 256 else {
            throw WardenError(code, "the subject token has no usable sub")
        }
        guard !sub.lowercased().hasPrefix("spiffe:") else {
            throw WardenError(code, "an identity provider's token cannot name a workload (spiffe://) as its subject")
        }
        self.issuer = issuer.issuer
        subject = sub
        expiresAt = exp
        scopes = Set((c["scope"]?.stringValue ?? "").split(separator: " ").map(String.init))
        jti = c["jti"]?.stringValue
    }
}
