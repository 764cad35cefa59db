/// A string escape error.
struct EscapeError: Error {
    let message: String
    init(_ message: String) { self.message = message }
}

/// Cedar string literal escaping and unescaping.
enum CedarString {
    /// Quotes a string as a Cedar literal, escaping what must be escaped.
    static func quote(_ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars { out += escape(scalar) }
        return out + "\""
    }

    /// One Unicode scalar as it appears inside a Cedar string literal (escaped where needed). Works scalar by
    /// scalar, so a combining mark is never merged with a neighbouring quote or backslash.
    static func escape(_ scalar: Unicode.Scalar) -> String {
        switch scalar {
        case "\"": return "\\\""
        case "\\": return "\\\\"
        case "\n": return "\\n"
        case "\r": return "\\r"
        case "\t": return "\\t"
        case "\0": return "\\0"
        default:
            if scalar.value < 0x20 || scalar.value == 0x7F || scalar.properties.generalCategory == .nonspacingMark
                || scalar.properties.generalCategory == .spacingMark
                || scalar.properties.generalCategory == .enclosingMark
                || scalar.properties.generalCategory == .format
            {
                return "\\u{" + String(scalar.value, radix: 16) + "}"
            }
            return String(scalar)
        }
    }

    /// One element of a `like` pattern.
    enum PatternPiece: Equatable {
        case scalar(Unicode.Scalar)
        case wildcard
    }

    /// Unescapes the body of a string literal (without its quotes). With `pattern`, `\*` is a literal star
    /// and a bare `*` is a wildcard. Returns the error message on an invalid escape.
    static func unescape(_ body: Substring.UnicodeScalarView, pattern: Bool) -> Result<[PatternPiece], EscapeError> {
        var out: [PatternPiece] = []
        var it = body.makeIterator()
        while let c = it.next() {
            if c == "*" && pattern {
                out.append(.wildcard)
                continue
            }
            guard c == "\\" else {
                out.append(.scalar(c))
                continue
            }
            guard let e = it.next() else { return .failure(EscapeError("the string ends with a lone backslash")) }
            switch e {
            case "n": out.append(.scalar("\n"))
            case "r": out.append(.scalar("\r"))
            case "t": out.append(.scalar("\t"))
            case "\\": out.append(.scalar("\\"))
            case "0": out.append(.scalar("\0"))
            case "'": out.append(.scalar("'"))
            case "\"": out.append(.scalar("\""))
            case "*" where pattern: out.append(.scalar("*"))
            case "x":
                guard let h1 = it.next(), let d1 = hexValue(h1), let h2 = it.next(), let d2 = hexValue(h2),
                    d1 * 16 + d2 <= 0x7F
                else {
                    return .failure(EscapeError("a \\x escape needs two hex digits for a value up to 7f"))
                }
                out.append(.scalar(Unicode.Scalar(UInt8(d1 * 16 + d2))))
            case "u":
                guard it.next() == "{" else {
                    return .failure(EscapeError("a \\u escape must have the form \\u{XXXX}"))
                }
                var value: UInt32 = 0
                var digits = 0
                var closed = false
                while let h = it.next() {
                    if h == "}" {
                        closed = true
                        break
                    }
                    guard let d = hexValue(h) else {
                        return .failure(EscapeError("invalid hex digit '\(h)' in a \\u{...} escape"))
                    }
                    digits += 1
                    guard digits <= 6 else {
                        return .failure(EscapeError("a \\u{...} escape has at most 6 hex digits"))
                    }
                    value = value * 16 + d
                }
                guard closed, digits > 0 else {
                    return .failure(EscapeError("a \\u escape must have the form \\u{XXXX}"))
                }
                guard let scalar = Unicode.Scalar(value) else {
                    return .failure(EscapeError("\\u{\(String(value, radix: 16))} is not a Unicode scalar value"))
                }
                out.append(.scalar(scalar))
            default:
                return .failure(EscapeError("unknown escape sequence '\\\(e)'"))
            }
        }
        return .success(out)
    }

    private static func hexValue(_ s: Unicode.Scalar) -> UInt32? {
        switch s.value {
        case 0x30...0x39: return s.value - 0x30
        case 0x41...0x46: return s.value - 0x41 + 10
        case 0x61...0x66: return s.value - 0x61 + 10
        default: return nil
        }
    }

    /// Unescapes a plain string literal body.
    static func unescapeString(_ body: Substring) -> Result<String, EscapeError> {
        switch unescape(body.unicodeScalars, pattern: false) {
        case .failure(let m): return .failure(m)
        case .success(let pieces):
            var s = String.UnicodeScalarView()
            for case .scalar(let c) in pieces { s.append(c) }
            return .success(String(s))
        }
    }
}
