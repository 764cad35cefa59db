import Cedar
import Crypto
import Foundation
import Synchronization
import WardenCore

/// Verifies DPoP proofs (RFC 9449 §4.3) for requests that carry them.
///
/// Checks, in order: one well-formed compact JWS no larger than 8 KiB; `typ` is `dpop+jwt`; `alg` is ES256 (the only
/// asymmetric algorithm Warden accepts); `jwk` is a public P-256 key and the signature verifies with it; `htm` equals
/// the request method; `htu` equals the request URI without query and fragment, after syntax-based normalisation;
/// `iat` lies within the acceptance window; `ath` is the hash of the access token when one is presented; the key
/// thumbprint equals the token's `cnf.jkt` when given; `nonce` matches when the server requires one; and `jti` was not
/// seen before within the window (bounded replay cache).
public struct DPoPVerifier: Sendable {
    /// How far in the past `iat` may be, in seconds.
    public var maxAge: Int64 = 60
    /// How far in the future `iat` may be (clock skew), in seconds.
    public var skew: Int64 = 5
    /// The longest `jti` accepted.
    public var maxJTILength = 256
    /// The replay cache (its TTL should cover `maxAge + skew`).
    public let replayCache: ReplayCache
    /// Headers of accepted proofs, by their base64url text (an agent signs every proof with the same header).
    let headers = ProofHeaderCache()
    /// The current time, in seconds since the Unix epoch (injected so tests control it).
    public let clock: any WardenClock

    /// Seconds since the Unix epoch, from ``clock``.
    public func now() -> Int64 { clock.seconds }
    /// When set, every proof must carry a nonce this source issued recently (RFC 9449 §8).
    public var nonces: DPoPNonceSource?
    /// When set, a proof whose `iat` is before `notBefore` must carry a nonce of `nonces` (issued by this process).
    public var startGuard: StartGuard?

    /// Replays across a restart: the replay cache lives in memory, so a proof the previous process accepted could be
    /// accepted again. A proof that may predate this process (its `iat` earlier than the start plus the allowed clock
    /// skew) is accepted only with a nonce of this process's own, which no proof made before the start can carry;
    /// without one it gets `use_dpop_nonce` and the client retries (RFC 9449 §8).
    public struct StartGuard: Sendable {
        public let notBefore: Int64
        public let nonces: DPoPNonceSource
        public init(notBefore: Int64, nonces: DPoPNonceSource) {
            self.notBefore = notBefore
            self.nonces = nonces
        }
    }

    public init(replayCache: ReplayCache = ReplayCache(), clock: any WardenClock = SystemClock()) {
        self.replayCache = replayCache
        self.clock = clock
    }

    /// What a verified proof tells: the key that signed it.
    public struct Verified: Sendable {
        public let key: ECPublicJWK
        /// The RFC 7638 thumbprint of `key`, to compare with a token's `cnf.jkt`.
        public let thumbprint: String
        public let jti: String
    }

    /// The message of a refusal whose proof was valid in every way but made with another key than the expected one
    /// (evidence of a stolen token when the token is genuine; the wire error stays `invalid_dpop_proof`).
    public static let keyMismatch = "the DPoP proof is made with another key than the one the request is bound to"

