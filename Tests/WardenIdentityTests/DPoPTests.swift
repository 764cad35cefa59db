import Cedar
import Crypto
import Synchronization
import Testing
import WardenCore

@testable import WardenIdentity

/// A settable clock for tests (seconds since the epoch).
final class TestClock: WardenClock {
    private let value = Mutex<Int64>(1_800_000_000)
    var now: Int64 {
        get { value.withLock { $0 } }
        set { value.withLock { $0 = newValue } }
    }
    var wallMicros: Int64 { now * 1_000_000 }
    var monotonicMicros: Int64 { now * 1_000_000 }
}

@Suite("DPoP proofs (RFC 9449)")
struct DPoPTests {
    let key = P256.Signing.PrivateKey()
    let clock = TestClock()
    let url = "https://warden.local:8443/v1/whoami"
    let token = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.sig"

    var verifier: DPoPVerifier {
        let c = clock
        return DPoPVerifier(replayCache: ReplayCache(capacity: 1000, ttlSeconds: 120), clock: c)
    }

    func proof(
        key k: P256.Signing.PrivateKey? = nil, typ: String = "dpop+jwt", alg: String = "ES256", htm: String = "GET",
        htu: String? = nil, iat: Int64? = nil, jti: String = "jti-1", ath: String? = nil,
        extraHeader: [(String, JSONValue)] = [],
        includePrivate: Bool = false
    ) throws -> String {
        let signer = k ?? key
        var jwk = ECPublicJWK(signer.publicKey).json
        if includePrivate, case .object(var pairs) = jwk {
            pairs.append(("d", .string(Base64URL.encode(signer.rawRepresentation))))
            jwk = .object(pairs)
        }
        let header = JSONValue.object([("typ", .string(typ)), ("alg", .string(alg)), ("jwk", jwk)] + extraHeader)
        var claims: [(String, JSONValue)] = [
            ("jti", .string(jti)), ("htm", .string(htm)), ("htu", .string(htu ?? url)),
            ("iat", .number(String(iat ?? clock.now))),
        ]
        if let ath { claims.append(("ath", .string(ath))) }
        return try CompactJWS.signES256(header: header, payload: .object(claims), key: signer)
    }

    var ath: String { Base64URL.encode(SHA256.hash(data: Array(token.utf8))) }

