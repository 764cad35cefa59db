/// A value of Cedar's `ipaddr` extension type: an IPv4 or IPv6 address together with a prefix length
/// (`ip("10.0.0.0/8")`, or `ip("10.1.2.3")`, which has the full prefix length 32).
///
/// Semantics follow cedar-policy-core 4.12 (`src/extensions/ipaddr.rs`):
/// - Equality compares the family, the address *including its host bits*, and the prefix length, so
///   `ip("10.0.0.1/8") != ip("10.0.0.0/8")` and `ip("10.0.0.0/32") == ip("10.0.0.0")`.
/// - Parsing accepts exactly what Rust's `std::net::IpAddr::from_str` accepts, except that IPv4-embedded
///   IPv6 text (`::ffff:1.2.3.4`) is rejected, the whole string must be at most 43 bytes, and the prefix
///   must be plain decimal digits without leading zeros, at most 32 (IPv4) or 128 (IPv6).
public struct IPAddr: Hashable, Sendable, CustomStringConvertible {
    /// Whether this is an IPv6 address (otherwise IPv4).
    let v6: Bool
    /// The address bits. For IPv4 only the low 32 bits are used.
    let address: UInt128
    /// The prefix length: 0...32 for IPv4, 0...128 for IPv6.
    public let prefixLength: UInt8

    /// The longest accepted input, in UTF-8 bytes: `len("ABCD:EF01:2345:6789:ABCD:EF01:2345:6789/128")`.
    static let maxTextLength = 43

    init(v6: Bool, address: UInt128, prefixLength: UInt8) {
        self.v6 = v6
        self.address = address
        self.prefixLength = prefixLength
    }

    /// Creates an IPv4 value from its 32 address bits and a prefix length (at most 32).
    public init?(ipv4 address: UInt32, prefixLength: UInt8 = 32) {
        guard prefixLength <= 32 else { return nil }
        self.init(v6: false, address: UInt128(address), prefixLength: prefixLength)
    }

    /// Creates an IPv6 value from its 128 address bits and a prefix length (at most 128).
    public init?(ipv6 address: UInt128, prefixLength: UInt8 = 128) {
        guard prefixLength <= 128 else { return nil }
        self.init(v6: true, address: address, prefixLength: prefixLength)
    }

    /// Parses an address (`"10.1.2.3"`, `"::1"`) or a range in CIDR notation (`"10.0.0.0/8"`, `"ff00::/8"`).
    /// Returns `nil` for anything Cedar's `ip()` constructor rejects. Never traps; work is bounded by the
    /// 43-byte length limit, which is checked first.
    public static func parse(_ text: String) -> IPAddr? {
        guard text.utf8.count <= maxTextLength else { return nil }
        var text = text
        return text.withUTF8 { parse(bytes: $0) }
    }

    static func parse(bytes b: UnsafeBufferPointer<UInt8>) -> IPAddr? {
        guard b.count <= maxTextLength else { return nil }
        // Reject IPv4 embedded in IPv6: Cedar refuses any string with at least two ':' and at least two '.'.
        var colons = 0
        var dots = 0
        var slash: Int? = nil
        for i in 0..<b.count {
            switch b[i] {
            case UInt8(ascii: ":"): colons += 1
            case UInt8(ascii: "."): dots += 1
            case UInt8(ascii: "/"): if slash == nil { slash = i }
            default: break
            }
        }
        if colons >= 2 && dots >= 2 { return nil }

        // Rust's `split_once('/')` splits at the first '/'.
        let addrEnd = slash ?? b.count
        guard let (isV6, bits) = parseAddress(b, 0, addrEnd) else { return nil }
        guard let slash else {
            return IPAddr(v6: isV6, address: bits, prefixLength: isV6 ? 128 : 32)
        }
        guard let prefix = parsePrefix(b, slash + 1, b.count, max: isV6 ? 128 : 32, maxLength: isV6 ? 3 : 2) else {
            return nil
        }
        return IPAddr(v6: isV6, address: bits, prefixLength: prefix)
    }