    /// Verifies `proof` for a request `method url`. With `accessToken`, `ath` must match it; with `expectedThumbprint`
    /// (a token's `cnf.jkt`, an enrolled or enrolling key), the proof's key must be that key; with ``nonces`` set, the
    /// proof must carry a recent server nonce.
    public func verify(
        proof: String?, method: String, url: String, accessToken: String? = nil, expectedThumbprint: String? = nil
    ) throws(WardenError) -> Verified {
        let code = WardenError.Code.invalidDPoPProof
        // A jti forgotten before its proof stops being acceptable could be replayed: refuse to run that way.
        guard replayCache.ttlSeconds >= maxAge + skew else {
            throw WardenError(code, "server misconfiguration: the replay cache TTL is shorter than the proof window")
        }
        guard let proof else { throw WardenError(code, "the request has no DPoP proof") }
        let what = "DPoP proof"
        let (h64, p64, s64) = try CompactJWS.segments(proof, what: what, code: code)
        // An agent's proofs share one header (its key, typ and alg): the header of an accepted proof is found again
        // by its bytes; any other is checked and its key decoded.
        let known = headers.lookup(h64)
        let entry: ProofKey
        if let known { entry = known } else { entry = try Self.header(h64, what: what, code: code) }
        let (key, publicKey, thumbprint) = entry
        guard let payload = Base64URL.decode(p64), let signature = Base64URL.decode(s64) else {
            throw WardenError(code, "the \(what) is not valid base64url")
        }
        try CompactJWS.verifyES256(
            signature, over: Array(proof.utf8[h64.startIndex..<p64.endIndex]), with: publicKey, code: code, what: what)
        let claims = try CompactJWS.object(payload, "payload", what: what, code: code)
        guard let jti = claims["jti"]?.stringValue, !jti.isEmpty, jti.utf8.count <= maxJTILength else {
            throw WardenError(code, "the DPoP proof needs a jti of 1 to \(maxJTILength) bytes")
        }
        guard claims["htm"]?.stringValue == method else {
            throw WardenError(code, "the DPoP proof htm does not match the request method")
        }
        guard let htu = claims["htu"]?.stringValue, let proofURI = Self.normalize(htu),
            let requestURI = Self.normalize(url), proofURI == requestURI
        else {
            throw WardenError(code, "the DPoP proof htu does not match the request URI")
        }
        guard let iat = claims["iat"]?.integerValue else {
            throw WardenError(code, "the DPoP proof has no numeric iat")
        }
        let t = now()
        guard iat <= t + skew else { throw WardenError(code, "the DPoP proof iat is in the future") }
        guard iat >= t - maxAge else { throw WardenError(code, "the DPoP proof is too old") }
        if let accessToken {
            let expected = Base64URL.encode(SHA256.hash(data: Array(accessToken.utf8)))
            guard let ath = claims["ath"]?.stringValue, Self.constantTimeEqual(ath, expected) else {
                throw WardenError(code, "the DPoP proof ath does not match the access token")
            }
        }
        if let expectedThumbprint, !Self.constantTimeEqual(thumbprint, expectedThumbprint) {
            throw WardenError(code, Self.keyMismatch)
        }
        if let nonces {
            // A nonce of the restart guard's (handed out in the first seconds after a start) is as good.
            guard let n = claims["nonce"]?.stringValue,
                nonces.isValid(n, now: t) || startGuard?.nonces.isValid(n, now: t) == true
            else {
                throw WardenError(.useDPoPNonce, "the DPoP proof must carry the server's current nonce")
            }
        }
        if let startGuard, iat < startGuard.notBefore {
            guard let n = claims["nonce"]?.stringValue, startGuard.nonces.isValid(n, now: t) else {
                throw WardenError(
                    .useDPoPNonce, "the DPoP proof may predate this server's start; retry with the server's nonce")
            }
        }
        switch replayCache.check(thumbprint + ":" + jti, now: t, partition: thumbprint) {
        case .fresh: break
        case .replayed: throw WardenError(code, "the DPoP proof was already used (jti replay)")
        case .full: throw WardenError(code, "too many recent DPoP proofs from this key; retry shortly")
        }
        // Only a proof accepted in every way adds its header (refused ones cannot churn the cache).
        if known == nil { headers.remember(h64, (key, publicKey, thumbprint)) }
        return Verified(key: key, thumbprint: thumbprint, jti: jti)
    }

