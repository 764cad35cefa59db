/// A value of Cedar's `duration` extension type: a signed span of time in milliseconds.
///
/// Semantics follow cedar-policy-core 4.12 (`src/extensions/datetime.rs`, `parse_duration` and the
/// `to*` methods): the text is an optional leading `-` followed by one or more quantity–unit pairs in the
/// order `d`, `h`, `m`, `s`, `ms`, each unit at most once (`"1d2h3m4s5ms"`, `"-90m"`). The sign applies
/// to the whole duration. A value that does not fit in a signed 64-bit count of milliseconds is rejected.
public struct CedarDuration: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// The length of the duration in milliseconds.
    public let milliseconds: Int64

    /// Creates a duration from a number of milliseconds.
    public init(milliseconds: Int64) {
        self.milliseconds = milliseconds
    }

    static let millisecondsPerSecond: Int64 = 1_000
    static let millisecondsPerMinute: Int64 = 60_000
    static let millisecondsPerHour: Int64 = 3_600_000
    static let millisecondsPerDay: Int64 = 86_400_000

    /// Parses Cedar duration text such as `"1h30m"` or `"-5d3ms"`. Returns `nil` for anything Cedar's
    /// `duration()` constructor rejects, including overflow. Never traps; runs in time linear in the input.
    public static func parse(_ text: String) -> CedarDuration? {
        var text = text
        return text.withUTF8 { parse(bytes: $0) }
    }

    static func parse(bytes b: UnsafeBufferPointer<UInt8>) -> CedarDuration? {
        // The pattern is ^-?((\d+)d)?((\d+)h)?((\d+)m)?((\d+)s)?((\d+)ms)?$ ; "" and "-" are rejected
        // explicitly because the pattern would match them.
        let negative = b.count > 0 && b[0] == UInt8(ascii: "-")
        var i = negative ? 1 : 0
        guard i < b.count else { return nil }

        // Quantities by unit index: 0 = d, 1 = h, 2 = m, 3 = s, 4 = ms. Parsed as u64 like Rust
        // (any number of leading zeros; more than u64 can hold is an overflow error).
        var quantities: (UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0)
        var nextUnit = 0
        while i < b.count {
            let start = i
            var quantity: UInt64 = 0
            var overflow = false
            while i < b.count, b[i] >= UInt8(ascii: "0"), b[i] <= UInt8(ascii: "9") {
                let (shifted, o1) = quantity.multipliedReportingOverflow(by: 10)
                let (next, o2) = shifted.addingReportingOverflow(UInt64(b[i] - UInt8(ascii: "0")))
                overflow = overflow || o1 || o2
                quantity = next
                i += 1
            }
            guard i > start, i < b.count else { return nil }
            let unit: Int
            switch b[i] {
            case UInt8(ascii: "d"): unit = 0
            case UInt8(ascii: "h"): unit = 1
            case UInt8(ascii: "m"):
                if i + 1 < b.count && b[i + 1] == UInt8(ascii: "s") {
                    unit = 4
                    i += 1
                } else {
                    unit = 2
                }
            case UInt8(ascii: "s"): unit = 3
            default: return nil
            }
            i += 1
            guard unit >= nextUnit else { return nil }
            nextUnit = unit + 1
            // The pattern matched; Rust now reports an unparsable (too large) number as an overflow.
            guard !overflow else { return nil }
            switch unit {
            case 0: quantities.0 = quantity
            case 1: quantities.1 = quantity
            case 2: quantities.2 = quantity
            case 3: quantities.3 = quantity
            default: quantities.4 = quantity
            }
        }

        // Same order and checks as Rust: milliseconds first (negated through i128), then seconds, minutes,
        // hours, days, each converted to i64, multiplied and added or subtracted with overflow checks.
        var total: Int64
        if negative {
            guard quantities.4 <= UInt64(Int64.max) + 1 else { return nil }
            total = quantities.4 == UInt64(Int64.max) + 1 ? Int64.min : -Int64(quantities.4)
        } else {
            guard quantities.4 <= UInt64(Int64.max) else { return nil }
            total = Int64(quantities.4)
        }
        func add(_ quantity: UInt64, _ factor: Int64) -> Bool {
            guard quantity <= UInt64(Int64.max) else { return false }
            let (product, o1) = Int64(quantity).multipliedReportingOverflow(by: factor)
            guard !o1 else { return false }
            let (next, o2) =
                negative ? total.subtractingReportingOverflow(product) : total.addingReportingOverflow(product)
            guard !o2 else { return false }
            total = next
            return true
        }
        guard add(quantities.3, millisecondsPerSecond), add(quantities.2, millisecondsPerMinute),
            add(quantities.1, millisecondsPerHour), add(quantities.0, millisecondsPerDay)
        else { return nil }
        return CedarDuration(milliseconds: total)
    }

    /// `toMilliseconds`.
    public var toMilliseconds: Int64 { milliseconds }
    /// `toSeconds`: whole seconds, truncated toward zero.
    public var toSeconds: Int64 { toMilliseconds / 1000 }
    /// `toMinutes`: whole minutes, truncated toward zero.
    public var toMinutes: Int64 { toSeconds / 60 }
    /// `toHours`: whole hours, truncated toward zero.
    public var toHours: Int64 { toMinutes / 60 }
    /// `toDays`: whole days, truncated toward zero.
    public var toDays: Int64 { toHours / 24 }

    /// Orders by length, negative durations first.
    public static func < (lhs: CedarDuration, rhs: CedarDuration) -> Bool {
        lhs.milliseconds < rhs.milliseconds
    }

    /// The text Rust prints, which `parse` accepts back: the number of milliseconds followed by `ms`
    /// (`"5400000ms"`, `"-1ms"`).
    public var description: String {
        String(milliseconds) + "ms"
    }
}
