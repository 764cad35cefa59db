import Cedar
import Foundation
import WardenCore
import WardenInspect

/// A token-bucket rate: `rate` requests per second sustained, bursts of up to `burst`.
public struct RateLimit: Sendable, Hashable {
    public var perSecond: Double
    public var burst: Double

    /// `perSecond` is at least one a day and `burst` at least 1 (a zero rate would never refill).
    public init(perSecond: Double, burst: Double? = nil) {
        self.perSecond = max(perSecond, 1.0 / 86_400)
        self.burst = max(1, burst ?? self.perSecond.rounded(.up))
    }

    /// `100/s`, `6000/m`, `10/h`, `50000/d`.
    static func parse(_ text: String) -> Double? {
        let parts = text.split(separator: "/", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
        guard parts.count == 2, let n = Double(parts[0]), n > 0, n <= 1e9, n.rounded() == n else { return nil }
        switch parts[1] {
        case "s", "sec", "second": return n
        case "m", "min", "minute": return n / 60
        case "h", "hour": return n / 3600
        case "d", "day": return n / 86_400
        default: return nil
        }
    }
}

/// How a route's brokered credential is injected: the secret's value in `header`, after `prefix`.
public struct CredentialInjection: Sendable, Hashable {
    /// The secret's name in the secrets store.
    public var secret: String
    /// The header that carries it upstream (default `Authorization`).
    public var header = "Authorization"
    /// Written before the value (default `Bearer ` for `Authorization`, nothing for other headers).
    public var prefix = "Bearer "
    /// For a stdio MCP server: the environment variable the value is passed in (instead of a header).
    public var env: String?

    public init(secret: String) { self.secret = secret }
}

/// One gateway route: `/r/<name>/...` forwarded to `upstream`, authorized against a Cedar `Service` in a `Segment`,
/// or, for an agent that exposes itself, against the target `Agent`.
public struct RouteConfig: Sendable, Hashable {
    public var name: String
    /// `http(s)://host:port[/prefix]`.
    public var upstream: String
    /// The Cedar `Service` id (default: the route's name).
    public var service: String
    /// The Cedar `Segment` the service is in (its parent); nil for none.
    public var segment: String?
    /// The agent (manifest name) this route exposes; set, the resource is that `Agent` and callers need the
    /// `peer:<agent>` scope instead of `route:<name>`.
    public var agent: String?
    public var credential: CredentialInjection?
    /// Per agent on this route (agent × route bucket).
    public var rateLimit: RateLimit?
    /// Largest request body forwarded, bytes.
    public var maxBodyBytes: Int
    /// Whole-request deadline upstream, seconds.
    public var timeout: Int64
    /// Requests in flight to the upstream at once; more get 503.
    public var maxConcurrent: Int

    public init(name: String, upstream: String, segment: String? = nil, limits: GatewayLimits = GatewayLimits()) {
        self.name = name
        self.upstream = upstream
        self.service = name
        self.segment = segment
        self.maxBodyBytes = limits.maxBodyBytes
        self.timeout = limits.upstreamTimeout
        self.maxConcurrent = limits.maxConcurrentPerRoute
    }

    /// Route names are one path segment: letters, digits, `.`, `_`, `-`, at most 64.
    static func validName(_ n: String) -> Bool {
        !n.isEmpty && n.utf8.count <= 64 && n != "." && n != ".."
            && n.utf8.allSatisfy { c in
                (c >= 0x61 && c <= 0x7A) || (c >= 0x41 && c <= 0x5A) || (c >= 0x30 && c <= 0x39) || c == 0x2E
                    || c == 0x5F || c == 0x2D
            }
    }

    /// Headers a brokered credential may not be written to: framing, routing, hop-by-hop and forwarding headers, and
    /// the ones the gateway sets itself.
    static let reservedCredentialHeaders: Set<String> = [
        "host", "content-length", "transfer-encoding", "connection", "keep-alive", "upgrade", "te", "trailer",
        "proxy-authorization", "proxy-authenticate", "forwarded", "x-forwarded-for", "x-forwarded-host",
        "x-forwarded-proto", "dpop", "cookie", "x-warden-agent", "x-warden-subject",
    ]

    /// Refuses a credential header that is not a header name or is reserved (checked at parse, at `validate()` and
    /// when a route goes live, so a configuration built in code is held to the same rule).
    package static func checkCredentialHeader(_ header: String, route: String) throws(WardenError) {
        guard WardenConfig.isHeaderName(header), !reservedCredentialHeaders.contains(header.lowercased()) else {
            throw WardenError(.invalidConfig, "routes.\(route).credential.header may not be \(header)")
        }
    }

