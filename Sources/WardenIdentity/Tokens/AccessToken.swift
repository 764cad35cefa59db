import Cedar
import Crypto
import Foundation
import Synchronization
import WardenCore

/// An ES256 signing key with its key id (`kid`).
public struct SigningKey: Sendable {
    public let kid: String
    public let privateKey: P256.Signing.PrivateKey

    public init(kid: String, privateKey: P256.Signing.PrivateKey) {
        self.kid = kid
        self.privateKey = privateKey
    }

    /// A key id derived from the public key (its RFC 7638 thumbprint), so ids never collide by accident.
    public init(privateKey: P256.Signing.PrivateKey) {
        self.init(kid: ECPublicJWK(privateKey.publicKey).thumbprint, privateKey: privateKey)
    }
}

/// What a token is bound to (its `cnf` claim): a DPoP key (RFC 9449 `jkt`) or a client certificate used for mutual
/// TLS (RFC 8705 `x5t#S256`). Every Warden token has exactly one.
public enum TokenBinding: Sendable, Hashable {
    /// The RFC 7638 thumbprint of the DPoP key.
    case dpop(jkt: String)
    /// base64url(SHA-256(DER)) of the client certificate.
    case certificate(x5t: String)
}

/// The verified claims of a Warden access token (an RFC 9068 JWT, sender-constrained by RFC 9449 `cnf.jkt`).
public struct AccessTokenClaims: Sendable, Hashable {
    public let issuer: String
    /// The `sub` claim: the agent's SPIFFE ID, or, in a delegated token, the party it acts for (another agent's
    /// SPIFFE ID or a user id).
    public let subject: String
    /// The agent that holds the token's key and presents it: `act.sub` in a delegated token, else `sub`.
    public let agent: SPIFFEID
    /// The RFC 8693 `act` chain, outermost (current actor) first; empty for a token that is not delegated.
    public let actors: [String]
    public let audiences: [String]
    public let issuedAt: Int64
    public let expiresAt: Int64
    public let jti: String
    /// What the token is bound to.
    public let binding: TokenBinding
    /// Space-separated scopes, if any.
    public let scope: String?

    /// The RFC 7638 thumbprint of the DPoP key the token is bound to, if it is DPoP-bound.
    public var confirmationThumbprint: String? {
        if case .dpop(let jkt) = binding { return jkt }
        return nil
    }

    /// The scopes as a set (empty when the token has none).
    public var scopes: Set<String> { Set((scope ?? "").split(separator: " ").map(String.init)) }

    /// Whether the token carries scope `name` (a scan of the scope string, no allocation: the gateway asks on every
    /// request).
    public func hasScope(_ name: String) -> Bool {
        guard let scope else { return false }
        let bytes = scope.utf8
        var start = bytes.startIndex
        while start < bytes.endIndex {
            let end = bytes[start...].firstIndex(of: UInt8(ascii: " ")) ?? bytes.endIndex
            if bytes[start..<end].elementsEqual(name.utf8) { return true }
            start = end < bytes.endIndex ? bytes.index(after: end) : end
        }
        return false
    }

    /// The parties the agent acts for, nearest first: for `sub=user, act={sub=B, act={sub=A}}` presented by B,
    /// `[A, user]`. Empty for a token that is not delegated.
    public var delegation: [String] { actors.isEmpty ? [] : Array(actors.dropFirst()) + [subject] }
}

/// What goes into an access token.
public struct AccessTokenContents: Sendable {
    public var subject: String
    public var audiences: [String]
    public var binding: TokenBinding
    public var issuedAt: Int64
    public var expiresAt: Int64
    public var scope: String?
    /// The `act` chain to write, outermost (current actor) first.
    public var actors: [String]
    public var jti: String

    public init(
        subject: String, audiences: [String], jkt: String, issuedAt: Int64, expiresAt: Int64, scope: String? = nil,
        actors: [String] = [], jti: String = UUID().uuidString
    ) {
        self.init(
            subject: subject, audiences: audiences, binding: .dpop(jkt: jkt), issuedAt: issuedAt, expiresAt: expiresAt,
            scope: scope, actors: actors, jti: jti)
    }

