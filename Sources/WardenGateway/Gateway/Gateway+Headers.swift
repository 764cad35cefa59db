import Cedar
import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import NIOHTTP1
import Synchronization
import WardenAudit
import WardenControlPlane
import WardenCore
import WardenIdentity
import WardenRisk

/// What of the agent's request headers goes upstream, and the forwarding headers Warden writes itself.
extension Gateway {
    /// Hop-by-hop headers (RFC 9110 §7.6.1) and what the gateway replaces: never forwarded in either direction.
    static let hopByHop: Set<String> = [
        "connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization", "te", "trailer",
        "transfer-encoding", "upgrade", "host", "content-length",
    ]
    /// Request headers the agent may not pass upstream: its own credentials, what the gateway vouches for (client
    /// address, host, scheme, identity) and what proxies and frameworks use to rewrite the URL or the method. Every
    /// `X-Forwarded-*` and `X-Warden-*` header is dropped by prefix as well (`strippedPrefixes`).
    static let agentOnly: Set<String> = [
        "authorization", "dpop", "forwarded", "x-real-ip", "true-client-ip", "cf-connecting-ip", "x-client-ip",
        "x-cluster-client-ip", "fastly-client-ip", "x-originating-ip", "x-remote-ip", "x-remote-addr", "client-ip",
        "x-proxyuser-ip", "via", "x-original-url", "x-original-uri", "x-rewrite-url", "x-original-host", "x-host",
        "x-original-method", "x-http-method-override", "x-http-method", "x-method-override", "x-envoy-original-path",
        "x-envoy-original-url", "x-scheme", "x-url-scheme", "front-end-https", "x-ssl", "x-client-cert",
        "x-ssl-client-cert", "ssl-client-cert", "x-forwarded-client-cert", "x-amzn-oidc-identity",
        "x-ms-client-principal", "x-goog-authenticated-user-email", "cookie2", "proxy-authorization",
    ]
    /// Header name prefixes dropped from the agent's request (lower case).
    static let strippedPrefixes = ["x-forwarded-", "x-warden-", "x-envoy-"]

    /// The agent's request headers that go upstream: not hop-by-hop ones (nor those its `Connection` names), not its
    /// credentials or forwarding claims, not the header the brokered credential goes in.
    public static func passedHeaders(_ headers: HTTPFields, injected: HTTPField.Name?) -> [(String, String)] {
        let connectionTokens = Self.connectionTokens(headers[values: .connection])
        let injected = injected?.canonicalName
        var out: [(String, String)] = []
        for field in headers {
            let name = field.name.canonicalName
            // A name with `_` is dropped (as nginx does by default): CGI-style upstreams read `X_Forwarded_Host` as
            // `X-Forwarded-Host`, which would slip past the names and prefixes above.
            if Self.hopByHop.contains(name) || Self.agentOnly.contains(name) || connectionTokens.contains(name)
                || Self.strippedPrefixes.contains(where: { name.hasPrefix($0) }) || name.utf8.contains(0x5F)
                || name == injected
            {
                continue
            }
            out.append((field.name.rawName, field.value))
        }
        return out
    }

    /// The lower-cased tokens that `Connection` header values name (RFC 9110 §7.6.1): those headers are hop-by-hop too.
    static func connectionTokens(_ values: some Sequence<String>) -> Set<String> {
        func isSpace(_ c: UInt8) -> Bool { c == UInt8(ascii: " ") || c == UInt8(ascii: "\t") }
        var tokens = Set<String>()
        for v in values {
            for t in v.utf8.split(separator: UInt8(ascii: ",")) {
                guard let start = t.firstIndex(where: { !isSpace($0) }), let end = t.lastIndex(where: { !isSpace($0) })
                else { continue }
                tokens.insert(String(Substring(t[start...end])).lowercased())
            }
        }
        return tokens
    }

    /// The authority of a base URL (`https://warden.example:8443/x` → `warden.example:8443`), when it is plain.
    package static func authority(of base: String) -> String {
        // A byte scan (Foundation's `range(of:)` cost a few microseconds on every forwarded request).
        let u = base.utf8
        var i = u.startIndex
        var start: String.Index?
        while i < u.endIndex {
            if u[i] == UInt8(ascii: ":") {
                let a = u.index(after: i)
                if a < u.endIndex, u[a] == UInt8(ascii: "/") {
                    let b = u.index(after: a)
                    if b < u.endIndex, u[b] == UInt8(ascii: "/") { start = u.index(after: b) }
                }
                break
            }
            i = u.index(after: i)
        }
        guard let start else { return "" }
        let end = u[start...].firstIndex(of: UInt8(ascii: "/")) ?? u.endIndex
        let authority = String(Substring(u[start..<end]))
        return isPlainAuthority(authority) ? authority : ""
    }

    /// Letters, digits and `.-_:[]` only, at most 255 bytes.
    public static func isPlainAuthority(_ s: String) -> Bool {
        s.utf8.count <= 255
            && s.utf8.allSatisfy { c in
                (c >= 0x30 && c <= 0x3A) || (c >= 0x41 && c <= 0x5B) || (c >= 0x61 && c <= 0x7A) || c == 0x5D
                    || c == 0x2E || c == 0x2D || c == 0x5F
            }
    }
}