    /// Cedar's `parse_prefix`: at most `maxLength` bytes, ASCII digits only, no leading zero (except "0"),
    /// value at most `max`.
    private static func parsePrefix(
        _ b: UnsafeBufferPointer<UInt8>, _ start: Int, _ end: Int, max: UInt8, maxLength: Int
    ) -> UInt8? {
        let length = end - start
        guard length >= 1, length <= maxLength else { return nil }
        var value = 0
        for i in start..<end {
            let c = b[i]
            guard c >= UInt8(ascii: "0"), c <= UInt8(ascii: "9") else { return nil }
            value = value * 10 + Int(c - UInt8(ascii: "0"))
        }
        if b[start] == UInt8(ascii: "0") && length > 1 { return nil }
        guard value <= Int(max) else { return nil }
        return UInt8(value)
    }

    /// `std::net::IpAddr::from_str`: IPv4 first, then IPv6; the whole range must be consumed.
    private static func parseAddress(
        _ b: UnsafeBufferPointer<UInt8>, _ start: Int, _ end: Int
    ) -> (Bool, UInt128)? {
        if let v4 = parseIPv4(b, start, end) { return (false, UInt128(v4)) }
        if let v6 = parseIPv6(b, start, end) { return (true, v6) }
        return nil
    }

    /// Rust's IPv4 grammar: exactly four dot-separated decimal octets, each 1–3 ASCII digits,
    /// at most 255, and no leading zero unless the octet is exactly "0".
    private static func parseIPv4(_ b: UnsafeBufferPointer<UInt8>, _ start: Int, _ end: Int) -> UInt32? {
        var i = start
        var result: UInt32 = 0
        for group in 0..<4 {
            if group > 0 {
                guard i < end, b[i] == UInt8(ascii: ".") else { return nil }
                i += 1
            }
            let first = i
            var value: UInt32 = 0
            while i < end, b[i] >= UInt8(ascii: "0"), b[i] <= UInt8(ascii: "9") {
                value = value * 10 + UInt32(b[i] - UInt8(ascii: "0"))
                i += 1
                if i - first > 3 { return nil }
            }
            let digits = i - first
            guard digits > 0, value <= 255 else { return nil }
            if digits > 1 && b[first] == UInt8(ascii: "0") { return nil }
            result = result << 8 | value
        }
        guard i == end else { return nil }
        return result
    }

    /// Rust's IPv6 grammar without the embedded-IPv4 tail (which Cedar's colon-and-dot check has already
    /// ruled out): up to eight groups of 1–4 hex digits, with at most one `::` standing for one or more
    /// zero groups.
    private static func parseIPv6(_ b: UnsafeBufferPointer<UInt8>, _ start: Int, _ end: Int) -> UInt128? {
        var pos = start

        /// Reads up to `limit` colon-separated groups (mirrors `read_groups`); a group that fails to
        /// read leaves `pos` before its separator.
        func readGroups(into groups: inout (UInt128, Int), limit: Int) {
            for i in 0..<limit {
                let save = pos
                if i > 0 {
                    guard pos < end, b[pos] == UInt8(ascii: ":") else {
                        pos = save
                        return
                    }
                    pos += 1
                }
                let first = pos
                var value: UInt128 = 0
                while pos < end, let d = hexValue(b[pos]) {
                    value = value << 4 | UInt128(d)
                    pos += 1
                    if pos - first > 4 {
                        pos = save
                        return
                    }
                }
                if pos == first {
                    pos = save
                    return
                }
                groups.0 = groups.0 << 16 | value
                groups.1 += 1
            }
        }

        var head: (UInt128, Int) = (0, 0)
        readGroups(into: &head, limit: 8)
        if head.1 == 8 {
            return pos == end ? head.0 : nil
        }
        // "::" stands for one or more zero groups.
        guard end - pos >= 2, b[pos] == UInt8(ascii: ":"), b[pos + 1] == UInt8(ascii: ":") else { return nil }
        pos += 2
        var tail: (UInt128, Int) = (0, 0)
        readGroups(into: &tail, limit: 7 - head.1)
        guard pos == end else { return nil }
        // head groups occupy the top, tail groups the bottom; head.1 + tail.1 <= 7, so no shift reaches 128.
        let headBits = head.1 == 0 ? 0 : head.0 << UInt128(16 * (8 - head.1))
        return headBits | tail.0
    }

