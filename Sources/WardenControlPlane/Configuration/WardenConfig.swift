import Cedar
import Foundation
import WardenCore
import WardenIdentity

/// `audit:` in `warden.yaml`.
public struct AuditConfig: Sendable, Hashable {
    /// Sign a checkpoint when this many entries are not yet covered by one.
    public var checkpointEvery: Int64 = 10_000
    /// Sign a checkpoint when the latest is this old (seconds) and entries were added since.
    public var checkpointInterval: Int64 = 60
    /// Prune entries older than this many seconds, behind a signed checkpoint; nil keeps everything.
    public var retention: Int64?
    /// Continuous export to a file with rotation; nil for none.
    public var export: Export?

    public struct Export: Sendable, Hashable {
        public var path: String
        /// `jsonl` or `ocsf`.
        public var format: String = "jsonl"
        /// Rotate when the file reaches this size.
        public var maxBytes = 100 << 20
        /// Rotated files kept (`path.1` ... `path.<keep>`).
        public var keep = 5
    }

    public init() {}
}

/// `warden.yaml`: every key optional, unknown keys refused. Defaults are the secure ones: a loopback listener, DPoP on
/// every token, access tokens of five minutes, SVIDs of an hour, join tokens of ten minutes.
public struct WardenConfig: Sendable, Hashable {
    /// The SPIFFE trust domain (`spiffe://<trust_domain>/agent/<name>`).
    public var trustDomain = "warden.local"
    /// `host:port` to listen on.
    public var listen = "127.0.0.1:8443"
    /// The data directory.
    public var data = "./warden-data"
    /// The URL agents use to reach this server: the token issuer (`iss`), the base of DPoP `htu` checks and of the
    /// metadata. Defaults to `http://<listen>`.
    public var publicURL: String?
    /// Access token lifetime, seconds (at most 300).
    public var accessTTL: Int64 = 300
    /// X.509-SVID lifetime, seconds (at most 3600).
    public var svidTTL: Int64 = 3600
    /// Join token lifetime, seconds (at most 600).
    public var joinTokenTTL: Int64 = 600
    /// How often the token-signing key is replaced, seconds.
    public var signingKeyRotation: Int64 = 86_400
    /// The deepest delegation (`act`) chain a token exchange may build.
    public var maxDelegationDepth = 3
    /// Extra audiences agents may request tokens for (besides this server and their peers).
    public var audiences: [String] = []
    /// Identity providers whose user tokens agents may exchange to act for those users: issuer → JWKS file.
    public var subjectIssuers: [String: String] = [:]
    /// Require server-issued DPoP nonces (RFC 9449 §8) on every proof.
    public var dpopRequireNonce = false
    /// How old a DPoP proof may be, seconds.
    public var dpopMaxAge: Int64 = 60
    /// Clock skew allowed on token and proof times, seconds.
    public var clockSkew: Int64 = 30
    /// DPoP proof identifiers remembered against replay (`dpop.replay_cache_size`). Each lives max_age + proof skew
    /// (the smaller of clock_skew and 5 s) + 1 s, and a full cache refuses proofs (fail closed), so sustained DPoP
    /// requests per second are bounded by size / (max_age + proof skew + 1): about 21,000 with the defaults; one key
    /// may hold a tenth. About 70 bytes per live entry.
    public var dpopReplayCacheSize = 1_400_000
    /// A second listener with TLS (server certificate issued by Warden's own CA at start) that accepts client
    /// X.509-SVIDs for RFC 8705 certificate-bound tokens; nil for none.
    public var tlsListen: String?
    /// The URL of the TLS listener (default `https://<tls listen>`).
    public var tlsPublicURL: String?

    /// The audit log (`audit:`).
    public var audit = AuditConfig()

    /// Gateway routes (`routes:`), by name. With no configuration file: ``demoRoutes``; a file has its own (none when
    /// it has no `routes:`).
    public var routes: [String: RouteConfig] = WardenConfig.demoRoutes
    /// Upstream MCP servers, served at `/mcp/<name>` and together at `/mcp`.
    public var mcpServers: [String: MCPServerConfig] = [:]
    /// The risk engine.
    public var risk = RiskConfig()
    /// Cedar policy files and directories of `.cedar` files (`policies:`); nil: `<data>/policies`, seeded with the
    /// demo policy set when the data directory is created.
    public var policies: [String]?
    /// The per-agent bucket across all routes (`rate_limits.per_agent`); nil for none.
    public var rateLimitPerAgent: RateLimit? = RateLimit(perSecond: 1000, burst: 2000)
    /// Connection, body, deadline and concurrency limits (`limits:`).
    public var limits = GatewayLimits()

    /// The base URL of the TLS listener, when there is one.
    public var tlsBase: String? { tlsListen.map { Self.base(tlsPublicURL ?? "https://\($0)") } }

