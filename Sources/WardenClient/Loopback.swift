import Foundation

/// The one decision of where the CLI and the clients may send credentials (the admin token, join tokens, access
/// tokens): https anywhere, plain http only to this machine.
///
/// "This machine" is decided on the URL's host as written, never by resolving it, and strictly:
/// - an IPv4 address in 127.0.0.0/8 written as exactly four decimal octets 0–255 without leading zeros
///   (`127.0.0.1`, `127.1.2.3`); the shorthand and octal/hex forms some resolvers accept (`127.1`, `0x7f.0.0.1`,
///   `0177.0.0.1`) and names that merely start with `127.` (`127.attacker.example`, `127.0.0.1.nip.io`) are refused;
/// - the IPv6 loopback `::1` in brackets, in any spelling of its eight groups (`[::1]`, `[0:0:0:0:0:0:0:1]`,
///   `[0000::0001]`); IPv4-mapped addresses (`[::ffff:127.0.0.1]`), embedded dotted quads and zone identifiers are
///   refused: they are spelled and routed differently across stacks, and `127.0.0.1` says the same plainly;
/// - the name `localhost` exactly (any case). `localhost.` (the absolute name) and every other name are refused: a
///   resolver may send a name with a trailing dot to DNS instead of answering it from the hosts file.
///
/// A URL with user information (`user@host`) is refused whatever its scheme: `http://user@127.0.0.1@evil/` is read
/// differently by different parsers. The host decided on must also be the host the HTTP client (Foundation's `URL`,
/// as AsyncHTTPClient uses it) will connect to.
public enum Loopback {
    /// Whether `host`, as written in a URL's authority (IPv6 in brackets), is a loopback address or `localhost`.
    public static func isLoopbackHost(_ host: String) -> Bool {
        guard host.utf8.allSatisfy({ $0 < 0x80 }) else { return false }
        if host.lowercased() == "localhost" { return true }
        if host.hasPrefix("["), host.hasSuffix("]"), host.count >= 2 {
            return ipv6(host.dropFirst().dropLast()) == [0, 0, 0, 0, 0, 0, 0, 1]
        }
        return ipv4(Substring(host)).map { $0[0] == 127 } ?? false
    }

    /// Throws unless credentials may be sent to `url`: https to any host, http only to a loopback host
    /// (``isLoopbackHost(_:)``). Runs before any network use; the error never quotes user information.
    public static func checkCredentialsAllowed(to url: String) throws {
        guard let colon = url.firstIndex(of: ":") else {
            throw WardenClientError("the server URL must start with https:// (or http:// to this machine)")
        }
        let scheme = url[..<colon].lowercased()
        let rest = url[url.index(after: colon)...]
        guard scheme == "http" || scheme == "https", rest.hasPrefix("//") else {
            throw WardenClientError("the server URL must start with https:// (or http:// to this machine)")
        }
        let afterSlashes = rest.dropFirst(2)
        let authority = afterSlashes.prefix { $0 != "/" && $0 != "?" && $0 != "#" }
        guard !authority.contains("@") else {
            throw WardenClientError("the server URL must not contain user information (user@host)")
        }
        guard let host = hostOf(authority) else {
            throw WardenClientError("the server URL has no valid host and port: \(scheme)://\(authority)")
        }
        if scheme == "https" { return }
        // The client must connect to the host decided on here (AsyncHTTPClient parses with Foundation's URL).
        guard isLoopbackHost(host), let parsed = URL(string: url)?.host, normalized(parsed) == normalized(host) else {
            throw WardenClientError(
                "refusing to send credentials over plain http to \(scheme)://\(authority): http is allowed only to a loopback "
                    + "address (127.0.0.0/8 as four decimal octets, [::1]) or localhost; use https")
        }
    }

    /// The host of `host[:port]` (IPv6 kept in brackets), or nil when the port is not 1 to 5 digits up to 65535.
    static func hostOf(_ authority: Substring) -> String? {
        let host: Substring
        let port: Substring?
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { return nil }
            host = authority[...close]
            let tail = authority[authority.index(after: close)...]
            guard tail.isEmpty || tail.hasPrefix(":") else { return nil }
            port = tail.isEmpty ? nil : tail.dropFirst()
        } else {
            let parts = authority.split(separator: ":", omittingEmptySubsequences: false)
            guard parts.count <= 2 else { return nil }
            host = parts[0]
            port = parts.count == 2 ? parts[1] : nil
        }
        if let port {
            guard (1...5).contains(port.count), port.allSatisfy({ ("0"..."9").contains($0) }), let n = Int(port),
                n <= 65535
            else { return nil }
        }
        return host.isEmpty ? nil : String(host)
    }

    static func normalized(_ host: String) -> String {
        var h = Substring(host.lowercased())
        if h.hasPrefix("["), h.hasSuffix("]"), h.count >= 2 { h = h.dropFirst().dropLast() }
        return String(h)
    }

    /// Four decimal octets 0–255, each `0` or without a leading zero; nil for any other form.
    static func ipv4(_ s: Substring) -> [Int]? {
        let parts = s.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var octets: [Int] = []
        for p in parts {
            guard (1...3).contains(p.count), p.utf8.allSatisfy({ (0x30...0x39).contains($0) }),
                p.count == 1 || p.first != "0", let n = Int(p), n <= 255
            else { return nil }
            octets.append(n)
        }
        return octets
    }

    /// Eight 16-bit groups of hex digits (1 to 4 each), at most one `::`; nil for any other form (dotted quads and zone
    /// identifiers included).
    static func ipv6(_ s: Substring) -> [UInt16]? {
        func groups(_ part: Substring) -> [UInt16]? {
            if part.isEmpty { return [] }
            var out: [UInt16] = []
            for g in part.split(separator: ":", omittingEmptySubsequences: false) {
                guard (1...4).contains(g.count), g.allSatisfy(\.isHexDigit), g.allSatisfy(\.isASCII),
                    let n = UInt16(g, radix: 16)
                else { return nil }
                out.append(n)
            }
            return out
        }
        guard let range = s.range(of: "::") else {
            guard let all = groups(s), all.count == 8 else { return nil }
            return all
        }
        let head = s[..<range.lowerBound]
        let tail = s[range.upperBound...]
        guard !tail.contains("::"), let h = groups(head), let t = groups(tail), h.count + t.count <= 7 else {
            return nil
        }
        return h + Array(repeating: 0, count: 8 - h.count - t.count) + t
    }
}