    public init(
        subject: String, audiences: [String], binding: TokenBinding, issuedAt: Int64, expiresAt: Int64,
        scope: String? = nil, actors: [String] = [], jti: String = UUID().uuidString
    ) {
        self.subject = subject
        self.audiences = audiences
        self.binding = binding
        self.issuedAt = issuedAt
        self.expiresAt = expiresAt
        self.scope = scope
        self.actors = actors
        self.jti = jti
    }
}

/// Issues access tokens: ES256 JWTs with `typ: at+jwt`, `kid`, and the claims of ``AccessTokenClaims``.
public struct AccessTokenIssuer: Sendable {
    public let key: SigningKey
    public let issuer: String

    public init(key: SigningKey, issuer: String) {
        self.key = key
        self.issuer = issuer
    }

    /// Signs a token for `subject`, bound to the key with thumbprint `jkt`.
    public func issue(
        subject: SPIFFEID, audience: String, jkt: String, lifetime: Int64, now: Int64, scope: String? = nil,
        jti: String = UUID().uuidString
    ) throws -> String {
        try issue(
            AccessTokenContents(
                subject: subject.description, audiences: [audience], jkt: jkt, issuedAt: now, expiresAt: now + lifetime,
                scope: scope, jti: jti))
    }

    /// Signs a token with the given contents (a nested `act` claim when `actors` is not empty).
    public func issue(_ c: AccessTokenContents) throws -> String {
        let header = JSONValue.object([
            ("alg", .string("ES256")), ("typ", .string("at+jwt")), ("kid", .string(key.kid)),
        ])
        var claims: [(String, JSONValue)] = [
            ("iss", .string(issuer)), ("sub", .string(c.subject)),
            ("aud", c.audiences.count == 1 ? .string(c.audiences[0]) : .array(c.audiences.map { .string($0) })),
            ("iat", .number(String(c.issuedAt))), ("exp", .number(String(c.expiresAt))), ("jti", .string(c.jti)),
            ("client_id", .string(c.actors.first ?? c.subject)), ("cnf", Self.confirmation(c.binding)),
        ]
        if let scope = c.scope { claims.append(("scope", .string(scope))) }
        var act: JSONValue?
        for actor in c.actors.reversed() {
            var pairs: [(String, JSONValue)] = [("sub", .string(actor))]
            if let inner = act { pairs.append(("act", inner)) }
            act = .object(pairs)
        }
        if let act { claims.append(("act", act)) }
        return try CompactJWS.signES256(header: header, payload: .object(claims), key: key.privateKey)
    }

    static func confirmation(_ b: TokenBinding) -> JSONValue {
        switch b {
        case .dpop(let jkt): .object([("jkt", .string(jkt))])
        case .certificate(let x5t): .object([("x5t#S256", .string(x5t))])
        }
    }
}

/// Verifies access tokens: ES256 signature by a known `kid`, `typ: at+jwt`, issuer, audience, `iat`/`nbf`/`exp` with a
/// small clock-skew allowance, a lifetime no longer than `maxLifetime`, a SPIFFE ID for the presenting agent (`sub`, or
/// `act.sub` in a delegated token), a `jti`, and exactly one binding, `cnf.jkt` or `cnf.x5t#S256` (a token without one
/// is refused: every Warden token is sender-constrained).
public struct AccessTokenVerifier: Sendable {
    /// Finds a verification key by `kid` (the current key and, during rotation, the previous one).
    public let key: @Sendable (String) -> P256.Signing.PublicKey?
    public let issuer: String
    public let audience: String
    public var skew: Int64 = 30
    public var maxLifetime: Int64 = 300
    /// The deepest `act` chain accepted.
    public var maxActorDepth = 8
    public let clock: any WardenClock

    /// Seconds since the Unix epoch, from ``clock``.
    public func now() -> Int64 { clock.seconds }

    public init(
        keys: [String: P256.Signing.PublicKey], issuer: String, audience: String,
        clock: any WardenClock = SystemClock()
    ) {
        self.init(key: { keys[$0] }, issuer: issuer, audience: audience, clock: clock)
    }

    public init(
        key: @escaping @Sendable (String) -> P256.Signing.PublicKey?, issuer: String, audience: String,
        clock: any WardenClock = SystemClock()
    ) {
        self.key = key
        self.issuer = issuer
        self.audience = audience
        self.clock = clock
    }

