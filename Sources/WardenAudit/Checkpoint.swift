import Cedar
import Crypto
import Foundation
import WardenCore
import WardenIdentity

/// A signed tree head of the audit log: a compact JWS (ES256, the control plane's key) over
/// `{iss, origin, tree_size, root_hash, chain_head, iat, prev}` (`docs/audit.md`).
public struct Checkpoint: Sendable, Hashable {
    public static let type = "audit-checkpoint+jwt"

    public let jws: String
    public let kid: String
    public let issuer: String
    public let origin: String
    public let treeSize: Int64
    public let rootHash: Hash32
    public let chainHead: Hash32
    public let issuedAt: Int64
    /// SHA-256 of the previous checkpoint's JWS (nil on the first).
    public let previous: Hash32?
    let signingInput: [UInt8]
    public let signature: [UInt8]

    /// Signs a checkpoint with `key`.
    public static func sign(
        key: SigningKey, issuer: String, origin: String, treeSize: Int64, rootHash: Hash32, chainHead: Hash32,
        issuedAt: Int64, previous: Hash32?
    ) throws(WardenError) -> Checkpoint {
        var payload: [(String, JSONValue)] = [
            ("iss", .string(issuer)), ("origin", .string(origin)), ("tree_size", .number(String(treeSize))),
            ("root_hash", .string(rootHash.hex)), ("chain_head", .string(chainHead.hex)),
            ("iat", .number(String(issuedAt))),
        ]
        if let previous { payload.append(("prev", .string(previous.hex))) }
        let header = JSONValue.object([("alg", .string("ES256")), ("kid", .string(key.kid)), ("typ", .string(type))])
        do {
            return try Checkpoint(
                parsing: try CompactJWS.signES256(header: header, payload: .object(payload), key: key.privateKey))
        } catch let e as WardenError {
            throw e
        } catch {
            throw WardenError(.storage, "the audit checkpoint could not be signed")
        }
    }

    /// Parses a checkpoint: the compact JWS, or the JSON `warden audit checkpoint` prints (its `jws` member). The
    /// signature is not checked here (``verify(keys:)``).
    public init(parsing text: String) throws(WardenError) {
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        var compact = trimmed
        if trimmed.hasPrefix("{") {
            guard let json = try? JSONValue.parse(trimmed, maxDepth: 8, maxBytes: 64 * 1024),
                let jws = json["jws"]?.stringValue
            else { throw WardenError(.invalidRequest, "the checkpoint JSON has no \"jws\" member") }
            compact = jws
        }
        let jws = try CompactJWS(compact, what: "checkpoint", code: .invalidRequest)
        guard jws.algorithm == "ES256", jws.header["typ"]?.stringValue == Self.type,
            let kid = jws.header["kid"]?.stringValue
        else {
            throw WardenError(.invalidRequest, "the checkpoint is not an ES256 \(Self.type) JWS with a kid")
        }
        let p = jws.payload
        guard let iss = p["iss"]?.stringValue, let origin = p["origin"]?.stringValue,
            let size = p["tree_size"]?.integerValue, size >= 0,
            let root = p["root_hash"]?.stringValue.flatMap(Hash32.init(hex:)),
            let chain = p["chain_head"]?.stringValue.flatMap(Hash32.init(hex:)),
            let iat = p["iat"]?.integerValue
        else {
            throw WardenError(
                .invalidRequest, "the checkpoint payload lacks iss, origin, tree_size, root_hash, chain_head or iat")
        }
        var previous: Hash32?
        if let prev = p["prev"] {
            guard let h = prev.stringValue.flatMap(Hash32.init(hex:)) else {
                throw WardenError(.invalidRequest, "the checkpoint's prev is not a SHA-256 hex value")
            }
            previous = h
        }
        self.jws = compact
        self.kid = kid
        self.issuer = iss
        self.origin = origin
        self.treeSize = size
        self.rootHash = root
        self.chainHead = chain
        self.issuedAt = iat
        self.previous = previous
        self.signingInput = jws.signingInput
        self.signature = jws.signature
    }

    /// SHA-256 of the compact JWS (what the next checkpoint's `prev` names).
    public var digest: Hash32 { Hash32(SHA256.hash(data: Array(jws.utf8))) }

    /// Checks the signature with the key named by `kid`.
    public func verify(keys: [String: P256.Signing.PublicKey]) throws(WardenError) {
        guard let key = keys[kid] else {
            throw WardenError(.invalidToken, "the checkpoint at tree size \(treeSize) is signed by unknown key \(kid)")
        }
        guard let sig = try? P256.Signing.ECDSASignature(rawRepresentation: signature),
            key.isValidSignature(sig, for: signingInput)
        else {
            throw WardenError(.invalidToken, "the checkpoint at tree size \(treeSize) has a bad signature")
        }
    }

    /// The JSON `warden audit checkpoint` prints and the admin API serves.
    public var json: JSONValue {
        .object([
            ("origin", .string(origin)), ("tree_size", .number(String(treeSize))),
            ("root_hash", .string(rootHash.hex)), ("chain_head", .string(chainHead.hex)),
            ("timestamp", .number(String(issuedAt))), ("kid", .string(kid)),
            ("signature", .string(Base64URL.encode(signature))), ("jws", .string(jws)),
        ])
    }
}
