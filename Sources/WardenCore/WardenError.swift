/// Warden's error: a code (equality compares it alone), a message a person can act on, and where it was thrown.
/// Messages never carry secrets, tokens or keys.
public struct WardenError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The kind of error.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        fileprivate enum Backing: String, Hashable, Sendable {
            case invalidSPIFFEID = "invalid_spiffe_id"
            case invalidToken = "invalid_token"
            case unauthenticated = "unauthenticated"
            case invalidDPoPProof = "invalid_dpop_proof"
            case useDPoPNonce = "use_dpop_nonce"
            case invalidKey = "invalid_key"
            case invalidRequest = "invalid_request"
            case invalidClient = "invalid_client"
            case invalidGrant = "invalid_grant"
            case unauthorizedClient = "unauthorized_client"
            case unsupportedGrantType = "unsupported_grant_type"
            case invalidScope = "invalid_scope"
            case invalidTarget = "invalid_target"
            case accessDenied = "access_denied"
            case attestationFailed = "attestation_failed"
            case invalidManifest = "invalid_manifest"
            case invalidConfig = "invalid_config"
            case notFound = "not_found"
            case conflict = "conflict"
            case storage = "storage_error"
            case io = "io_error"
        }
        fileprivate let backing: Backing

        /// A SPIFFE ID that breaks the SPIFFE ID rules.
        public static let invalidSPIFFEID = Code(backing: .invalidSPIFFEID)
        /// A token that is malformed, wrongly signed, expired or otherwise unacceptable (RFC 6750 `invalid_token`).
        public static let invalidToken = Code(backing: .invalidToken)
        /// A request to a protected endpoint with no credentials at all (RFC 6750 §3.1: challenged without an error).
        public static let unauthenticated = Code(backing: .unauthenticated)
        /// A DPoP proof that is malformed or does not fit the request (RFC 9449 `invalid_dpop_proof`).
        public static let invalidDPoPProof = Code(backing: .invalidDPoPProof)
        /// The server requires a fresh `DPoP-Nonce` (RFC 9449 `use_dpop_nonce`).
        public static let useDPoPNonce = Code(backing: .useDPoPNonce)
        /// A key that cannot be used (wrong type, curve, or a private key where a public one is expected).
        public static let invalidKey = Code(backing: .invalidKey)
        /// A request that is malformed, incomplete or too large (RFC 6749 `invalid_request`).
        public static let invalidRequest = Code(backing: .invalidRequest)
        /// Client authentication failed: unknown agent, bad assertion, wrong key (RFC 6749 `invalid_client`).
        public static let invalidClient = Code(backing: .invalidClient)
        /// A join token or subject token that is invalid, expired, used or revoked (RFC 6749 `invalid_grant`).
        public static let invalidGrant = Code(backing: .invalidGrant)
        /// The client is authenticated but may not get tokens now (its agent is quarantined, say).
        public static let unauthorizedClient = Code(backing: .unauthorizedClient)
        /// A grant type the token endpoint does not support.
        public static let unsupportedGrantType = Code(backing: .unsupportedGrantType)
        /// A requested scope the agent may not have, or that widens a delegated one.
        public static let invalidScope = Code(backing: .invalidScope)
        /// A requested audience the agent may not address (RFC 8693 `invalid_target`).
        public static let invalidTarget = Code(backing: .invalidTarget)
        /// The caller is authenticated but not allowed (quarantined, revoked, not an admin).
        public static let accessDenied = Code(backing: .accessDenied)
        /// Attestation evidence that does not match the registered manifest.
        public static let attestationFailed = Code(backing: .attestationFailed)
        /// An agent manifest that breaks the manifest rules.
        public static let invalidManifest = Code(backing: .invalidManifest)
        /// A configuration file or value that cannot be used.
        public static let invalidConfig = Code(backing: .invalidConfig)
        /// The named agent, token or key does not exist.
        public static let notFound = Code(backing: .notFound)
        /// The change conflicts with the current state (a name in use, a forbidden lifecycle transition).
        public static let conflict = Code(backing: .conflict)
        /// The store could not be read or written; the request is refused (fail closed).
        public static let storage = Code(backing: .storage)
        /// A file could not be read or written.
        public static let io = Code(backing: .io)

        /// The wire name, as used in `WWW-Authenticate: DPoP error="..."`.
        public var description: String { backing.rawValue }
    }

    public let code: Code
    public let message: String
    /// A finer reason code for the audit log and metrics than the wire code (`token_revoked`, `quarantined`,
    /// `policy_denied`, ...); nil when the code says it all. See ``auditReason``.
    public let reason: String?
    public let file: String
    public let line: Int
    /// The SPIFFE ID of the agent whose credentials had verified when the request was refused (a quarantined
    /// agent's genuine token request, a replayed assertion with a valid signature): the refusal is that agent's and
    /// is recorded as such. Nil when the credentials proved nothing. Not part of equality.
    public var agent: String?

    public init(_ code: Code, _ message: String, reason: String? = nil, file: String = #fileID, line: Int = #line) {
        self.code = code
        self.message = message
        self.reason = reason
        self.file = file
        self.line = line
    }

    /// This error, attributed to `agent` (a SPIFFE ID) unless it already names one.
    public func naming(_ agent: String) -> WardenError {
        var e = self
        if e.agent == nil { e.agent = agent }
        return e
    }

    /// The reason code recorded for a refusal: ``reason`` when set, else the wire code.
    public var auditReason: String { reason ?? code.description }

    public var description: String { "\(code): \(message)" }
    public static func == (lhs: WardenError, rhs: WardenError) -> Bool { lhs.code == rhs.code }
    public func hash(into hasher: inout Hasher) { hasher.combine(code) }
}