    /// Verifies `token` for this verifier's audience (or for `audience` when given: a subject token presented for
    /// exchange must name the exchanging agent).
    public func verify(_ token: String, audience expected: String? = nil) throws(WardenError) -> AccessTokenClaims {
        let code = WardenError.Code.invalidToken
        let jws = try CompactJWS(token, what: "access token", code: code)
        guard jws.header["typ"]?.stringValue?.lowercased() == "at+jwt" else {
            throw WardenError(code, "the access token header typ must be at+jwt")
        }
        guard let kid = jws.header["kid"]?.stringValue, let key = key(kid) else {
            throw WardenError(code, "the access token is signed by an unknown key")
        }
        try jws.verifyES256(with: key, code: code, what: "access token")
        let c = jws.payload
        guard c["iss"]?.stringValue == issuer else { throw WardenError(code, "the access token has the wrong issuer") }
        let audiences: [String]
        switch c["aud"] {
        case .string(let a)?: audiences = [a]
        case .array(let items)?: audiences = items.compactMap(\.stringValue)
        default: audiences = []
        }
        guard audiences.contains(expected ?? audience) else {
            throw WardenError(code, "the access token is not for this audience")
        }
        guard let iat = c["iat"]?.integerValue, let exp = c["exp"]?.integerValue else {
            throw WardenError(code, "the access token needs numeric iat and exp")
        }
        let t = now()
        guard exp > t - skew else { throw WardenError(code, "the access token has expired") }
        guard iat <= t + skew else { throw WardenError(code, "the access token is issued in the future") }
        if let nbf = c["nbf"] {
            guard let n = nbf.integerValue, n <= t + skew else {
                throw WardenError(code, "the access token is not valid yet")
            }
        }
        guard exp > iat, exp - iat <= maxLifetime else {
            throw WardenError(code, "the access token lives longer than \(maxLifetime) seconds")
        }
        guard let sub = c["sub"]?.stringValue, !sub.isEmpty, sub.utf8.count <= SPIFFEID.maxLength else {
            throw WardenError(code, "the access token has no subject")
        }
        var actors: [String] = []
        var act = c["act"]
        while let a = act {
            guard actors.count < maxActorDepth, let s = a["sub"]?.stringValue, !s.isEmpty else {
                throw WardenError(code, "the access token act chain is malformed or deeper than \(maxActorDepth)")
            }
            actors.append(s)
            act = a["act"]
        }
        guard let agent = try? SPIFFEID(parsing: actors.first ?? sub) else {
            throw WardenError(code, "the access token's agent is not a SPIFFE ID")
        }
        guard let jti = c["jti"]?.stringValue, !jti.isEmpty, jti.utf8.count <= 256 else {
            throw WardenError(code, "the access token has no jti")
        }
        let binding: TokenBinding
        switch (c["cnf"]?["jkt"]?.stringValue, c["cnf"]?["x5t#S256"]?.stringValue) {
        case (let jkt?, nil) where !jkt.isEmpty: binding = .dpop(jkt: jkt)
        case (nil, let x5t?) where !x5t.isEmpty: binding = .certificate(x5t: x5t)
        default:
            throw WardenError(code, "the access token must be bound to one key (cnf.jkt) or certificate (cnf.x5t#S256)")
        }
        return AccessTokenClaims(
            issuer: issuer, subject: sub, agent: agent, actors: actors, audiences: audiences, issuedAt: iat,
            expiresAt: exp, jti: jti, binding: binding, scope: c["scope"]?.stringValue)
    }
}

/// Authenticates a request that presents `Authorization: DPoP <token>` and a `DPoP` proof: the token is verified
/// (optionally through a bounded cache of already-verified tokens, which never skips the expiry check), then the
/// proof, bound to the token by `ath` and to its key by `cnf.jkt`.
public final class RequestAuthenticator: Sendable {
    public let tokens: AccessTokenVerifier
    public let proofs: DPoPVerifier
    private let cache = Mutex<[String: AccessTokenClaims]>([:])
    private let cacheCapacity: Int

    /// The message of a refusal of a certificate-bound token presented over a connection with another certificate.
    public static let certificateMismatch = "the access token is bound to a client certificate not presented here"

