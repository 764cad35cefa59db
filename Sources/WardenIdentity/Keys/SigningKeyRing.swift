import Cedar
import Crypto
import Synchronization
import WardenCore

/// The control plane's token-signing keys: one current key that signs, and retired keys that keep verifying for an
/// overlap (at least the longest token lifetime plus clock skew) so that rotation never breaks a token in flight.
/// JWKS publishes every key that still verifies.
public final class SigningKeyRing: Sendable {
    /// A key and its schedule (seconds since the Unix epoch).
    public struct Entry: Sendable {
        public let key: SigningKey
        public let createdAt: Int64
        /// When it stopped signing; nil for the current key.
        public var retiredAt: Int64?

        public init(key: SigningKey, createdAt: Int64, retiredAt: Int64? = nil) {
            self.key = key
            self.createdAt = createdAt
            self.retiredAt = retiredAt
        }
    }

    private let entries: Mutex<[Entry]>
    /// How long a retired key keeps verifying, in seconds.
    public let overlap: Int64
    public let clock: any WardenClock

    /// Seconds since the Unix epoch, from ``clock``.
    public func now() -> Int64 { clock.seconds }

    /// `entries` must hold exactly one key that is not retired.
    public init(entries: [Entry], overlap: Int64, clock: any WardenClock) throws(WardenError) {
        guard entries.filter({ $0.retiredAt == nil }).count == 1 else {
            throw WardenError(.invalidKey, "the signing key ring needs exactly one current key")
        }
        self.entries = Mutex(entries.sorted { $0.createdAt < $1.createdAt })
        self.overlap = overlap
        self.clock = clock
    }

    /// The key that signs new tokens.
    public var current: SigningKey {
        entries.withLock { e in e.last { $0.retiredAt == nil }!.key }
    }

    /// When the current key was created.
    public var currentCreatedAt: Int64 {
        entries.withLock { e in e.last { $0.retiredAt == nil }!.createdAt }
    }

    /// The public key for `kid` if it still verifies.
    public func publicKey(kid: String) -> P256.Signing.PublicKey? {
        let t = now()
        return entries.withLock { e in
            e.first { $0.key.kid == kid && ($0.retiredAt.map { t < $0 + overlap } ?? true) }?.key.privateKey.publicKey
        }
    }

    /// The keys that still verify (current last).
    public func verifying() -> [Entry] {
        let t = now()
        return entries.withLock { e in e.filter { $0.retiredAt.map { t < $0 + overlap } ?? true } }
    }

    /// Every entry, including retired ones past their overlap (to persist or delete).
    public func all() -> [Entry] { entries.withLock { $0 } }

    /// Makes `newKey` current and retires the previous one now. Returns the retired entry.
    @discardableResult
    public func rotate(to newKey: SigningKey) -> Entry {
        let t = now()
        return entries.withLock { e in
            let i = e.lastIndex { $0.retiredAt == nil }!
            e[i].retiredAt = t
            let retired = e[i]
            e.append(Entry(key: newKey, createdAt: t))
            return retired
        }
    }

    /// Forgets retired keys past their overlap; returns their key ids.
    public func prune() -> [String] {
        let t = now()
        return entries.withLock { e in
            let gone = e.filter { $0.retiredAt.map { t >= $0 + overlap } ?? false }.map(\.key.kid)
            e.removeAll { $0.retiredAt.map { t >= $0 + overlap } ?? false }
            return gone
        }
    }

    /// The JWKS document (RFC 7517): every key that verifies, with `kid`, `use: sig` and `alg: ES256`.
    public func jwks() -> JSONValue {
        .object([("keys", .array(verifying().map { Self.jwk($0.key, use: "sig") }))])
    }

    /// A public JWK of `key` with `kid`, `use` and `alg`.
    public static func jwk(_ key: SigningKey, use: String) -> JSONValue {
        jwk(key.privateKey.publicKey, kid: key.kid, use: use)
    }

    /// A public JWK of `key` with `kid`, `use` and `alg`.
    public static func jwk(_ key: P256.Signing.PublicKey, kid: String, use: String) -> JSONValue {
        let pub = ECPublicJWK(key)
        return .object([
            ("kty", .string("EC")), ("crv", .string("P-256")), ("x", .string(Base64URL.encode(pub.x))),
            ("y", .string(Base64URL.encode(pub.y))), ("kid", .string(kid)), ("use", .string(use)),
            ("alg", .string("ES256")),
        ])
    }
}
