import Foundation
import WardenCore

/// The one canonical form of a request's path under a route, which Cedar decides on, the audit log records and the
/// upstream receives, byte for byte (`docs/configuration.md`, "Request paths").
///
/// Rules, applied to the path after `/r/<route>`:
/// - only the characters RFC 3986 allows in a path (`pchar` and `/`) may appear raw; anything else is refused;
/// - every `%` starts a two-hex-digit escape, and the decoded bytes must be valid UTF-8 (no overlong forms, no
///   truncated sequences, no `%ff`); an encoded `/` or `\`, a NUL or any other control character is refused;
/// - `;` (path parameters) is refused, raw or encoded, so that `;/admin` cannot hide a segment from a policy; so is
///   an encoded `%` (`%25`), which an upstream that decodes twice would read as another escape;
/// - `.` and `..` segments, raw or encoded, are refused; empty segments (`//`) are collapsed;
/// - the result is re-encoded one way: unreserved characters, sub-delimiters (but `;`), `:` and `@` raw, every other
///   byte as `%XX` with upper-case hex. So `%61dmin`, `//admin` and `/admin` are all `/admin`.
///
/// The query is kept as sent, but must use valid escapes and the characters RFC 3986 allows in a query.
public enum RequestTarget {
    /// Why a target is refused (the message is safe to show: it never echoes the path).
    public struct Invalid: Error, Sendable, Equatable {
        public let message: String

        package init(message: String) { self.message = message }
    }

    /// The canonical form of `rest` (the path after `/r/<route>`; empty means `/`).
    public static func canonicalPath(_ rest: Substring) throws(Invalid) -> String {
        var decoded: [UInt8] = []
        decoded.reserveCapacity(rest.utf8.count)
        // Decode escapes, checking the raw characters and the escape syntax.
        let raw = Array(rest.utf8)
        var i = 0
        while i < raw.count {
            let c = raw[i]
            if c == UInt8(ascii: "%") {
                guard i + 2 < raw.count, let h = hexValue(raw[i + 1]), let l = hexValue(raw[i + 2]) else {
                    throw Invalid(message: "the path has a malformed percent-escape")
                }
                let b = h << 4 | l
                if b == UInt8(ascii: "/") { throw Invalid(message: "the path has encoded slashes") }
                decoded.append(b)
                i += 3
                continue
            }
            guard isPathChar(c) || c == UInt8(ascii: "/") else {
                throw Invalid(message: "the path has characters that must be percent-encoded")
            }
            decoded.append(c)
            i += 1
        }
        // The decoded path is UTF-8 text without controls, backslashes or path parameters.
        guard String(validating: decoded, as: UTF8.self) != nil else {
            throw Invalid(message: "the path is not valid UTF-8 once decoded")
        }
        for b in decoded {
            if b < 0x20 || b == 0x7F { throw Invalid(message: "the path has control characters") }
            if b == UInt8(ascii: "\\") { throw Invalid(message: "the path has backslashes") }
            if b == UInt8(ascii: ";") { throw Invalid(message: "path parameters (';') are not allowed") }
            // An encoded `%` would be decoded again by an upstream or proxy that decodes twice (`%2561` → `a`).
            if b == UInt8(ascii: "%") { throw Invalid(message: "the path has an encoded '%'") }
        }
        // Segments: empty ones collapsed, dot segments refused; then re-encoded one way.
        var out: [UInt8] = []
        out.reserveCapacity(decoded.count + 8)
        var segmentStart = 0
        var j = 0
        while j <= decoded.count {
            if j == decoded.count || decoded[j] == UInt8(ascii: "/") {
                let segment = decoded[segmentStart..<j]
                if !segment.isEmpty {
                    if segment.elementsEqual([UInt8(ascii: ".")]) || segment.elementsEqual([0x2E, 0x2E]) {
                        throw Invalid(message: "the path has dot segments")
                    }
                    out.append(UInt8(ascii: "/"))
                    for b in segment { appendEncoded(b, to: &out) }
                }
                segmentStart = j + 1
            }
            j += 1
        }
        // A trailing slash is kept (`/tickets/` and `/tickets` may differ upstream); nothing at all is `/`.
        if out.isEmpty || (decoded.last == UInt8(ascii: "/") && out.last != UInt8(ascii: "/")) {
            out.append(UInt8(ascii: "/"))
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Checks a query as it will be forwarded: RFC 3986 query characters and well-formed escapes only.
    public static func checkQuery(_ query: Substring) throws(Invalid) {
        let raw = Array(query.utf8)
        var i = 0
        while i < raw.count {
            let c = raw[i]
            if c == UInt8(ascii: "%") {
                guard i + 2 < raw.count, hexValue(raw[i + 1]) != nil, hexValue(raw[i + 2]) != nil else {
                    throw Invalid(message: "the query has a malformed percent-escape")
                }
                i += 3
                continue
            }
            guard isPathChar(c) || c == UInt8(ascii: "/") || c == UInt8(ascii: "?") else {
                throw Invalid(message: "the query has characters that must be percent-encoded")
            }
            i += 1
        }
    }

    /// Unreserved characters, sub-delimiters, `:` and `@` (RFC 3986 `pchar` without `%`).
    static func isPathChar(_ c: UInt8) -> Bool {
        isUnreserved(c) || c == UInt8(ascii: ":") || c == UInt8(ascii: "@") || c == UInt8(ascii: "!")
            || c == UInt8(ascii: "$") || c == UInt8(ascii: "&") || c == UInt8(ascii: "'") || c == UInt8(ascii: "(")
            || c == UInt8(ascii: ")") || c == UInt8(ascii: "*") || c == UInt8(ascii: "+") || c == UInt8(ascii: ",")
            || c == UInt8(ascii: ";") || c == UInt8(ascii: "=")
    }

    static func isUnreserved(_ c: UInt8) -> Bool {
        (c >= 0x61 && c <= 0x7A) || (c >= 0x41 && c <= 0x5A) || (c >= 0x30 && c <= 0x39) || c == 0x2D || c == 0x2E
            || c == 0x5F || c == 0x7E
    }

    static func appendEncoded(_ b: UInt8, to out: inout [UInt8]) {
        if isPathChar(b) && b != UInt8(ascii: ";") {
            out.append(b)
        } else {
            let hex = Array("0123456789ABCDEF".utf8)
            out.append(UInt8(ascii: "%"))
            out.append(hex[Int(b >> 4)])
            out.append(hex[Int(b & 0x0F)])
        }
    }

    static func hexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case 0x30...0x39: c - 0x30
        case 0x41...0x46: c - 0x41 + 10
        case 0x61...0x66: c - 0x61 + 10
        default: nil
        }
    }
}
