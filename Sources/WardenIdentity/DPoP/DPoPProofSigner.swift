import Cedar
import Crypto
import Foundation

/// Makes DPoP proofs (RFC 9449 §4.2) with an agent's key: the client side of ``DPoPVerifier``.
public struct DPoPProofSigner: Sendable {
    public let key: P256.Signing.PrivateKey
    public let jwk: ECPublicJWK

    public init(key: P256.Signing.PrivateKey) {
        self.key = key
        self.jwk = ECPublicJWK(key.publicKey)
    }

    /// The RFC 7638 thumbprint of the key (what a bound token's `cnf.jkt` holds).
    public var thumbprint: String { jwk.thumbprint }

    /// A proof for `method url`; with `accessToken`, carries its hash as `ath`; with `nonce`, the server's nonce.
    public func proof(
        method: String, url: String, accessToken: String? = nil, nonce: String? = nil,
        now: Int64 = Int64(Date().timeIntervalSince1970), jti: String = UUID().uuidString
    ) throws -> String {
        var claims: [(String, JSONValue)] = [
            ("jti", .string(jti)), ("htm", .string(method)), ("htu", .string(url)), ("iat", .number(String(now))),
        ]
        if let accessToken {
            claims.append(("ath", .string(Base64URL.encode(SHA256.hash(data: Array(accessToken.utf8))))))
        }
        if let nonce { claims.append(("nonce", .string(nonce))) }
        return try CompactJWS.signES256(
            header: .object([("typ", .string("dpop+jwt")), ("alg", .string("ES256")), ("jwk", jwk.json)]),
            payload: .object(claims), key: key)
    }
}
