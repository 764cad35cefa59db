import Crypto
import Foundation

/// Server-issued DPoP nonces (RFC 9449 §8) without server state: a nonce is `base64url(step || HMAC(key, step))` for
/// the current time step, and a proof's nonce is accepted when it was made with this source's key for the current or
/// the previous step. Several replicas that share the key accept each other's nonces.
public struct DPoPNonceSource: Sendable {
    private let key: SymmetricKey
    /// The length of one step, in seconds; a nonce is good for one to two steps.
    public let step: Int64

    public init(key: SymmetricKey = SymmetricKey(size: .bits256), step: Int64 = 60) {
        self.key = key
        self.step = max(1, step)
    }

    /// The nonce to hand out at `now` (the `DPoP-Nonce` response header).
    public func current(now: Int64) -> String { nonce(forStep: now / step) }

    /// Whether `nonce` was issued for the current or the previous step.
    public func isValid(_ nonce: String, now: Int64) -> Bool {
        guard nonce.utf8.count <= 64 else { return false }
        let s = now / step
        return DPoPVerifier.constantTimeEqual(nonce, self.nonce(forStep: s))
            || DPoPVerifier.constantTimeEqual(nonce, self.nonce(forStep: s - 1))
    }

    private func nonce(forStep s: Int64) -> String {
        var be = UInt64(bitPattern: s).bigEndian
        let stepBytes = withUnsafeBytes(of: &be) { Array($0) }
        let mac = HMAC<SHA256>.authenticationCode(for: stepBytes, using: key)
        return Base64URL.encode(stepBytes + Array(mac).prefix(16))
    }
}
