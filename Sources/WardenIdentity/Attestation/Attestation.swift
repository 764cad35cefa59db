import Crypto
import WardenCore

/// What an agent presents at enrollment to prove it is what was registered.
public struct AttestationEvidence: Sendable, Hashable {
    /// `sha256:<hex>` of the canonical JSON of the manifest the agent runs with.
    public var manifestDigest: String
    /// SHA-256 (64 hex digits) of the agent's binary, for local agents.
    public var binarySHA256: String?

    public init(manifestDigest: String, binarySHA256: String? = nil) {
        self.manifestDigest = manifestDigest
        self.binarySHA256 = binarySHA256
    }
}

/// Checks attestation evidence against a registered manifest.
public enum Attestation {
    /// `sha256:` and the hex SHA-256 of the manifest's canonical JSON.
    public static func manifestDigest(_ manifest: AgentManifest) -> String {
        "sha256:" + hex(SHA256.hash(data: Array(manifest.canonicalJSON.utf8)))
    }

    /// Lowercase hex of bytes.
    @inlinable
    public static func hex<Bytes: Sequence>(_ bytes: Bytes) -> String where Bytes.Element == UInt8 {
        // Inlinable: specialised where it is called (a digest per audited request), not walked through witnesses.
        var out = [UInt8]()
        out.reserveCapacity(bytes.underestimatedCount * 2)
        for b in bytes {
            out.append(hexDigit(b >> 4))
            out.append(hexDigit(b & 15))
        }
        return String(decoding: out, as: UTF8.self)
    }

    @inlinable
    static func hexDigit(_ v: UInt8) -> UInt8 { v < 10 ? UInt8(ascii: "0") + v : UInt8(ascii: "a") + v - 10 }

    /// Verifies `evidence` for `record`; returns the attestation level (`manifest` or `manifest+binary`). Throws
    /// `attestation_failed` naming what did not match.
    public static func verify(_ evidence: AttestationEvidence, against record: AgentRecord) throws(WardenError)
        -> String
    {
        guard DPoPVerifier.constantTimeEqual(evidence.manifestDigest.lowercased(), record.manifestDigest) else {
            throw WardenError(.attestationFailed, "the manifest digest does not match the registered manifest")
        }
        guard let expected = record.manifest.binarySHA256 else { return "manifest" }
        guard var presented = evidence.binarySHA256?.lowercased() else {
            throw WardenError(
                .attestationFailed, "the registered manifest pins the agent binary; the evidence has no binary hash")
        }
        if presented.hasPrefix("sha256:") { presented.removeFirst(7) }
        guard DPoPVerifier.constantTimeEqual(presented, expected) else {
            throw WardenError(.attestationFailed, "the agent binary hash does not match the registered manifest")
        }
        return "manifest+binary"
    }
}
