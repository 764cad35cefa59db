/// Warden's error: a code (equality compares it alone), a message a person can act on, and where it was thrown.
/// Messages never carry secrets, tokens or keys.
public struct WardenError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The kind of error.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        fileprivate enum Backing: String, Hashable, Sendable {
            case invalidSPIFFEID = "invalid_spiffe_id"
            case invalidToken = "invalid_token"
            case invalidDPoPProof = "invalid_dpop_proof"
            case useDPoPNonce = "use_dpop_nonce"
            case invalidKey = "invalid_key"
        }
        fileprivate let backing: Backing

        /// A SPIFFE ID that breaks the SPIFFE ID rules.
        public static let invalidSPIFFEID = Code(backing: .invalidSPIFFEID)
        /// A token that is malformed, wrongly signed, expired or otherwise unacceptable (RFC 6750 `invalid_token`).
        public static let invalidToken = Code(backing: .invalidToken)
        /// A DPoP proof that is malformed or does not fit the request (RFC 9449 `invalid_dpop_proof`).
        public static let invalidDPoPProof = Code(backing: .invalidDPoPProof)
        /// The server requires a fresh `DPoP-Nonce` (RFC 9449 `use_dpop_nonce`).
        public static let useDPoPNonce = Code(backing: .useDPoPNonce)
        /// A key that cannot be used (wrong type, curve, or a private key where a public one is expected).
        public static let invalidKey = Code(backing: .invalidKey)

        /// The wire name, as used in `WWW-Authenticate: DPoP error="..."`.
        public var description: String { backing.rawValue }
    }

    public let code: Code
    public let message: String
    public let file: String
    public let line: Int

    public init(_ code: Code, _ message: String, file: String = #fileID, line: Int = #line) {
        self.code = code
        self.message = message
        self.file = file
        self.line = line
    }

    public var description: String { "\(code): \(message)" }
    public static func == (lhs: WardenError, rhs: WardenError) -> Bool { lhs.code == rhs.code }
    public func hash(into hasher: inout Hasher) { hasher.combine(code) }
}
