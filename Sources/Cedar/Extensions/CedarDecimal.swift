/// A value of Cedar's `decimal` extension type: a signed fixed-point number with four fractional digits,
/// stored as the 64-bit integer `value * 10_000` (so the range is -922337203685477.5808 to
/// 922337203685477.5807).
///
/// Semantics follow cedar-policy-core 4.12 (`src/extensions/decimal.rs`): the text must match
/// `-?[0-9]+\.[0-9]+` exactly (no `+`, no exponent, no whitespace, at least one digit on each side of
/// the point), with at most four digits after the point (`"0.00000"` is rejected even though the extra
/// digit is zero). Leading zeros are allowed (`"007.5"`), and `"-0.5"` is negative.
public struct CedarDecimal: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// The value multiplied by 10,000.
    public let raw: Int64

    /// Digits after the decimal point that Cedar keeps.
    static let fractionDigits = 4
    static let scale: Int64 = 10_000

    /// Creates a decimal from its raw representation (`value * 10_000`).
    public init(raw: Int64) {
        self.raw = raw
    }

    /// Parses Cedar decimal text such as `"1.25"` or `"-0.0001"`. Returns `nil` for anything Cedar's
    /// `decimal()` constructor rejects, including values that overflow. Never traps; runs in time
    /// linear in the input.
    public static func parse(_ text: String) -> CedarDecimal? {
        var text = text
        return text.withUTF8 { parse(bytes: $0) }
    }

    static func parse(bytes b: UnsafeBufferPointer<UInt8>) -> CedarDecimal? {
        var i = 0
        let negative = b.count > 0 && b[0] == UInt8(ascii: "-")
        if negative { i = 1 }

        // Integer part, parsed like Rust's `i64::from_str` (arbitrarily many leading zeros are fine).
        let integerStart = i
        var integer: Int64 = 0
        while i < b.count, let d = digit(b[i]) {
            let (shifted, o1) = integer.multipliedReportingOverflow(by: 10)
            let (next, o2) =
                negative ? shifted.subtractingReportingOverflow(d) : shifted.addingReportingOverflow(d)
            guard !o1, !o2 else { return nil }
            integer = next
            i += 1
        }
        guard i > integerStart, i < b.count, b[i] == UInt8(ascii: ".") else { return nil }
        i += 1

        // Fraction part: one to four digits.
        let fractionStart = i
        var fraction: Int64 = 0
        while i < b.count, let d = digit(b[i]) {
            guard i - fractionStart < fractionDigits else { return nil }
            fraction = fraction * 10 + d
            i += 1
        }
        let fractionLength = i - fractionStart
        guard fractionLength > 0, i == b.count else { return nil }
        for _ in fractionLength..<fractionDigits { fraction *= 10 }

        let (scaled, o1) = integer.multipliedReportingOverflow(by: scale)
        guard !o1 else { return nil }
        let (value, o2) =
            negative ? scaled.subtractingReportingOverflow(fraction) : scaled.addingReportingOverflow(fraction)
        guard !o2 else { return nil }
        return CedarDecimal(raw: value)
    }

    private static func digit(_ c: UInt8) -> Int64? {
        c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9") ? Int64(c - UInt8(ascii: "0")) : nil
    }

    /// Orders by numeric value (`lessThan`, `greaterThan`, ... in Cedar).
    public static func < (lhs: CedarDecimal, rhs: CedarDecimal) -> Bool {
        lhs.raw < rhs.raw
    }

    /// Canonical text that `parse` accepts back: the integer part, a point, then the fraction without
    /// trailing zeros but with at least one digit (`1.05`, `-0.5`, `12.0`).
    public var description: String {
        let magnitude = raw.magnitude
        let integer = magnitude / UInt64(Self.scale)
        var fraction = magnitude % UInt64(Self.scale)
        var digits = Self.fractionDigits
        while digits > 1 && fraction % 10 == 0 {
            fraction /= 10
            digits -= 1
        }
        var fractionText = String(fraction)
        while fractionText.utf8.count < digits { fractionText = "0" + fractionText }
        return (raw < 0 ? "-" : "") + String(integer) + "." + fractionText
    }
}