    private static func hexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): c - UInt8(ascii: "A") + 10
        default: nil
        }
    }

    /// Whether this is an IPv4 address or range (`isIpv4`).
    public var isIPv4: Bool { !v6 }

    /// Whether this is an IPv6 address or range (`isIpv6`).
    public var isIPv6: Bool { v6 }

    /// `isLoopback`: the address is in 127.0.0.0/8 with a prefix length of at least 8 (IPv4), or is
    /// exactly `::1` with prefix length 128 (IPv6). IPv4-mapped IPv6 addresses are never loopback.
    public var isLoopback: Bool {
        if v6 { return address == 1 && prefixLength >= 128 }
        return address >> 24 == 127 && prefixLength >= 8
    }

    /// `isMulticast`: the address is in 224.0.0.0/4 with prefix length at least 4 (IPv4), or in ff00::/8
    /// with prefix length at least 8 (IPv6).
    public var isMulticast: Bool {
        if v6 { return address >> 120 == 0xff && prefixLength >= 8 }
        return address >> 28 == 0xe && prefixLength >= 4
    }

    /// `isInRange`: whether every address of this range lies within `other`. An IPv4 value is never in an
    /// IPv6 range and vice versa. Host bits of either operand are ignored (`10.0.0.0/24` is in
    /// `10.0.0.1/24`).
    public func isInRange(_ other: IPAddr) -> Bool {
        guard v6 == other.v6 else { return false }
        let width = v6 ? 128 : 32
        let all: UInt128 = v6 ? .max : UInt128(UInt32.max)
        func hostmask(_ prefix: UInt8) -> UInt128 { Int(prefix) >= width ? 0 : all >> UInt128(prefix) }
        func netmask(_ prefix: UInt8) -> UInt128 { all & ~hostmask(prefix) }
        let selfNetwork = address & netmask(prefixLength)
        let otherNetwork = other.address & netmask(other.prefixLength)
        let selfBroadcast = address | hostmask(prefixLength)
        let otherBroadcast = other.address | hostmask(other.prefixLength)
        return otherNetwork <= selfNetwork && selfBroadcast <= otherBroadcast
    }

    /// Canonical text that `parse` accepts back as an equal value: the address (dotted quad for IPv4;
    /// RFC 5952 for IPv6: lowercase hex, no leading zeros, the first longest run of two or more zero
    /// groups written `::`), then `/` and the prefix length, as Rust's `Display` prints it. One deliberate
    /// difference: Rust writes IPv4-mapped IPv6 addresses as `::ffff:a.b.c.d`, which Cedar's `ip()`
    /// rejects, so they are written in hex (`::ffff:a00:1/128`) here.
    public var description: String {
        addressDescription + "/" + String(prefixLength)
    }

    /// The address part of `description`, without the prefix length.
    public var addressDescription: String {
        if !v6 { return Self.ipv4Text(UInt32(truncatingIfNeeded: address)) }
        var segments = [UInt16](repeating: 0, count: 8)
        for i in 0..<8 {
            segments[i] = UInt16(truncatingIfNeeded: address >> UInt128(16 * (7 - i)))
        }
        // Longest run of zero segments; the first one wins a tie; compressed only if longer than one.
        var bestStart = 0
        var bestLength = 0
        var currentStart = 0
        var currentLength = 0
        for (i, segment) in segments.enumerated() {
            if segment == 0 {
                if currentLength == 0 { currentStart = i }
                currentLength += 1
                if currentLength > bestLength {
                    bestStart = currentStart
                    bestLength = currentLength
                }
            } else {
                currentLength = 0
            }
        }
        func hex(_ part: ArraySlice<UInt16>) -> String {
            part.map { String($0, radix: 16) }.joined(separator: ":")
        }
        if bestLength > 1 {
            return hex(segments[0..<bestStart]) + "::" + hex(segments[(bestStart + bestLength)...])
        }
        return hex(segments[...])
    }

    private static func ipv4Text(_ a: UInt32) -> String {
        "\(a >> 24).\(a >> 16 & 0xff).\(a >> 8 & 0xff).\(a & 0xff)"
    }
}
