/// An error from the Cedar module: a parse error, an evaluation error, or bad JSON input.
///
/// Equality compares the code only, so tests can match on the kind of failure.
public struct CedarError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The kind of error.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        fileprivate enum Backing: Hashable, Sendable {
            case parse, evaluation, json, entities, request, link, policySet, schema
        }
        fileprivate let backing: Backing

        /// Cedar policy text that does not parse.
        public static let parse = Code(backing: .parse)
        /// A runtime error while evaluating an expression (type error, overflow, missing attribute...).
        public static let evaluation = Code(backing: .evaluation)
        /// Malformed JSON, or JSON that is not of the expected shape.
        public static let json = Code(backing: .json)
        /// An invalid entity or entity set.
        public static let entities = Code(backing: .entities)
        /// An invalid authorization request.
        public static let request = Code(backing: .request)
        /// A template link that does not fit its template.
        public static let link = Code(backing: .link)
        /// An invalid policy set (for example duplicate ids).
        public static let policySet = Code(backing: .policySet)
        /// A Cedar schema that does not parse or does not hold together (an undeclared type, a cycle).
        public static let schema = Code(backing: .schema)

        public var description: String { String(describing: backing) }
    }

    /// The kind of error.
    public let code: Code
    /// A message a person can act on.
    public let message: String
    /// Where in the source text the error is (1-based), when it comes from text.
    public let location: TextLocation?

    /// Creates an error.
    public init(_ code: Code, _ message: String, at location: TextLocation? = nil) {
        self.code = code
        self.message = message
        self.location = location
    }

    public var description: String {
        if let location { return "\(location): \(message)" }
        return message
    }

    public static func == (lhs: CedarError, rhs: CedarError) -> Bool { lhs.code == rhs.code }
    public func hash(into hasher: inout Hasher) { hasher.combine(code) }
}

/// A position in source text: 1-based line and column (columns count Unicode scalars).
public struct TextLocation: Hashable, Sendable, CustomStringConvertible {
    /// 1-based line.
    public let line: Int
    /// 1-based column.
    public let column: Int
    /// Byte offset in the UTF-8 source.
    public let offset: Int

    public init(line: Int, column: Int, offset: Int) {
        self.line = line
        self.column = column
        self.offset = offset
    }

    public var description: String { "line \(line), column \(column)" }
}
