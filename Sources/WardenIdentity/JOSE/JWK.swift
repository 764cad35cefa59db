import Cedar
import Crypto
import WardenCore

/// A public EC P-256 JSON Web Key (RFC 7517/7518), the only key type Warden accepts from agents.
public struct ECPublicJWK: Hashable, Sendable {
    /// The 32-byte affine coordinates.
    public let x: [UInt8]
    public let y: [UInt8]

    /// Reads a JWK object. A private key (`d` present), another key type or curve, or a point not on the curve is
    /// refused.
    public init(json: JSONValue) throws(WardenError) {
        guard case .object(let pairs) = json else { throw WardenError(.invalidKey, "a JWK must be a JSON object") }
        guard json["d"] == nil else {
            throw WardenError(.invalidKey, "the JWK holds a private key; send the public key only")
        }
        guard case .string("EC")? = json["kty"] else { throw WardenError(.invalidKey, "only kty EC keys are accepted") }
        guard case .string("P-256")? = json["crv"] else {
            throw WardenError(.invalidKey, "only the P-256 curve is accepted")
        }
        guard case .string(let xs)? = json["x"], case .string(let ys)? = json["y"], let x = Base64URL.decode(xs),
            let y = Base64URL.decode(ys), x.count == 32, y.count == 32
        else {
            throw WardenError(.invalidKey, "the JWK needs 32-byte base64url coordinates x and y")
        }
        _ = pairs
        self.x = x
        self.y = y
        _ = try publicKey()
    }

    /// The key of a swift-crypto public key.
    public init(_ key: P256.Signing.PublicKey) {
        let raw = Array(key.rawRepresentation)
        x = Array(raw[0..<32])
        y = Array(raw[32..<64])
    }

    /// The swift-crypto key (validates that the point is on the curve).
    public func publicKey() throws(WardenError) -> P256.Signing.PublicKey {
        do {
            return try P256.Signing.PublicKey(rawRepresentation: x + y)
        } catch {
            throw WardenError(.invalidKey, "the JWK is not a valid P-256 public key")
        }
    }

    /// The JWK as JSON (members in lexicographic order).
    public var json: JSONValue {
        .object([
            ("crv", .string("P-256")), ("kty", .string("EC")), ("x", .string(Base64URL.encode(x))),
            ("y", .string(Base64URL.encode(y))),
        ])
    }

    /// The RFC 7638 thumbprint: base64url(SHA-256) of the required members in lexicographic order, no white space.
    public var thumbprint: String {
        Base64URL.encode(SHA256.hash(data: Array(json.serialized.utf8)))
    }
}
