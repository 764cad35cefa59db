/// A Cedar value.
public enum Value: Hashable, Sendable {
    /// A boolean.
    case bool(Bool)
    /// A 64-bit signed integer (Cedar `Long`); arithmetic overflow is an evaluation error.
    case long(Int64)
    /// A string.
    case string(String)
    /// A reference to an entity.
    case entity(EntityUID)
    /// A set of values (no order, no duplicates).
    case set(Set<Value>)
    /// A record: attribute names to values.
    case record([String: Value])
    /// A value of an extension type (ip, decimal, datetime, duration).
    case ext(ExtensionValue)

    /// Cedar equality. Strings compare by code points, as in the reference implementation (Swift's `==` on
    /// `String` would also equate canonically equivalent forms).
    public static func == (lhs: Value, rhs: Value) -> Bool {
        switch (lhs, rhs) {
        case (.bool(let a), .bool(let b)): a == b
        case (.long(let a), .long(let b)): a == b
        case (.string(let a), .string(let b)): CodePoints.equal(a, b)
        case (.entity(let a), .entity(let b)): a == b
        case (.set(let a), .set(let b)): a == b
        case (.record(let a), .record(let b)): a == b
        case (.ext(let a), .ext(let b)): a == b
        default: false
        }
    }

    public func hash(into hasher: inout Hasher) {
        switch self {
        case .bool(let b): hasher.combine(b)
        case .long(let n): hasher.combine(n)
        case .string(let s): hasher.combine(s)
        case .entity(let e): hasher.combine(e)
        case .set(let s): hasher.combine(s)
        case .record(let r): hasher.combine(r)
        case .ext(let e): hasher.combine(e)
        }
    }

    /// The Cedar type of this value, for error messages.
    public var typeName: String {
        switch self {
        case .bool: "Bool"
        case .long: "Long"
        case .string: "String"
        case .entity: "Entity"
        case .set: "Set"
        case .record: "Record"
        case .ext(let e): e.typeName
        }
    }
}

/// A value of one of Cedar's extension types.
public enum ExtensionValue: Hashable, Sendable {
    /// An IPv4 or IPv6 address or range (`ip("10.0.0.0/8")`).
    case ipaddr(IPAddr)
    /// A fixed-point decimal with four fractional digits (`decimal("1.25")`).
    case decimal(CedarDecimal)
    /// An instant, in milliseconds since the Unix epoch (`datetime("2024-01-01")`).
    case datetime(CedarDatetime)
    /// A span of time in milliseconds (`duration("1h30m")`).
    case duration(CedarDuration)

    /// The Cedar extension type name.
    public var typeName: String {
        switch self {
        case .ipaddr: "ipaddr"
        case .decimal: "decimal"
        case .datetime: "datetime"
        case .duration: "duration"
        }
    }
}