    /// The upstream's scheme, host and port, and its path prefix (without trailing `/`).
    package static func parseUpstream(_ u: String) -> (base: String, prefix: String)? {
        guard let url = URL(string: u), let scheme = url.scheme?.lowercased(), scheme == "http" || scheme == "https",
            let host = url.host, !host.isEmpty, url.query == nil, url.fragment == nil, url.user == nil
        else { return nil }
        // The prefix as written (still percent-encoded), and in canonical form: what goes upstream is built from it.
        guard var prefix = URLComponents(url: url, resolvingAgainstBaseURL: true)?.percentEncodedPath else {
            return nil
        }
        while prefix.hasSuffix("/") { prefix.removeLast() }
        if !prefix.isEmpty {
            guard (try? RequestTarget.canonicalPath(Substring(prefix))) == prefix else { return nil }
        }
        let hostPart = host.contains(":") ? "[\(host)]" : host
        return ("\(scheme)://\(hostPart)\(url.port.map { ":\($0)" } ?? "")", prefix)
    }
}

/// Gateway-wide limits (`limits:`).
public struct GatewayLimits: Sendable, Hashable {
    /// Open client connections per listener; more wait in the backlog.
    public var maxConnections = 4096
    /// Default largest request body, bytes (routes may set their own).
    public var maxBodyBytes = 10 << 20
    /// Default upstream deadline, seconds.
    public var upstreamTimeout: Int64 = 30
    /// Default requests in flight per route.
    public var maxConcurrentPerRoute = 1024
    /// Open client connections per source address and listener; more are closed at once.
    public var maxConnectionsPerSource = 128
    /// Seconds from a connection's start (or a request's first byte) to the end of the request's head.
    public var headerTimeout: Int64 = 10
    /// Seconds a kept-alive connection may wait for its next request.
    public var idleTimeout: Int64 = 60
    /// Seconds a client may take to send the next bytes of a body Warden is ready to read.
    public var bodyTimeout: Int64 = 30
    /// Seconds a client may leave a ready response unread.
    public var sendTimeout: Int64 = 30
    /// Largest request head (request line and header fields), bytes; also the largest single header field.
    public var maxHeaderBytes = 32 * 1024
    /// Most header fields in a request.
    public var maxHeaders = 100
    /// Per client address: unauthenticated refusals, enrollments and token requests (`SourceGuard`). Behind a
    /// reverse proxy every client has the proxy's address: raise these there.
    public var perSource = SourceGuard.Limits()

    public init() {}
}

extension WardenConfig {
    /// The routes `warden serve` has with no configuration file: the README's walkthrough (a ticket service in the
    /// support segment on port 9001 with a brokered key, a billing service in the finance segment on 9002).
    public static var demoRoutes: [String: RouteConfig] {
        var tickets = RouteConfig(name: "tickets", upstream: "http://127.0.0.1:9001", segment: "support")
        tickets.credential = CredentialInjection(secret: "tickets-api-key")
        let billing = RouteConfig(name: "billing", upstream: "http://127.0.0.1:9002", segment: "finance")
        return ["tickets": tickets, "billing": billing]
    }

    /// Parses `routes:`.
    static func parseRoutes(
        _ v: JSONValue, limits: GatewayLimits, fail: (String, String) -> WardenError
    ) throws(WardenError) -> [String: RouteConfig] {
        guard case .object(let pairs) = v else { throw fail("routes", "must be a mapping of route names to routes") }
        guard pairs.count <= 10_000 else { throw fail("routes", "at most 10000 routes") }
        var out: [String: RouteConfig] = [:]
        for (name, rv) in pairs {
            let path = "routes.\(name)"
            guard RouteConfig.validName(name) else {
                throw fail(path, "a route name is 1 to 64 letters, digits, '.', '_' or '-'")
            }
            guard case .object(let fields) = rv else { throw fail(path, "must be a mapping with at least upstream") }
            var r = RouteConfig(name: name, upstream: "", limits: limits)
            func text(_ v: JSONValue, _ p: String) throws(WardenError) -> String { try Self.text(v, p, fail: fail) }
            for (k, fv) in fields {
                let p = "\(path).\(k)"
                switch k {
                case "upstream":
                    r.upstream = try text(fv, p)
                    guard RouteConfig.parseUpstream(r.upstream) != nil else {
                        throw fail(p, "must be an http(s) URL with a host, without query, fragment or user info")
                    }
                case "service": r.service = try text(fv, p)
                case "segment": r.segment = try text(fv, p)
                case "agent":
                    let a = try text(fv, p)
                    do { _ = try SPIFFEID.agent(a, trustDomain: "x.invalid") } catch {
                        throw fail(p, "must be an agent name (one SPIFFE path segment)")
                    }
                    r.agent = a
                case "credential": r.credential = try parseCredential(fv, p, owner: name, fail: fail)
                case "rate_limit": r.rateLimit = try parseRate(fv, p, key: "per_agent", fail: fail)
                case "max_body_bytes":
                    guard let n = whole(fv, in: 0...(1 << 40)) else { throw fail(p, "must be a whole number of bytes") }
                    r.maxBodyBytes = n
                case "timeout":
                    guard let s = Self.durationValue(fv), s >= 1, s <= 3600 else {
                        throw fail(p, "must be a duration from 1s to 1h")
                    }
                    r.timeout = s
                case "max_concurrent":
                    guard let n = whole(fv, in: 1...1_000_000) else {
                        throw fail(p, "must be a whole number from 1 to 1000000")
                    }
                    r.maxConcurrent = n
                default:
                    throw fail(
                        p,
                        "unknown key (known: upstream, service, segment, agent, credential, rate_limit, max_body_bytes, timeout, max_concurrent)"
                    )
                }
            }
            guard !r.upstream.isEmpty else { throw fail(path, "needs upstream: URL") }
            out[name] = r
        }
        return out
    }