    /// A proof header's checks (`crit`, `typ`, `jwk`, `alg`) and its key: decoded and validated, with its RFC 7638
    /// thumbprint.
    static func header(_ h64: Substring, what: String, code: WardenError.Code) throws(WardenError) -> ProofKey {
        guard let bytes = Base64URL.decode(h64) else { throw WardenError(code, "the \(what) is not valid base64url") }
        let header = try CompactJWS.object(bytes, "header", what: what, code: code)
        try CompactJWS.checkCritical(header, what: what, code: code)
        guard header["typ"]?.stringValue == "dpop+jwt" else {
            throw WardenError(code, "the DPoP proof header typ must be dpop+jwt")
        }
        guard let jwk = header["jwk"] else { throw WardenError(code, "the DPoP proof header has no jwk") }
        let resolved: ProofKey
        do {
            let key = try ECPublicJWK(json: jwk)
            resolved = (key, try key.publicKey(), key.thumbprint)
        } catch {
            throw WardenError(code, "the DPoP proof key is unusable: \(error.message)")
        }
        guard header["alg"]?.stringValue == "ES256" else {
            throw WardenError(code, "the \(what) must be signed with ES256")
        }
        return resolved
    }

    /// RFC 9449 §4.3 step 9 / RFC 3986 §6.2.2-6.2.3: lowercase scheme and host, default port removed, empty path as
    /// `/`, query and fragment dropped. Nil when the text is not an absolute http(s) URI.
    public static func normalize(_ uri: String) -> String? {
        // Byte scan for "://" (Foundation's range(of:) was a measurable part of each gateway request).
        let u = uri.utf8
        var schemeEnd: String.Index?
        var i = u.startIndex
        while i < u.endIndex, schemeEnd == nil {
            if u[i] == UInt8(ascii: ":") {
                let j = u.index(after: i)
                if j < u.endIndex, u[j] == UInt8(ascii: "/"), u.index(after: j) < u.endIndex,
                    u[u.index(after: j)] == UInt8(ascii: "/")
                {
                    schemeEnd = i
                }
            }
            i = u.index(after: i)
        }
        guard let schemeEnd else { return nil }
        let scheme = uri[..<schemeEnd].lowercased()
        guard scheme == "https" || scheme == "http" else { return nil }
        var rest = uri[uri.utf8.index(schemeEnd, offsetBy: 3)...]
        if let cut = rest.firstIndex(where: { $0 == "?" || $0 == "#" }) { rest = rest[..<cut] }
        let slash = rest.firstIndex(of: "/") ?? rest.endIndex
        var authority = rest[..<slash].lowercased()
        guard !authority.isEmpty, !authority.utf8.contains(UInt8(ascii: "@")) else { return nil }
        let path = rest[slash...].isEmpty ? "/" : String(rest[slash...])
        if scheme == "https", authority.hasSuffix(":443") { authority.removeLast(4) }
        if scheme == "http", authority.hasSuffix(":80") { authority.removeLast(3) }
        return "\(scheme)://\(authority)\(path)"
    }

    /// Compares two strings in time that depends only on their lengths.
    public static func constantTimeEqual(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8)
        let y = Array(b.utf8)
        guard x.count == y.count else { return false }
        var diff: UInt8 = 0
        for i in 0..<x.count { diff |= x[i] ^ y[i] }
        return diff == 0
    }
}

/// A proof header's key: the JWK, the point, and its RFC 7638 thumbprint.
typealias ProofKey = (key: ECPublicJWK, publicKey: P256.Signing.PublicKey, thumbprint: String)

/// The headers of accepted proofs (every header check passed, the signature verified, the proof fresh), by their exact
/// base64url text, with the key they carry: the same bytes always decode to the same header, so a header seen before
/// is neither parsed nor its key decoded again. Bounded (emptied when full).
final class ProofHeaderCache: Sendable {
    private let entries = Mutex<[Substring: ProofKey]>([:])
    static let capacity = 10_000
    /// The longest header text kept (a proof header with a P-256 JWK is about 250 bytes).
    static let maxKeyLength = 1024

    func lookup(_ text: Substring) -> ProofKey? { entries.withLock { $0[text] } }

    func remember(_ text: Substring, _ entry: ProofKey) {
        guard text.utf8.count <= Self.maxKeyLength else { return }
        // Its own storage, not a slice holding the whole proof.
        let key = Substring(String(text))
        entries.withLock { e in
            if e.count >= Self.capacity { e.removeAll(keepingCapacity: true) }
            e[key] = entry
        }
    }
}
