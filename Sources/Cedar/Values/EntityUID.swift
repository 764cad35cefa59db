/// A Cedar entity type name, such as `Agent` or `Acme::Service`: a `::`-separated path of identifiers.
public struct EntityType: Hashable, Sendable, CustomStringConvertible, Comparable {
    /// The fully qualified name, for example `Acme::Service`.
    public let name: String
    /// A seeded hash of the name, computed once (see ``EntityUID``).
    private let fingerprint: Int

    /// Creates an entity type from its fully qualified name. The name is not validated; use
    /// ``EntityType/parse(_:)`` for text that comes from outside.
    public init(_ name: String) {
        self.name = name
        var h = Hasher()
        h.combine(name)
        fingerprint = h.finalize()
    }

    public static func == (lhs: EntityType, rhs: EntityType) -> Bool {
        // Type names are ASCII identifiers (validated wherever they come from outside), so `==` compares bytes.
        lhs.fingerprint == rhs.fingerprint && lhs.name == rhs.name
    }

    public func hash(into hasher: inout Hasher) { hasher.combine(fingerprint) }

    /// Parses and validates a fully qualified type name (identifiers separated by `::`).
    public static func parse(_ text: String) -> EntityType? {
        guard Name.isValidPath(text) else { return nil }
        return EntityType(text)
    }

    /// Whether this is an action type (`Action` or `Namespace::Action`).
    public var isAction: Bool { name == "Action" || name.hasSuffix("::Action") }

    public var description: String { name }
    public static func < (lhs: EntityType, rhs: EntityType) -> Bool { lhs.name < rhs.name }
}

/// A Cedar entity reference: a type and an id, written `Type::"id"`.
public struct EntityUID: Hashable, Sendable, CustomStringConvertible, Comparable {
    /// The entity's type.
    public let type: EntityType
    /// The entity's id (any string).
    public let id: String
    /// A seeded hash of type and id, computed once: entity references are hashed on every `in` check and index
    /// probe, and hashing one integer is much cheaper than hashing two strings. (Swift's per-process seed keeps
    /// collisions unpredictable, so crafted ids cannot degrade the hash tables.)
    private let fingerprint: Int
    /// Whether the id is pure ASCII: then Swift's `==` (a byte comparison for ASCII) is code-point equality.
    private let asciiID: Bool

    /// Creates an entity reference.
    public init(type: EntityType, id: String) {
        self.type = type
        self.id = id
        self.asciiID = id.utf8.allSatisfy { $0 < 0x80 }
        var h = Hasher()
        h.combine(type)
        h.combine(id)
        self.fingerprint = h.finalize()
    }

    /// Creates an entity reference from a type name and an id.
    public init(_ type: String, _ id: String) {
        self.init(type: EntityType(type), id: id)
    }

    public static func == (lhs: EntityUID, rhs: EntityUID) -> Bool {
        // Code-point equality, as in the reference implementation (Swift's `==` on strings would also equate
        // canonically equivalent forms such as a precomposed and a decomposed "é").
        guard lhs.fingerprint == rhs.fingerprint, lhs.type == rhs.type else { return false }
        return lhs.asciiID && rhs.asciiID ? lhs.id == rhs.id : CodePoints.equal(lhs.id, rhs.id)
    }

    public func hash(into hasher: inout Hasher) { hasher.combine(fingerprint) }

    /// The Cedar source form, `Type::"id"` with the id escaped.
    public var description: String { "\(type.name)::\(CedarString.quote(id))" }

    public static func < (lhs: EntityUID, rhs: EntityUID) -> Bool {
        lhs.type.name != rhs.type.name ? lhs.type.name < rhs.type.name : lhs.id < rhs.id
    }
}

/// Helpers for Cedar names (identifiers and `::` paths).
enum Name {
    /// Words that can never be identifiers.
    static let reserved: Set<String> = ["true", "false", "if", "then", "else", "in", "is", "like", "has", "__cedar"]

    static func isIdentifierStart(_ c: UInt8) -> Bool {
        (c >= 0x61 && c <= 0x7A) || (c >= 0x41 && c <= 0x5A) || c == 0x5F
    }

    static func isIdentifierContinue(_ c: UInt8) -> Bool {
        isIdentifierStart(c) || (c >= 0x30 && c <= 0x39)
    }

    static func isValidIdentifier<S: StringProtocol>(_ s: S) -> Bool {
        let bytes = Array(s.utf8)
        guard let first = bytes.first, isIdentifierStart(first) else { return false }
        return bytes.allSatisfy(isIdentifierContinue)
    }

    /// Whether `text` is a valid entity-type path such as `A::B::C` (whitespace is not allowed here).
    static func isValidPath(_ text: String) -> Bool {
        let parts = text.split(separator: "::", omittingEmptySubsequences: false)
        return parts.allSatisfy { isValidIdentifier($0) && !reserved.contains(String($0)) }
    }
}

/// Code-point (UTF-8 byte) equality of strings, which is Cedar's. Swift's `==` on `String` also equates canonically
/// equivalent forms (a precomposed and a decomposed "é"), which the reference implementation does not.
enum CodePoints {
    @inline(__always)
    static func equal(_ a: String, _ b: String) -> Bool {
        guard a.utf8.count == b.utf8.count else { return false }
        if let r = a.utf8.withContiguousStorageIfAvailable({ pa in
            b.utf8.withContiguousStorageIfAvailable { pb in bytesEqual(pa, pb) }
        }), let r {
            return r
        }
        return a.utf8.elementsEqual(b.utf8)
    }

    /// Compares two equally long byte buffers eight bytes at a time.
    @inline(__always)
    static func bytesEqual(_ a: UnsafeBufferPointer<UInt8>, _ b: UnsafeBufferPointer<UInt8>) -> Bool {
        let n = a.count
        guard n == b.count else { return false }
        guard n > 0, let ra = a.baseAddress, let rb = b.baseAddress else { return true }
        let pa = UnsafeRawPointer(ra)
        let pb = UnsafeRawPointer(rb)
        var i = 0
        while i + 8 <= n {
            if pa.loadUnaligned(fromByteOffset: i, as: UInt64.self)
                != pb.loadUnaligned(fromByteOffset: i, as: UInt64.self)
            {
                return false
            }
            i += 8
        }
        while i < n {
            if ra[i] != rb[i] { return false }
            i += 1
        }
        return true
    }
}
