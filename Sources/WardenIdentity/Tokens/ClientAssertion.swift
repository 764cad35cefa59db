import Cedar
import Crypto
import Foundation
import WardenCore

/// RFC 7523 client authentication (`private_key_jwt`): a JWT signed by the agent's enrolled key with `iss` = `sub` =
/// its SPIFFE ID, `aud` naming this authorization server, a short `exp` and a `jti` that is never accepted twice.
public enum ClientAssertion {
    /// The `client_assertion_type` value for JWT assertions.
    public static let type = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

    /// Signs an assertion (the agent's side).
    public static func sign(
        clientID: String, audience: String, key: P256.Signing.PrivateKey, now: Int64, lifetime: Int64 = 60,
        jti: String = UUID().uuidString
    ) throws -> String {
        try CompactJWS.signES256(
            header: .object([("alg", .string("ES256")), ("typ", .string("JWT"))]),
            payload: .object([
                ("iss", .string(clientID)), ("sub", .string(clientID)), ("aud", .string(audience)),
                ("iat", .number(String(now))), ("exp", .number(String(now + lifetime))), ("jti", .string(jti)),
            ]), key: key)
    }

    /// An assertion parsed but not yet verified: its claimed client, to look up the key it must be signed with.
    public struct Unverified: Sendable {
        public let jws: CompactJWS
        public let clientID: SPIFFEID
    }

    /// Parses an assertion and reads its claimed client id (`iss`, which must equal `sub`).
    public static func parse(_ text: String) throws(WardenError) -> Unverified {
        let code = WardenError.Code.invalidClient
        let jws = try CompactJWS(text, what: "client assertion", code: code)
        guard let iss = jws.payload["iss"]?.stringValue, jws.payload["sub"]?.stringValue == iss else {
            throw WardenError(code, "the client assertion needs iss and sub, both the agent's SPIFFE ID")
        }
        guard let id = try? SPIFFEID(parsing: iss) else {
            throw WardenError(code, "the client assertion issuer is not a SPIFFE ID")
        }
        return Unverified(jws: jws, clientID: id)
    }

    /// Verifies the signature with the agent's enrolled `key`, the audience (one of `audiences`), the time claims
    /// (`exp` required, at most `maxLifetime` ahead) and the `jti` against `replayCache`.
    public static func verify(
        _ a: Unverified, key: P256.Signing.PublicKey, audiences: [String], now: Int64, replayCache: ReplayCache,
        maxLifetime: Int64 = 300, skew: Int64 = 30
    ) throws(WardenError) {
        let code = WardenError.Code.invalidClient
        try a.jws.verifyES256(with: key, code: code, what: "client assertion")
        let c = a.jws.payload
        let aud: [String]
        switch c["aud"] {
        case .string(let s)?: aud = [s]
        case .array(let items)?: aud = items.compactMap(\.stringValue)
        default: aud = []
        }
        let accepted = Set(audiences.map { DPoPVerifier.normalize($0) ?? $0 })
        guard aud.contains(where: { accepted.contains(DPoPVerifier.normalize($0) ?? $0) }) else {
            throw WardenError(code, "the client assertion audience is not this authorization server")
        }
        guard let exp = c["exp"]?.integerValue else { throw WardenError(code, "the client assertion has no exp") }
        guard exp > now - skew else { throw WardenError(code, "the client assertion has expired") }
        guard exp <= now + maxLifetime + skew else {
            throw WardenError(code, "the client assertion expires more than \(maxLifetime) seconds ahead")
        }
        if let iat = c["iat"] {
            guard let i = iat.integerValue, i <= now + skew, i >= now - maxLifetime - skew else {
                throw WardenError(code, "the client assertion iat is out of range")
            }
        }
        if let nbf = c["nbf"] {
            guard let n = nbf.integerValue, n <= now + skew else {
                throw WardenError(code, "the client assertion is not valid yet")
            }
        }
        guard let jti = c["jti"]?.stringValue, !jti.isEmpty, jti.utf8.count <= 256 else {
            throw WardenError(code, "the client assertion needs a jti of 1 to 256 bytes")
        }
        switch replayCache.check(a.clientID.description + ":" + jti, now: now, partition: a.clientID.description) {
        case .fresh: break
        case .replayed: throw WardenError(code, "the client assertion was already used (jti replay)")
        case .full: throw WardenError(code, "too many recent client assertions; retry shortly")
        }
    }
}