    @Test("a good proof verifies and yields the key thumbprint; the same proof again is a replay")
    func good() throws {
        let v = verifier
        let p = try proof(ath: ath)
        let result = try v.verify(
            proof: p, method: "GET", url: "https://WARDEN.local:8443/v1/whoami?x=1", accessToken: token,
            expectedThumbprint: ECPublicJWK(key.publicKey).thumbprint)
        #expect(result.thumbprint == ECPublicJWK(key.publicKey).thumbprint)
        #expect(throws: WardenError(.invalidDPoPProof, "")) {
            try v.verify(proof: p, method: "GET", url: url, accessToken: token)
        }
    }

    @Test("every malformed or mismatched proof is refused with the right error code")
    func refusals() throws {
        let v = verifier
        let other = P256.Signing.PrivateKey()
        let cases: [(String, String?, WardenError.Code)] = [
            ("missing", nil, .invalidDPoPProof),
            ("empty", "", .invalidDPoPProof),
            ("garbage", "not.a.jws", .invalidDPoPProof),
            ("two parts", "abc.def", .invalidDPoPProof),
            ("oversized", String(repeating: "a", count: 9000), .invalidDPoPProof),
            ("typ", try proof(typ: "JWT", jti: "a1", ath: ath), .invalidDPoPProof),
            ("alg none", try proof(alg: "none", jti: "a2", ath: ath), .invalidDPoPProof),
            ("alg HS256", try proof(alg: "HS256", jti: "a3", ath: ath), .invalidDPoPProof),
            ("htm", try proof(htm: "POST", jti: "a4", ath: ath), .invalidDPoPProof),
            ("htu", try proof(htu: "https://warden.local:8443/v1/other", jti: "a5", ath: ath), .invalidDPoPProof),
            ("future iat", try proof(iat: clock.now + 60, jti: "a6", ath: ath), .invalidDPoPProof),
            ("old iat", try proof(iat: clock.now - 3600, jti: "a7", ath: ath), .invalidDPoPProof),
            ("ath", try proof(jti: "a8", ath: "wrong"), .invalidDPoPProof),
            ("no ath", try proof(jti: "a9"), .invalidDPoPProof),
            ("private jwk", try proof(jti: "a10", ath: ath, includePrivate: true), .invalidDPoPProof),
            (
                "crit", try proof(jti: "a11", ath: ath, extraHeader: [("crit", .array([.string("x")]))]),
                .invalidDPoPProof
            ),
            ("other key", try proof(key: other, jti: "a12", ath: ath), .invalidDPoPProof),
        ]
        for (name, p, code) in cases {
            do {
                _ = try v.verify(
                    proof: p, method: "GET", url: url, accessToken: token,
                    expectedThumbprint: ECPublicJWK(key.publicKey).thumbprint)
                Issue.record("accepted: \(name)")
            } catch {
                #expect(error.code == code, "\(name): \(error)")
                #expect(!error.message.contains(token), "\(name): the error leaks the token")
            }
        }
    }

    @Test("a signature made by another key than the header's jwk is refused")
    func forgedSignature() throws {
        let good = try proof(ath: ath).split(separator: ".")
        let forged = try proof(key: P256.Signing.PrivateKey(), jti: "jti-1", ath: ath).split(separator: ".")
        let mixed = "\(good[0]).\(good[1]).\(forged[2])"
        #expect(throws: WardenError(.invalidDPoPProof, "")) {
            try verifier.verify(proof: mixed, method: "GET", url: url, accessToken: token)
        }
    }

    @Test("a known header (found again by its bytes) still needs its key's signature; refused proofs add no header")
    func headerCache() throws {
        let v = verifier
        let accepted = try proof(jti: "h1", ath: ath)
        let header = accepted.split(separator: ".")[0]
        _ = try v.verify(proof: accepted, method: "GET", url: url, accessToken: token)
        #expect(v.headers.lookup(header) != nil)
        // The same header text over another key's signature: verified with the cached header's key, refused.
        let forged = try proof(key: P256.Signing.PrivateKey(), jti: "h2", ath: ath).split(separator: ".")
        #expect(throws: WardenError(.invalidDPoPProof, "")) {
            try v.verify(proof: "\(header).\(forged[1]).\(forged[2])", method: "GET", url: url, accessToken: token)
        }
        // A proof refused after its signature verified (another method) leaves its header unknown.
        let other = P256.Signing.PrivateKey()
        let refused = try proof(key: other, htm: "POST", jti: "h3", ath: ath)
        #expect(throws: WardenError(.invalidDPoPProof, "")) {
            try v.verify(proof: refused, method: "GET", url: url, accessToken: token)
        }
        #expect(v.headers.lookup(refused.split(separator: ".")[0]) == nil)
        // Its first accepted proof adds it.
        _ = try v.verify(proof: try proof(key: other, jti: "h4", ath: ath), method: "GET", url: url, accessToken: token)
        #expect(v.headers.lookup(refused.split(separator: ".")[0]) != nil)
    }

    @Test("a replay cache shorter than the proof window is refused (fail closed)")
    func shortReplayWindow() throws {
        let c = clock
        let v = DPoPVerifier(replayCache: ReplayCache(capacity: 10, ttlSeconds: 10), clock: c)
        #expect(throws: WardenError(.invalidDPoPProof, "")) {
            try v.verify(proof: try proof(ath: ath), method: "GET", url: url, accessToken: token)
        }
    }

    @Test("server nonces are enforced")
    func nonce() throws {
        var v = verifier
        v.nonces = DPoPNonceSource()
        #expect(throws: WardenError(.useDPoPNonce, "")) {
            try v.verify(proof: try proof(ath: ath), method: "GET", url: url, accessToken: token)
        }
    }

    @Test("the replay cache is bounded in time and size, and fails closed when full")
    func replayCache() {
        let cache = ReplayCache(capacity: 3, ttlSeconds: 10)
        #expect(cache.check("a", now: 100) == .fresh)
        #expect(cache.check("a", now: 105) == .replayed)
        #expect(cache.check("b", now: 105) == .fresh)
        #expect(cache.check("c", now: 106) == .fresh)
        #expect(cache.check("d", now: 106) == .full)
        #expect(cache.check("a", now: 110) == .fresh)  // expired, so no longer a replay
        #expect(cache.count == 3)
    }

    @Test("one partition (a key, a client) cannot fill the cache for the others")
    func replayCachePartitions() {
        let cache = ReplayCache(capacity: 10, ttlSeconds: 10, perPartitionCapacity: 2)
        #expect(cache.check("k1:a", now: 100, partition: "k1") == .fresh)
        #expect(cache.check("k1:b", now: 100, partition: "k1") == .fresh)
        #expect(cache.check("k1:c", now: 101, partition: "k1") == .full)
        #expect(cache.check("k2:a", now: 101, partition: "k2") == .fresh)
        #expect(cache.check("k1:a", now: 105, partition: "k1") == .replayed)
        // Once k1's entries expire, its share is free again.
        #expect(cache.check("k1:c", now: 110, partition: "k1") == .fresh)
        #expect(cache.check("k1:d", now: 110, partition: "k1") == .fresh)
        #expect(cache.check("k1:e", now: 110, partition: "k1") == .full)
    }

    @Test("an entry that expired behind a later one (the clock stepped back) is forgotten and its share freed once")
    func replayCacheClockStep() {
        let cache = ReplayCache(capacity: 10, ttlSeconds: 10, perPartitionCapacity: 2)
        #expect(cache.check("k:a", now: 100, partition: "k") == .fresh)  // expires at 110
        #expect(cache.check("k:b", now: 50, partition: "k") == .fresh)  // the clock stepped back: expires at 60
        #expect(cache.check("k:b", now: 55, partition: "k") == .replayed)
        // At 70 b has expired, though it is queued behind a: offered again it is fresh, and still one of k's two.
        #expect(cache.check("k:b", now: 70, partition: "k") == .fresh)
        #expect(cache.check("k:c", now: 70, partition: "k") == .full)
        // Once everything expired, k's whole share is free again (nothing counted twice, nothing leaked).
        #expect(cache.check("k:c", now: 111, partition: "k") == .fresh)
        #expect(cache.check("k:d", now: 111, partition: "k") == .fresh)
        #expect(cache.check("k:e", now: 111, partition: "k") == .full)
        #expect(cache.count == 2)
    }

    @Test("every one of many distinct identifiers is fresh once and a replay after")
    func replayCacheMany() {
        let cache = ReplayCache(capacity: 60_000, ttlSeconds: 66, perPartitionCapacity: 6_000)
        let ids = (0..<50_000).map { "key\($0 % 16):jti-\($0)" }
        #expect(
            ids.allSatisfy { cache.check($0, now: 1_000, partition: String($0.prefix(while: { $0 != ":" }))) == .fresh }
        )
        #expect(
            ids.allSatisfy {
                cache.check($0, now: 1_065, partition: String($0.prefix(while: { $0 != ":" }))) == .replayed
            })
        #expect(cache.count == 50_000)
        #expect(cache.check(ids[0], now: 1_066) == .fresh)
    }

    @Test(
        "htu normalisation",
        arguments: [
            ("https://Example.COM:443/a?b#c", "https://example.com/a"),
            ("HTTP://example.com:80", "http://example.com/"),
            ("https://example.com:8443/x/", "https://example.com:8443/x/"),
        ])
    func normalize(input: String, expected: String) {
        #expect(DPoPVerifier.normalize(input) == expected)
    }

    @Test("base64url is strict and round-trips")
    func base64url() {
        for n in 0..<40 {
            let bytes = (0..<n).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }
            #expect(Base64URL.decode(Base64URL.encode(bytes)) == bytes)
        }
        #expect(Base64URL.decode("ab+/") == nil)
        #expect(Base64URL.decode("abc=") == nil)
        #expect(Base64URL.decode("a") == nil)
        #expect(Base64URL.decode("AB") == nil)  // non-zero leftover bits
        #expect(Base64URL.decode("") == [])
        #expect(Base64URL.encode([UInt8]()) == "")
        // RFC 4648 §10's vectors, in the URL-safe alphabet without padding; and the two characters that differ.
        for (plain, encoded) in [("f", "Zg"), ("fo", "Zm8"), ("foo", "Zm9v"), ("foob", "Zm9vYg"), ("fooba", "Zm9vYmE")]
        {
            #expect(Base64URL.encode(Array(plain.utf8)) == encoded)
            #expect(Base64URL.decode(encoded) == Array(plain.utf8))
        }
        #expect(Base64URL.encode([0xFB, 0xFF]) == "-_8")
        #expect(Base64URL.decode("-_8") == [0xFB, 0xFF])
        // Substrings (as a compact JWS's parts are) and non-contiguous sequences take the same path.
        let text = "xx.Zm9vYmE.yy"
        #expect(Base64URL.decode(text.split(separator: ".")[1]) == Array("fooba".utf8))
        #expect(Base64URL.encode(Array("fooba".utf8).lazy.map { $0 }) == "Zm9vYmE")
        #expect(Base64URL.decode("Zm9v\u{00e9}") == nil)  // non-ASCII
    }

    @Test("RFC 7638 thumbprint of the RFC 9449 example key")
    func thumbprint() throws {
        // The P-256 key of RFC 9449's examples; the expected thumbprint is the one joserfc computes for it.
        let jwk = try ECPublicJWK(
            json: JSONValue.parse(
                #"{"kty":"EC","x":"l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs","y":"9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDA","crv":"P-256"}"#
            ))
        #expect(jwk.thumbprint == "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I")
    }
}
