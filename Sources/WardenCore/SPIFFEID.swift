/// A SPIFFE ID (`spiffe://trust-domain/path`), validated per the SPIFFE ID specification: lowercase trust domain of
/// `[a-z0-9._-]`, path segments of `[A-Za-z0-9._-]` that are neither empty nor `.` or `..`, no trailing slash, no
/// query, fragment, port or user info, at most 2048 bytes.
public struct SPIFFEID: Hashable, Sendable, CustomStringConvertible, Comparable {
    /// The trust domain, for example `warden.local`.
    public let trustDomain: String
    /// The path, empty or starting with `/`, for example `/agent/support-bot`.
    public let path: String

    /// The longest SPIFFE ID accepted, in bytes.
    public static let maxLength = 2048

    /// Parses and validates a SPIFFE ID.
    public init(parsing text: String) throws(WardenError) {
        guard text.utf8.count <= Self.maxLength else {
            throw WardenError(.invalidSPIFFEID, "a SPIFFE ID is at most \(Self.maxLength) bytes")
        }
        guard text.hasPrefix("spiffe://") else {
            throw WardenError(.invalidSPIFFEID, "a SPIFFE ID starts with spiffe:// (lowercase scheme)")
        }
        let rest = text.utf8.dropFirst(9)
        let slash = rest.firstIndex(of: UInt8(ascii: "/")) ?? rest.endIndex
        let domain = Substring(rest[rest.startIndex..<slash])
        try Self.validateTrustDomain(domain)
        let path = Substring(rest[slash...])
        try Self.validatePath(path)
        self.trustDomain = String(domain)
        self.path = String(path)
    }

    /// Builds `spiffe://<trustDomain>/<segments...>`, validating every part.
    public init(trustDomain: String, segments: [String]) throws(WardenError) {
        try self.init(parsing: "spiffe://\(trustDomain)" + segments.map { "/" + $0 }.joined())
    }

    /// The ID of an agent: `spiffe://<trust-domain>/agent/<name>`.
    public static func agent(_ name: String, trustDomain: String) throws(WardenError) -> SPIFFEID {
        guard !name.contains("/") else {
            throw WardenError(.invalidSPIFFEID, "an agent name is one path segment (no '/')")
        }
        return try SPIFFEID(trustDomain: trustDomain, segments: ["agent", name])
    }

    static func validateTrustDomain(_ d: Substring) throws(WardenError) {
        guard !d.isEmpty else { throw WardenError(.invalidSPIFFEID, "the trust domain is empty") }
        for b in d.utf8 {
            switch b {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "."),
                UInt8(ascii: "-"), UInt8(ascii: "_"):
                continue
            case UInt8(ascii: "A")...UInt8(ascii: "Z"):
                throw WardenError(.invalidSPIFFEID, "the trust domain must be lowercase")
            case UInt8(ascii: ":"):
                throw WardenError(.invalidSPIFFEID, "a SPIFFE ID has no port")
            case UInt8(ascii: "@"):
                throw WardenError(.invalidSPIFFEID, "a SPIFFE ID has no user info")
            default:
                throw WardenError(.invalidSPIFFEID, "the trust domain may hold only a-z, 0-9, '.', '-' and '_'")
            }
        }
    }

    static func validatePath(_ p: Substring) throws(WardenError) {
        guard !p.isEmpty else { return }
        guard p.last != "/" else { throw WardenError(.invalidSPIFFEID, "the path must not end with '/'") }
        for segment in p.dropFirst().split(separator: "/", omittingEmptySubsequences: false) {
            guard !segment.isEmpty else { throw WardenError(.invalidSPIFFEID, "the path has an empty segment") }
            guard segment != "." && segment != ".." else {
                throw WardenError(.invalidSPIFFEID, "the path must not contain '.' or '..' segments")
            }
            for b in segment.utf8 {
                switch b {
                case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                    UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "."), UInt8(ascii: "-"), UInt8(ascii: "_"):
                    continue
                case UInt8(ascii: "?"), UInt8(ascii: "#"):
                    throw WardenError(.invalidSPIFFEID, "a SPIFFE ID has no query or fragment")
                default:
                    throw WardenError(.invalidSPIFFEID, "path segments may hold only A-Z, a-z, 0-9, '.', '-' and '_'")
                }
            }
        }
    }

    public var description: String { "spiffe://\(trustDomain)\(path)" }
    public static func < (lhs: SPIFFEID, rhs: SPIFFEID) -> Bool { lhs.description < rhs.description }
}
