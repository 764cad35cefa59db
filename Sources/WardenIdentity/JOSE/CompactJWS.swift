import Cedar
import Crypto
import Foundation
import WardenCore

/// A JWS in compact serialization (RFC 7515) with its decoded JSON header and payload. Parsing checks shape and
/// size only; ``verifyES256(with:)`` checks the signature.
public struct CompactJWS: Sendable {
    /// The largest compact JWS accepted, in bytes (tokens and proofs are far smaller).
    public static let maxLength = 8192

    public let header: JSONValue
    public let payload: JSONValue
    /// The bytes that were signed: ASCII(BASE64URL(header) || '.' || BASE64URL(payload)).
    public let signingInput: [UInt8]
    public let signature: [UInt8]

    /// Splits and decodes a compact JWS. `what` names it in errors ("access token", "DPoP proof").
    public init(_ text: String, what: String, code: WardenError.Code) throws(WardenError) {
        let (h64, p64, s64) = try Self.segments(text, what: what, code: code)
        guard let h = Base64URL.decode(h64), let p = Base64URL.decode(p64), let s = Base64URL.decode(s64) else {
            throw WardenError(code, "the \(what) is not valid base64url")
        }
        header = try Self.object(h, "header", what: what, code: code)
        payload = try Self.object(p, "payload", what: what, code: code)
        signingInput = Array(text.utf8[h64.startIndex..<p64.endIndex])
        signature = s
        try Self.checkCritical(header, what: what, code: code)
    }

    /// The three base64url segments of a compact JWS no larger than ``maxLength`` (not decoded).
    public static func segments(_ text: String, what: String, code: WardenError.Code) throws(WardenError) -> (
        header: Substring, payload: Substring, signature: Substring
    ) {
        guard !text.isEmpty else { throw WardenError(code, "the \(what) is empty") }
        guard text.utf8.count <= Self.maxLength else {
            throw WardenError(code, "the \(what) is larger than \(Self.maxLength) bytes")
        }
        let parts = text.utf8.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
        guard parts.count == 3 else { throw WardenError(code, "the \(what) is not a compact JWS (three parts)") }
        return (Substring(parts[0]), Substring(parts[1]), Substring(parts[2]))
    }

    /// A decoded segment as a JSON object (at most 16 levels deep).
    public static func object(_ bytes: [UInt8], _ part: String, what: String, code: WardenError.Code)
        throws(WardenError) -> JSONValue
    {
        guard let v = try? JSONValue.parse(bytes, maxDepth: 16), case .object = v else {
            throw WardenError(code, "the \(what) \(part) is not a JSON object")
        }
        return v
    }

    /// Critical extensions we do not understand must be refused (RFC 7515 §4.1.11); we understand none.
    public static func checkCritical(_ header: JSONValue, what: String, code: WardenError.Code) throws(WardenError) {
        guard header["crit"] == nil else { throw WardenError(code, "the \(what) has unsupported critical headers") }
    }

    /// The header's `alg`, if a string.
    public var algorithm: String? {
        if case .string(let a)? = header["alg"] { return a }
        return nil
    }

    /// Checks an ES256 signature (64-byte r||s) with `key`. Any other `alg` is refused first, so `none`, HMAC
    /// confusion and algorithm substitution cannot pass.
    public func verifyES256(with key: P256.Signing.PublicKey, code: WardenError.Code, what: String) throws(WardenError)
    {
        guard algorithm == "ES256" else {
            throw WardenError(code, "the \(what) must be signed with ES256")
        }
        try Self.verifyES256(signature, over: signingInput, with: key, code: code, what: what)
    }

    /// Checks a raw ES256 signature (64-byte r||s) over `input` with `key`.
    public static func verifyES256<Input: DataProtocol>(
        _ signature: [UInt8], over input: Input, with key: P256.Signing.PublicKey, code: WardenError.Code,
        what: String
    ) throws(WardenError) {
        guard signature.count == 64, let sig = try? P256.Signing.ECDSASignature(rawRepresentation: signature),
            key.isValidSignature(sig, for: input)
        else {
            throw WardenError(code, "the \(what) signature does not verify")
        }
    }

    /// Signs header and payload with ES256 and returns the compact serialization.
    public static func signES256(header: JSONValue, payload: JSONValue, key: P256.Signing.PrivateKey) throws -> String {
        let input =
            Base64URL.encode(Array(header.serialized.utf8)) + "." + Base64URL.encode(Array(payload.serialized.utf8))
        let signature = try key.signature(for: Array(input.utf8))
        return input + "." + Base64URL.encode(signature.rawRepresentation)
    }
}

extension JSONValue {
    /// The integer value of a JSON number (NumericDate claims allow fractions; they are truncated).
    public var integerValue: Int64? {
        guard case .number(let n) = self else { return nil }
        if let i = Int64(n) { return i }
        if let d = Double(n), d.isFinite, d > -9.0e15, d < 9.0e15 { return Int64(d) }
        return nil
    }

    public var stringValue: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    public var arrayValue: [JSONValue]? {
        if case .array(let a) = self { return a }
        return nil
    }
}