    /// A brokered credential: a secret name, or `{secret, header, prefix}` (and `env` where `allowEnv`, for stdio
    /// servers: the variable the secret is passed in).
    static func parseCredential(
        _ fv: JSONValue, _ p: String, owner: String, allowEnv: Bool = false,
        fail: (String, String) -> WardenError
    ) throws(WardenError) -> CredentialInjection {
        var c = CredentialInjection(secret: "")
        switch fv {
        case .string(let s) where !s.isEmpty:
            c.secret = s
        case .object(let cp):
            var prefixSet = false
            for (ck, cv) in cp {
                let cpath = "\(p).\(ck)"
                switch ck {
                case "secret": c.secret = try text(cv, cpath, fail: fail)
                case "header":
                    c.header = try text(cv, cpath, fail: fail)
                    do { try RouteConfig.checkCredentialHeader(c.header, route: owner) } catch {
                        throw fail(cpath, "must be a header name other than framing or forwarding ones")
                    }
                case "prefix":
                    guard case .string(let s) = cv, s.utf8.count <= 64,
                        !s.contains(where: { $0 == "\r" || $0 == "\n" })
                    else { throw fail(cpath, "must be a short string on one line") }
                    c.prefix = s
                    prefixSet = true
                case "env" where allowEnv:
                    let e = try text(cv, cpath, fail: fail)
                    guard MCPServerConfig.validEnvName(e) else {
                        throw fail(cpath, "must be an environment variable name")
                    }
                    c.env = e
                default:
                    throw fail(
                        cpath,
                        allowEnv
                            ? "unknown key (known: secret, header, prefix, env)"
                            : "unknown key (known: secret, header, prefix)")
                }
            }
            guard !c.secret.isEmpty else { throw fail(p, "needs secret: NAME") }
            if !prefixSet && (c.header.lowercased() != "authorization" || c.env != nil) { c.prefix = "" }
        default: throw fail(p, "must be a secret name or {secret, header, prefix}")
        }
        guard SecretStore.validName(c.secret) else {
            throw fail(p, "a secret name is 1 to 128 letters, digits, '.', '_' or '-'")
        }
        return c
    }

    /// `{per_agent: 100/s, burst: 200}` (the key names the bucket).
    static func parseRate(
        _ v: JSONValue, _ path: String, key: String, fail: (String, String) -> WardenError
    ) throws(WardenError) -> RateLimit {
        guard case .object(let pairs) = v else { throw fail(path, "must be {\(key): N/s, burst: N}") }
        var rate: Double?
        var burst: Double?
        for (k, rv) in pairs {
            switch k {
            case key:
                guard case .string(let s) = rv, let r = RateLimit.parse(s) else {
                    throw fail("\(path).\(k)", "must be a rate such as 100/s, 6000/m or 10/h")
                }
                rate = r
            case "burst":
                guard case .number(let t) = rv, let n = Double(t), n >= 1, n <= 1e9 else {
                    throw fail("\(path).\(k)", "must be a number from 1")
                }
                burst = n
            default: throw fail("\(path).\(k)", "unknown key (known: \(key), burst)")
            }
        }
        guard let rate else { throw fail(path, "needs \(key): RATE") }
        return RateLimit(perSecond: rate, burst: burst)
    }

    /// A non-empty string of at most 2048 bytes.
    static func text(_ v: JSONValue, _ path: String, fail: (String, String) -> WardenError) throws(WardenError)
        -> String
    {
        guard case .string(let s) = v, !s.isEmpty, s.utf8.count <= 2048 else {
            throw fail(path, "must be a non-empty string")
        }
        return s
    }

    /// A whole number within `range`, nil otherwise.
    static func whole(_ v: JSONValue, in range: ClosedRange<Int>) -> Int? {
        guard case .number(let t) = v, let n = Int(t), range.contains(n) else { return nil }
        return n
    }

    static func durationValue(_ v: JSONValue) -> Int64? {
        switch v {
        case .number(let t): Int64(t)
        case .string(let t): parseDuration(t)
        default: nil
        }
    }

    /// An RFC 9110 token.
    static func isHeaderName(_ s: String) -> Bool {
        !s.isEmpty && s.utf8.count <= 128
            && s.utf8.allSatisfy { c in
                (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A)
                    || "!#$%&'*+-.^_`|~".utf8.contains(c)
            }
    }
}