    /// Whether `error` says a genuine-looking token was presented with another key's proof or another certificate.
    public static func isKeyMismatch(_ error: WardenError) -> Bool {
        error.reason == nil && (error.message == DPoPVerifier.keyMismatch || error.message == certificateMismatch)
    }

    /// `cacheCapacity` 0 disables the verified-token cache.
    public init(tokens: AccessTokenVerifier, proofs: DPoPVerifier, cacheCapacity: Int = 10_000) {
        self.tokens = tokens
        self.proofs = proofs
        self.cacheCapacity = cacheCapacity
    }

    /// Authenticates `Authorization: DPoP <token>` with its proof, or, on a mutual-TLS connection whose client
    /// certificate has the thumbprint `clientCertificate` (base64url SHA-256 of its DER), `Authorization: Bearer
    /// <token>` for a certificate-bound token (RFC 8705). A DPoP-bound token is never accepted as a bearer token, nor a
    /// certificate-bound one without its certificate.
    public func authenticate(
        authorization: String?, dpop: String?, method: String, url: String, clientCertificate: String? = nil
    ) throws(WardenError) -> AccessTokenClaims {
        guard let authorization else {
            throw WardenError(.unauthenticated, "the request needs an Authorization: DPoP <token> header")
        }
        guard let space = authorization.firstIndex(of: " ") else {
            throw WardenError(.invalidToken, "the request needs an Authorization: DPoP <token> header")
        }
        let scheme = authorization[..<space].lowercased()
        let token = String(authorization[authorization.index(after: space)...])
        guard !token.isEmpty, !token.utf8.contains(UInt8(ascii: " ")) else {
            throw WardenError(.invalidToken, "the Authorization header must hold exactly one token")
        }
        switch scheme {
        case "dpop":
            let claims = try verifiedClaims(token)
            guard let jkt = claims.confirmationThumbprint else {
                throw WardenError(
                    .invalidToken, "a certificate-bound token is presented as Bearer over mutual TLS, not with DPoP")
            }
            _ = try proofs.verify(proof: dpop, method: method, url: url, accessToken: token, expectedThumbprint: jkt)
            return claims
        case "bearer":
            // Only certificate-bound tokens are bearer-presented, and only with a certificate: no signature work
            // for a bearer token on a connection without one.
            guard let clientCertificate else {
                throw WardenError(
                    .invalidToken, "a bearer token is accepted only with its client certificate (mutual TLS)")
            }
            let claims = try verifiedClaims(token)
            guard case .certificate(let x5t) = claims.binding else {
                throw WardenError(.invalidToken, "a DPoP-bound token must be presented with Authorization: DPoP")
            }
            guard DPoPVerifier.constantTimeEqual(clientCertificate, x5t) else {
                throw WardenError(.invalidToken, Self.certificateMismatch)
            }
            return claims
        default:
            throw WardenError(.invalidToken, "the request needs an Authorization: DPoP <token> header")
        }
    }

    /// The claims of the token in `authorization` (`DPoP <token>` or `Bearer <token>`) when the token alone verifies
    /// (signature, issuer, audience, expiry), whatever its proof; nil otherwise. Only for attributing a refusal to the
    /// token's agent (a genuine token presented with another key's proof was stolen): never for admitting a request.
    public func claimsOfPresentedToken(authorization: String?) -> AccessTokenClaims? {
        guard let authorization, let space = authorization.firstIndex(of: " ") else { return nil }
        let token = String(authorization[authorization.index(after: space)...])
        guard !token.isEmpty, token.utf8.count <= 16_384 else { return nil }
        return try? verifiedClaims(token)
    }

    private func verifiedClaims(_ token: String) throws(WardenError) -> AccessTokenClaims {
        guard cacheCapacity > 0 else { return try tokens.verify(token) }
        if let hit = cache.withLock({ $0[token] }) {
            guard hit.expiresAt > tokens.now() - tokens.skew else {
                throw WardenError(.invalidToken, "the access token has expired")
            }
            return hit
        }
        let claims = try tokens.verify(token)
        cache.withLock { c in
            if c.count >= cacheCapacity {
                let now = tokens.now()
                c = c.filter { $0.value.expiresAt > now }
                if c.count >= cacheCapacity { c.removeAll(keepingCapacity: true) }
            }
            c[token] = claims
        }
        return claims
    }
}