    public init() {}

    /// The issuer and base URL (no trailing slash).
    public var issuer: String { Self.base(publicURL ?? "http://\(listen)") }

    /// A base URL without trailing slashes.
    static func base(_ url: String) -> String {
        var u = url
        while u.hasSuffix("/") { u.removeLast() }
        return u
    }

    /// Whether `u` can be a base URL: absolute http(s) with a host (as DPoP `htu` normalisation reads it), no query,
    /// fragment or user info.
    static func isBaseURL(_ u: String, https: Bool = false) -> Bool {
        DPoPVerifier.normalize(u) != nil && !u.contains("?") && !u.contains("#") && (!https || u.hasPrefix("https://"))
    }

    /// Checks what command-line flags may have set after the file was read (the file's own values were checked as
    /// they were parsed): the listeners and the public URLs.
    public func validate() throws(WardenError) {
        _ = try listenAddress()
        if let publicURL, !Self.isBaseURL(publicURL) {
            throw WardenError(.invalidConfig, "public_url must be an absolute http(s) URL without query or fragment")
        }
        if let tlsListen { _ = try Self.address(tlsListen) }
        if let tlsPublicURL, !Self.isBaseURL(tlsPublicURL, https: true) {
            throw WardenError(.invalidConfig, "tls.public_url must be an absolute https URL")
        }
        for r in routes.values {
            if let c = r.credential { try RouteConfig.checkCredentialHeader(c.header, route: r.name) }
        }
        for s in mcpServers.values {
            if let c = s.credential, c.env == nil { try RouteConfig.checkCredentialHeader(c.header, route: s.name) }
        }
    }

    /// The policy sources: ``policies`` or `<data>/policies`.
    public var policySources: [String] { policies ?? [data + "/policies"] }

    /// Host and port of ``listen``.
    public func listenAddress() throws(WardenError) -> (host: String, port: Int) {
        try Self.address(listen)
    }

