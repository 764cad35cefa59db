import Cedar

/// The exact value of a JSON number and its one canonical spelling, computed on the text's decimal digits and never
/// through `Double`: `1`, `1.0`, `1e0`, `10e-1`, `0.1e1`, `1E+0` and `100e-2` are one number, spelled `1`; `-0` is
/// `0`. A policy and the JSON Schema check decide on this value, and the upstream receives this spelling, so a
/// number cannot mean one thing to Warden and another to the server.
///
/// The canonical spelling: `0` for zero; an integer (`-12`, `100000000000000000000`) when the value is integral and
/// below 10²¹; a plain decimal (`0.5`, `-12.25`, `0.0000001`) when it has a fractional part and its first
/// significant digit is at 10⁻⁷ or above; else scientific with one digit before the point, a lowercase `e` and no
/// `+` (`1.5e21`, `-2e-8`). Cedar sees an integral value within Int64 as a `Long`, any other number (a fraction, or
/// an integer beyond Int64) as the `String` of its canonical spelling.
///
/// Bounded: an exponent with more than ``maxExponentDigits`` significant digits is out of range (nil), and the
/// spelling never expands an exponent into zeros beyond 21 places, so `1e999999999` costs what its text costs.
package struct JSONNumber: Hashable, Sendable, Comparable {
    /// Negative (never for zero).
    let negative: Bool
    /// The significant digits (each 0…9): no leading or trailing zeros; empty for zero.
    let digits: [UInt8]
    /// The value is ±`digits` × 10^`exponent` (0 for zero).
    let exponent: Int

    /// Significant digits an exponent may have (beyond it the number is out of range).
    package static let maxExponentDigits = 15

    /// Reads RFC 8259 number text (`-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`); nil for anything else
    /// or an exponent out of range.
    package init?(_ text: String) {
        let b = Array(text.utf8)
        var i = 0
        func isDigit(_ j: Int) -> Bool { j < b.count && b[j] >= 0x30 && b[j] <= 0x39 }
        let negative = b.first == 0x2D
        if negative { i += 1 }
        guard isDigit(i) else { return nil }
        var mantissa: [UInt8] = []
        if b[i] == 0x30 {
            i += 1
        } else {
            while isDigit(i) {
                mantissa.append(b[i] - 0x30)
                i += 1
            }
        }
        var fraction = 0
        if i < b.count, b[i] == 0x2E {
            i += 1
            guard isDigit(i) else { return nil }
            while isDigit(i) {
                mantissa.append(b[i] - 0x30)
                fraction += 1
                i += 1
            }
        }
        var written = 0
        if i < b.count, b[i] == 0x65 || b[i] == 0x45 {
            i += 1
            var sign = 1
            if i < b.count, b[i] == 0x2B || b[i] == 0x2D {
                sign = b[i] == 0x2D ? -1 : 1
                i += 1
            }
            guard isDigit(i) else { return nil }
            var significant = 0
            while isDigit(i) {
                if written > 0 || b[i] != 0x30 { significant += 1 }
                guard significant <= Self.maxExponentDigits else { return nil }
                written = written * 10 + Int(b[i] - 0x30)
                i += 1
            }
            written *= sign
        }
        guard i == b.count else { return nil }
        guard let first = mantissa.firstIndex(where: { $0 != 0 }), let last = mantissa.lastIndex(where: { $0 != 0 })
        else {
            self = .zero
            return
        }
        self.init(
            negative: negative, digits: Array(mantissa[first...last]),
            exponent: written - fraction + (mantissa.count - 1 - last))
    }

    private init(negative: Bool, digits: [UInt8], exponent: Int) {
        self.negative = negative
        self.digits = digits
        self.exponent = exponent
    }

    static let zero = JSONNumber(negative: false, digits: [], exponent: 0)

    var isZero: Bool { digits.isEmpty }

    /// An integer (no fractional part), whatever its size.
    var isIntegral: Bool { exponent >= 0 }

    /// The value when it is an integer in Int64.
    var int64: Int64? {
        guard isIntegral, digits.count + exponent <= 19 else { return nil }
        var magnitude: UInt64 = 0
        for d in digits + [UInt8](repeating: 0, count: exponent) {
            let (times10, o1) = magnitude.multipliedReportingOverflow(by: 10)
            let (sum, o2) = times10.addingReportingOverflow(UInt64(d))
            guard !o1, !o2 else { return nil }
            magnitude = sum
        }
        if negative { return magnitude <= UInt64(Int64.max) + 1 ? Int64(truncatingIfNeeded: 0 &- magnitude) : nil }
        return magnitude <= UInt64(Int64.max) ? Int64(magnitude) : nil
    }

    /// The canonical spelling (see the type's documentation).
    var text: String {
        guard !digits.isEmpty else { return "0" }
        var out: [UInt8] = negative ? [0x2D] : []
        let ascii = digits.map { $0 + 0x30 }
        // The exponent of the first significant digit.
        let adjusted = exponent + digits.count - 1
        if exponent >= 0, adjusted < 21 {
            out += ascii
            out += [UInt8](repeating: 0x30, count: exponent)
        } else if exponent < 0, adjusted >= -7 {
            if adjusted >= 0 {
                out += ascii[...adjusted]
                out.append(0x2E)
                out += ascii[(adjusted + 1)...]
            } else {
                out += [0x30, 0x2E]
                out += [UInt8](repeating: 0x30, count: -adjusted - 1)
                out += ascii
            }
        } else {
            out.append(ascii[0])
            if ascii.count > 1 {
                out.append(0x2E)
                out += ascii[1...]
            }
            out.append(0x65)
            out += Array(String(adjusted).utf8)
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The value as Cedar sees it: a `Long` when integral within Int64, else the canonical spelling as a `String`.
    package var cedar: Value { int64.map(Value.long) ?? .string(text) }

    package static func < (a: JSONNumber, b: JSONNumber) -> Bool {
        let sa = a.isZero ? 0 : a.negative ? -1 : 1
        let sb = b.isZero ? 0 : b.negative ? -1 : 1
        guard sa == sb else { return sa < sb }
        guard sa != 0 else { return false }
        let smaller = magnitudeLess(a, b)
        return sa > 0 ? smaller : magnitudeLess(b, a)
    }

    /// |a| < |b| for non-zero values.
    private static func magnitudeLess(_ a: JSONNumber, _ b: JSONNumber) -> Bool {
        let ea = a.exponent + a.digits.count
        let eb = b.exponent + b.digits.count
        guard ea == eb else { return ea < eb }
        return a.digits.lexicographicallyPrecedes(b.digits)
    }

    /// Whether this is an integer multiple of `m` (> 0), exactly; nil when `m` has more than 18 significant digits
    /// (the check is not made).
    func isMultiple(of m: JSONNumber) -> Bool? {
        guard !m.isZero, m.digits.count <= 18 else { return nil }
        if isZero { return true }
        // self / m = digits × 10^k / m.digits; with k < 0 it would need self's last digit to be 0.
        let k = exponent - m.exponent
        guard k >= 0 else { return false }
        let divisor = m.digits.reduce(UInt64(0)) { $0 * 10 + UInt64($1) }
        var r: UInt64 = 0
        for d in digits { r = (r * 10 + UInt64(d)) % divisor }
        // r × 10^k mod divisor, by squaring.
        func mulmod(_ x: UInt64, _ y: UInt64) -> UInt64 {
            let p = x.multipliedFullWidth(by: y)
            return divisor.dividingFullWidth((p.high, p.low)).remainder
        }
        var base: UInt64 = 10 % divisor
        var e = k
        while e > 0, r != 0 {
            if e & 1 == 1 { r = mulmod(r, base) }
            base = mulmod(base, base)
            e >>= 1
        }
        return r == 0
    }

    /// `value` with every number in its canonical spelling; nil when a number is out of range or the value is
    /// nested deeper than `maxDepth`.
    package static func canonicalizing(_ value: JSONValue, maxDepth: Int = 128) -> JSONValue? {
        guard maxDepth >= 0 else { return nil }
        switch value {
        case .number(let text):
            return JSONNumber(text).map { .number($0.text) }
        case .array(let items):
            var out: [JSONValue] = []
            out.reserveCapacity(items.count)
            for item in items {
                guard let c = canonicalizing(item, maxDepth: maxDepth - 1) else { return nil }
                out.append(c)
            }
            return .array(out)
        case .object(let pairs):
            var out: [(String, JSONValue)] = []
            out.reserveCapacity(pairs.count)
            for (k, item) in pairs {
                guard let c = canonicalizing(item, maxDepth: maxDepth - 1) else { return nil }
                out.append((k, c))
            }
            return .object(out)
        case .null, .bool, .string:
            return value
        }
    }
}