    /// Host and port of `host:port`.
    public static func address(_ listen: String) throws(WardenError) -> (host: String, port: Int) {
        guard let colon = listen.lastIndex(of: ":"), let port = Int(listen[listen.index(after: colon)...]),
            (0...65535).contains(port)
        else {
            throw WardenError(.invalidConfig, "listen must be host:port, for example 127.0.0.1:8443")
        }
        var host = String(listen[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty else { throw WardenError(.invalidConfig, "listen needs a host, for example 127.0.0.1") }
        return (host, port)
    }

    /// Reads `warden.yaml` text; `file` names it in errors.
    public init(parsing text: String, file: String) throws(WardenError) {
        let (value, places) = try YAMLReader.readWithPlaces(text, file: file)
        func fail(_ path: String, _ message: String) -> WardenError {
            WardenError(.invalidConfig, "\(places[path] ?? file): \(path): \(message)")
        }
        guard case .object(let pairs) = value else {
            if case .null = value { self.init(); return }
            throw WardenError(.invalidConfig, "\(file): the configuration is a mapping of keys to values")
        }
        func string(_ v: JSONValue, _ path: String) throws(WardenError) -> String {
            try Self.text(v, path, fail: fail)
        }
        func seconds(_ v: JSONValue, _ path: String, max: Int64) throws(WardenError) -> Int64 {
            let n: Int64?
            switch v {
            case .number(let t): n = Int64(t)
            case .string(let t): n = Self.parseDuration(t)
            default: n = nil
            }
            guard let n, n >= 1 else { throw fail(path, "must be a duration such as 300s, 5m, 1h or 24h") }
            guard n <= max else { throw fail(path, "must be at most \(max) seconds") }
            return n
        }
        var c = WardenConfig()
        c.routes = [:]
        // Limits first: they are the routes' defaults.
        if let lv = value["limits"] {
            guard case .object(let lp) = lv else { throw fail("limits", "must be a mapping") }
            for (k, v) in lp {
                let path = "limits.\(k)"
                func count(_ range: ClosedRange<Int>) throws(WardenError) -> Int {
                    guard let n = Self.whole(v, in: range) else {
                        throw fail(path, "must be a whole number from \(range.lowerBound) to \(range.upperBound)")
                    }
                    return n
                }
                switch k {
                case "max_connections": c.limits.maxConnections = try count(1...1_000_000)
                case "max_body_bytes": c.limits.maxBodyBytes = try count(0...(1 << 40))
                case "max_concurrent_per_route": c.limits.maxConcurrentPerRoute = try count(1...1_000_000)
                case "upstream_timeout":
                    guard let s = Self.durationValue(v), (1...3600).contains(s) else {
                        throw fail(path, "must be a duration from 1s to 1h")
                    }
                    c.limits.upstreamTimeout = s
                case "header_timeout", "idle_timeout", "body_timeout", "send_timeout":
                    guard let s = Self.durationValue(v), (1...3600).contains(s) else {
                        throw fail(path, "must be a duration from 1s to 1h")
                    }
                    switch k {
                    case "header_timeout": c.limits.headerTimeout = s
                    case "idle_timeout": c.limits.idleTimeout = s
                    case "body_timeout": c.limits.bodyTimeout = s
                    default: c.limits.sendTimeout = s
                    }
                case "max_connections_per_source": c.limits.maxConnectionsPerSource = try count(1...1_000_000)
                case "unauthenticated_per_source":
                    c.limits.perSource.unauthenticated = try Self.parseRate(v, path, key: "rate", fail: fail)
                case "enroll_per_source":
                    c.limits.perSource.enroll = try Self.parseRate(v, path, key: "rate", fail: fail)
                case "token_per_source":
                    c.limits.perSource.token = try Self.parseRate(v, path, key: "rate", fail: fail)
                case "max_header_bytes": c.limits.maxHeaderBytes = try count(1024...(1 << 20))
                case "max_headers": c.limits.maxHeaders = try count(8...10_000)
                default:
                    throw fail(
                        path,
                        "unknown key (known: max_connections, max_connections_per_source, unauthenticated_per_source, enroll_per_source, token_per_source, max_header_bytes, max_headers, header_timeout, idle_timeout, body_timeout, send_timeout, max_body_bytes, max_concurrent_per_route, upstream_timeout)"
                    )
                }
            }
        }
        for (key, v) in pairs {
            switch key {
            case "limits": continue
            case "routes": c.routes = try Self.parseRoutes(v, limits: c.limits, fail: fail)
            case "policies":
                var list: [JSONValue] = []
                switch v {
                case .string: list = [v]
                case .array(let items): list = items
                default: throw fail(key, "must be a list of files and directories")
                }
                guard list.count <= 256 else { throw fail(key, "at most 256 entries") }
                var out: [String] = []
                for (i, item) in list.enumerated() { out.append(try string(item, "\(key)[\(i)]")) }
                c.policies = out
            case "rate_limits":
                if case .null = v {
                    c.rateLimitPerAgent = nil
                } else {
                    c.rateLimitPerAgent = try Self.parseRate(v, key, key: "per_agent", fail: fail)
                }
            case "trust_domain":
                let td = try string(v, key)
                do { _ = try SPIFFEID(parsing: "spiffe://\(td)") } catch { throw fail(key, error.message) }
                c.trustDomain = td
            case "listen":
                c.listen = try string(v, key)
                do { _ = try Self.address(c.listen) } catch { throw fail(key, error.message) }
            case "data": c.data = try string(v, key)
            case "public_url":
                let u = try string(v, key)
                guard Self.isBaseURL(u) else { throw fail(key, "must be an absolute http(s) URL") }
                c.publicURL = u
            case "tokens":
                guard case .object(let tp) = v else { throw fail(key, "must be a mapping") }
                for (k, tv) in tp {
                    let path = "tokens.\(k)"
                    switch k {
                    case "access_ttl": c.accessTTL = try seconds(tv, path, max: 300)
                    case "svid_ttl": c.svidTTL = try seconds(tv, path, max: 3600)
                    case "join_token_ttl": c.joinTokenTTL = try seconds(tv, path, max: 600)
                    case "signing_key_rotation":
                        c.signingKeyRotation = try seconds(tv, path, max: 365 * 86_400)
                        guard c.signingKeyRotation >= 600 else { throw fail(path, "must be at least 10m") }
                    case "max_delegation_depth":
                        guard case .number(let t) = tv, let d = Int(t), (1...8).contains(d) else {
                            throw fail(path, "must be a whole number from 1 to 8")
                        }
                        c.maxDelegationDepth = d
                    case "subject_issuers":
                        guard case .array(let items) = tv else {
                            throw fail(path, "must be a list of {issuer, jwks_file}")
                        }
                        for (i, item) in items.enumerated() {
                            let ip = "\(path)[\(i)]"
                            guard case .object(let pairs) = item, pairs.count == 2, let iss = item["issuer"],
                                let file = item["jwks_file"]
                            else { throw fail(ip, "must be {issuer: URL, jwks_file: FILE}") }
                            c.subjectIssuers[try string(iss, ip + ".issuer")] = try string(file, ip + ".jwks_file")
                        }
                    case "audiences":
                        guard case .array(let items) = tv else { throw fail(path, "must be a list of strings") }
                        var out: [String] = []
                        for (i, item) in items.enumerated() { out.append(try string(item, "\(path)[\(i)]")) }
                        c.audiences = out
                    default:
                        throw fail(
                            path,
                            "unknown key (known: access_ttl, svid_ttl, join_token_ttl, signing_key_rotation, max_delegation_depth, audiences, subject_issuers)"
                        )
                    }
                }
            case "dpop":
                guard case .object(let dp) = v else { throw fail(key, "must be a mapping") }
                for (k, dv) in dp {
                    let path = "dpop.\(k)"
                    switch k {
                    case "require_nonce":
                        guard case .bool(let b) = dv else { throw fail(path, "must be true or false") }
                        c.dpopRequireNonce = b
                    case "max_age": c.dpopMaxAge = try seconds(dv, path, max: 300)
                    case "clock_skew": c.clockSkew = try seconds(dv, path, max: 300)
                    case "replay_cache_size":
                        guard let n = Self.whole(dv, in: 1000...10_000_000) else {
                            throw fail(path, "must be a whole number from 1000 to 10000000")
                        }
                        c.dpopReplayCacheSize = n
                    default:
                        throw fail(path, "unknown key (known: require_nonce, max_age, clock_skew, replay_cache_size)")
                    }
                }
            case "tls":
                guard case .object(let tp) = v else { throw fail(key, "must be a mapping") }
                for (k, tv) in tp {
                    let path = "tls.\(k)"
                    switch k {
                    case "listen":
                        c.tlsListen = try string(tv, path)
                        do { _ = try Self.address(c.tlsListen!) } catch { throw fail(path, error.message) }
                    case "public_url":
                        let u = try string(tv, path)
                        guard Self.isBaseURL(u, https: true) else {
                            throw fail(path, "must be an absolute https URL")
                        }
                        c.tlsPublicURL = u
                    default: throw fail(path, "unknown key (known: listen, public_url)")
                    }
                }
            case "audit":
                guard case .object(let ap) = v else { throw fail(key, "must be a mapping") }
                for (k, av) in ap {
                    let path = "audit.\(k)"
                    switch k {
                    case "checkpoint_interval": c.audit.checkpointInterval = try seconds(av, path, max: 86_400)
                    case "checkpoint_every":
                        guard case .number(let t) = av, let n = Int64(t), (1...10_000_000).contains(n) else {
                            throw fail(path, "must be a whole number from 1 to 10000000")
                        }
                        c.audit.checkpointEvery = n
                    case "retention":
                        c.audit.retention = try seconds(av, path, max: 100 * 365 * 86_400)
                        guard c.audit.retention! >= 3600 else { throw fail(path, "must be at least 1h") }
                    case "export":
                        guard case .object(let ep) = av else { throw fail(path, "must be a mapping") }
                        var e = AuditConfig.Export(path: "")
                        for (ek, ev) in ep {
                            let epath = "\(path).\(ek)"
                            switch ek {
                            case "path": e.path = try string(ev, epath)
                            case "format":
                                e.format = try string(ev, epath)
                                guard e.format == "jsonl" || e.format == "ocsf" else {
                                    throw fail(epath, "must be jsonl or ocsf")
                                }
                            case "max_bytes":
                                guard let n = Self.whole(ev, in: 4096...Int.max) else {
                                    throw fail(epath, "must be a whole number of bytes, at least 4096")
                                }
                                e.maxBytes = n
                            case "keep":
                                guard let n = Self.whole(ev, in: 1...1000) else {
                                    throw fail(epath, "must be a whole number from 1 to 1000")
                                }
                                e.keep = n
                            default: throw fail(epath, "unknown key (known: path, format, max_bytes, keep)")
                            }
                        }
                        guard !e.path.isEmpty else { throw fail(path, "needs a path") }
                        c.audit.export = e
                    default:
                        throw fail(
                            path, "unknown key (known: checkpoint_interval, checkpoint_every, retention, export)")
                    }
                }
            case "mcp_servers": c.mcpServers = try Self.parseMCPServers(v, fail: fail)
            case "risk": c.risk = try Self.parseRisk(v, fail: fail)
            default:
                throw fail(
                    key,
                    "unknown key (known: trust_domain, listen, data, public_url, tokens, dpop, tls, audit, routes, policies, rate_limits, limits, mcp_servers, risk)"
                )
            }
        }
        self = c
    }

    /// `300`, `300s`, `5m`, `1h`, `2d` → seconds.
    public static func parseDuration(_ text: String) -> Int64? {
        let t = text.trimmingCharacters(in: .whitespaces)
        guard let unit = t.last else { return nil }
        let factor: Int64
        switch unit {
        case "s": factor = 1
        case "m": factor = 60
        case "h": factor = 3600
        case "d": factor = 86_400
        default: return Int64(t)
        }
        guard let n = Int64(t.dropLast()), n >= 0, n <= Int64.max / factor else { return nil }
        return n * factor
    }
}
