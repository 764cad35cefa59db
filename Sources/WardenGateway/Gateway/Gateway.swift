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
import WardenInspect
import WardenRisk

/// A route ready for the hot path: its configuration, the Cedar resource it stands for and its in-flight count.
final class Route: Sendable {
    let config: RouteConfig
    /// `scheme://host:port` and the path prefix of the upstream.
    let base: String
    let prefix: String
    /// Where `base` is.
    let endpoint: UpstreamEndpoint
    /// The Cedar resource (`Service::"…"` in `Segment::"…"`) of a service route; nil for an agent route.
    let service: Entity?
    /// The Cedar resource: the service, or the exposed agent (`Agent::"<SPIFFE ID>"`).
    let resource: EntityUID
    /// The scope a token must carry: `route:<name>`, or `peer:<agent>` for an agent route.
    let scope: String
    /// The header the brokered credential goes in.
    let credentialHeader: HTTPField.Name?
    let inFlight = Atomic<Int>(0)
    /// What the risk engine is told of this route's calls, and what `context.risk` is judged on: the resource as
    /// text and the segment (the route's, or `agent:<name>` for an agent route). Made once, not per call.
    let riskFeed: Recorder.RiskFeed

    init(_ c: RouteConfig, trustDomain: String) throws(WardenError) {
        config = c
        if let credential = c.credential {
            try RouteConfig.checkCredentialHeader(credential.header, route: c.name)
            credentialHeader = HTTPField.Name(credential.header)
        } else {
            credentialHeader = nil
        }
        guard let (b, p) = RouteConfig.parseUpstream(c.upstream) else {
            throw WardenError(.invalidConfig, "routes.\(c.name).upstream is not an http(s) URL")
        }
        base = b
        prefix = p
        guard let e = UpstreamEndpoint(base: b) else {
            throw WardenError(.invalidConfig, "routes.\(c.name).upstream has no usable host and port")
        }
        endpoint = e
        if let agent = c.agent {
            resource = EntityUID("Agent", try SPIFFEID.agent(agent, trustDomain: trustDomain).description)
            service = nil
            scope = "peer:\(agent)"
        } else {
            resource = EntityUID("Service", c.service)
            service = Entity(
                uid: resource, attributes: ["name": .string(c.name)],
                parents: c.segment.map { [EntityUID("Segment", $0)] } ?? [])
            scope = "route:\(c.name)"
        }
        riskFeed = Recorder.RiskFeed(
            .call, resource: resource.description, segment: c.segment ?? c.agent.map { "agent:" + $0 })
    }
}

/// The policy enforcement point for `/r/<route>/...` (`../shared/DESIGN.md`, "The request path"): authenticate, build
/// the Cedar request, decide, admit (rate limits, body size, concurrency), record, then stream to the upstream with
/// the brokered credential and stream the response back. Every step before forwarding fails closed with a reason
/// code that the response, the audit entry and the metrics share.
public final class Gateway: Sendable {
    public let cp: ControlPlane
    let routes: [String: Route]
    public let limiter: RateLimiter
    public let metrics: GatewayMetrics
    /// The registry the gateway's and the MCP gateway's instruments are in.
    public let metricsBackend: MetricsBackend
    /// The stages every front end shares.
    package let pipeline: Pipeline
    /// The data path's upstream connections (`/r/` routes and MCP servers over HTTP).
    package let upstreams: UpstreamClient
    let logger: Logger

    public init(
        cp: ControlPlane, limiter: RateLimiter = RateLimiter(), metricsBackend: MetricsBackend = MetricsBackend()
    ) throws(WardenError) {
        self.cp = cp
        var routes: [String: Route] = [:]
        for (name, r) in cp.config.routes { routes[name] = try Route(r, trustDomain: cp.config.trustDomain) }
        self.routes = routes
        self.metricsBackend = metricsBackend
        self.metrics = GatewayMetrics(routes: routes.keys, backend: metricsBackend)
        self.limiter = limiter
        self.pipeline = Pipeline(cp: cp, limiter: limiter)
        // No redirects followed, no decompression, HTTP/1.1 keep-alive: what the agent asked, as Cedar decided it.
        self.upstreams = UpstreamClient(maxIdlePerEndpoint: min(cp.config.limits.maxConnections, 1024))
        var logger = Logger(label: "warden.gateway")
        logger.logLevel = .info
        self.logger = logger
    }

    /// Closes the upstream connection pool.
    public func shutdown() async {
        await upstreams.shutdown()
    }

    // MARK: Handling

    /// The stages of a `/r/` call, in order: the pipeline's authenticate, then this front end's route lookup and
    /// request-target check (`RequestTarget`, method overrides), the token's scope, the pipeline's limit (the risk
    /// engine's throttle, the route's and the agent's rate limits), the body limit, the pipeline's decide (action
    /// `call` on the route's `Service` or target `Agent`), the brokered credential, the recorder's admission entry,
    /// then forward. A refusal from any stage leaves through ``refuse(_:_:_:)``, the call's one exit for refusals.
    package func handle(
        _ request: Request, context: WardenRequestContext, base: String, mutualTLS: Bool
    ) async -> Response {
        var call = Call(source: context.source)
        let path = request.uri.path
        // The router may match a path with empty segments (`//r/x`): this front end parses the raw path, so only
        // one that starts with `/r/` and names a route is taken.
        guard path.utf8.starts(with: "/r/".utf8), path.utf8.dropFirst(3).first.map({ $0 != UInt8(ascii: "/") }) == true
        else {
            return refuse(
                call, record(route: nil, routeName: "", request: request, path: nil, query: []),
                Refusal(.notFound, .notFound, .unknownRoute, "no route at this path"), route: nil)
        }
        // /r/<route>[/rest]
        let afterPrefix = path.utf8.dropFirst(3)
        let slash = afterPrefix.firstIndex(of: UInt8(ascii: "/")) ?? afterPrefix.endIndex
        let routeName = String(Substring(afterPrefix[..<slash]))
        let rest = Substring(afterPrefix[slash...])
        let route = routes[routeName]
        let query = Self.queryKeys(request.uri.query)
        // The record is built once, at the exit the call takes: admission or refusal.
        var canonicalPath: String?
        do throws(Refusal) {
            let caller = try await pipeline.authenticate.run(
                &call, request: request, context: context, base: base, mutualTLS: mutualTLS)
            guard let route else {
                throw Refusal(.notFound, .notFound, .unknownRoute, "no route '\(routeName)'")
            }
            let canonical = try Self.target(rest, query: request.uri.query)
            canonicalPath = canonical
            try Self.checkMethodOverride(request, query: query)
            guard caller.agent.claims.hasScope(route.scope) else {
                throw Refusal(
                    .forbidden, .accessDenied, .insufficientScope, "the token does not carry the scope \(route.scope)")
            }
            try pipeline.limit.run(
                caller,
                own: route.config.rateLimit.map {
                    (
                        key: caller.agent.agent.id + "|" + route.config.name, limit: $0,
                        what: "on route \(route.config.name)"
                    )
                })
            let length = request.headers[.contentLength].flatMap { Int($0) }
            if let length, length > route.config.maxBodyBytes {
                throw Refusal(
                    .contentTooLarge, .invalidRequest, .bodyTooLarge,
                    "the request body is larger than \(route.config.maxBodyBytes) bytes")
            }
            // A body on GET or HEAD has no meaning upstreams agree on: some ignore its framing and read the body as
            // a second request on the same connection (the "CL.0" desync), one Cedar never decided on.
            if request.method == .get || request.method == .head,
                (length ?? 0) > 0 || request.headers[.transferEncoding] != nil
            {
                throw Refusal(
                    .badRequest, .invalidRequest, .bodyNotAllowed,
                    "a \(request.method.rawValue) request carries no body")
            }
            let verdict = try decide(
                caller, call: call, route: route, request: request, path: canonical, query: query, length: length)
            guard verdict.allowed else { throw Decide.refusal(verdict) }
            // The brokered credential (a route that names one never goes out without it).
            var credential: (HTTPField.Name, String)?
            if let c = route.config.credential {
                guard let value = cp.secrets.value(c.secret), let name = route.credentialHeader else {
                    throw Refusal(
                        .serviceUnavailable, .storage, .credentialUnavailable, "the route's credential is not available"
                    )
                }
                credential = (name, c.prefix + value)
            }
            // Admission to the audit log; a failing log refuses the call.
            let entry = record(route: route, routeName: routeName, request: request, path: canonical, query: query)
            let admission = try pipeline.recorder.admit(call, entry, policies: verdict.policies)
            metrics.decisionLatency.observe(micros: call.elapsedMicros)
            metrics.allowed(route: route.config.name)
            // The risk engine sees the call when the exchange ends, with the bytes that actually moved each way
            // (chunked and streamed bodies included), not what `Content-Length` announced; a long response's bytes
            // also while it streams, every few MiB.
            let feed = entry.risk
            let response = await forward(
                request, route: route, path: canonical, who: caller.agent, credential: credential, source: call.source,
                length: length, proto: base.hasPrefix("https") ? "https" : "http", host: Self.authority(of: base)
            ) { [recorder = pipeline.recorder, call] bytesIn, bytesOut, ended in
                if let feed {
                    recorder.exchanged(
                        call, feed, bytesIn: bytesIn, bytesOut: bytesOut, ended: ended, cause: admission)
                }
            }
            metrics.requestLatency.observe(micros: call.elapsedMicros)
            return response
        } catch {
            let entry = record(route: route, routeName: routeName, request: request, path: canonicalPath, query: query)
            return refuse(call, entry, error, route: route)
        }
    }

    /// The one exit of a refused `/r/` call: metrics, the record and risk event (``Recorder``), the response.
    func refuse(_ call: Call, _ entry: Recorder.Entry, _ refusal: Refusal, route: Route?) -> Response {
        metrics.decisionLatency.observe(micros: call.elapsedMicros)
        metrics.denied(route: route?.config.name ?? "unknown", reason: refusal.reason.rawValue)
        pipeline.recorder.refused(call, entry, refusal)
        let response = refusal.response(nonce: cp.currentNonce())
        metrics.requestLatency.observe(micros: call.elapsedMicros)
        return response
    }

    /// What the record of a `/r/` call says: the Cedar resource (or `route:<name>` for an unknown route), the method,
    /// the path the decision was made on (the canonical one; the raw one when it was refused before), the route, the
    /// query's parameter names, and the digest of the request line.
    func record(route: Route?, routeName: String, request: Request, path: String?, query: Set<Value>)
        -> Recorder.Entry
    {
        var h = SHA256()
        h.update(data: Array("\(request.method.rawValue) \(request.uri.description)\n".utf8))
        let feed = route?.riskFeed ?? Recorder.RiskFeed(.call, resource: "route:\(routeName)")
        let shown = path.map { "/r/\(routeName)" + $0 } ?? String(request.uri.path.prefix(2048))
        var details: [(String, String)] = [("method", request.method.rawValue), ("path", shown)]
        if let r = route { details.append(("route", r.config.name)) }
        // What `context.contentLength` was (a policy change's replay decides on it again).
        if let length = request.headers[.contentLength].flatMap({ Int($0) }) {
            details.append(("content_length", String(length)))
        }
        if !query.isEmpty {
            let names = query.compactMap { if case .string(let s) = $0 { s } else { nil } }.sorted()
            details.append(("query_keys", names.joined(separator: ",")))
        }
        return Recorder.Entry(
            action: "call", resource: feed.resource, details: details,
            requestDigest: "sha256:" + Attestation.hex(h.finalize()), risk: feed)
    }

    /// The canonical path under the route and the checked query (`RequestTarget`), refused with 400 when malformed.
    static func target(_ rest: Substring, query: String?) throws(Refusal) -> String {
        do throws(RequestTarget.Invalid) {
            if let query {
                try RequestTarget.checkQuery(Substring(query))
                guard query.utf8.lazy.filter({ $0 == UInt8(ascii: "&") }).count < maxQueryParameters else {
                    throw RequestTarget.Invalid(message: "the query has more than \(maxQueryParameters) parameters")
                }
            }
            return try RequestTarget.canonicalPath(rest)
        } catch {
            throw Refusal(.badRequest, .invalidRequest, .invalidPath, error.message)
        }
    }

    /// Headers that ask an upstream framework to treat the request as another method than the one Cedar decided on.
    static let methodOverrides: [HTTPField.Name] = [
        HTTPField.Name("X-HTTP-Method-Override")!, HTTPField.Name("X-HTTP-Method")!,
        HTTPField.Name("X-Method-Override")!,
    ]

    /// A method override (header, or the `_method` query parameter Rails and Laravel honour) is refused: the upstream
    /// would act on a method the policy never saw.
    static func checkMethodOverride(_ request: Request, query: Set<Value>) throws(Refusal) {
        // `_method` as PHP reads it too: `.`, ` ` and `[` in a parameter name become `_`.
        let override = query.contains { v in
            guard case .string(let name) = v, name.utf8.count == 7 else { return false }
            return name.utf8.dropFirst().elementsEqual("method".utf8)
                && [UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: " "), UInt8(ascii: "[")].contains(
                    name.utf8.first!)
        }
        if methodOverrides.contains(where: { request.headers[$0] != nil }) || override {
            throw Refusal(
                .badRequest, .invalidRequest, .methodOverride, "method override headers and parameters are not accepted"
            )
        }
    }

    // MARK: Forwarding

    /// Largest response body read whole before answering (known length only).
    static let bufferedResponseBytes = 64 * 1024

    func forward(
        _ request: Request, route: Route, path: String, who: AuthenticatedAgent,
        credential: (HTTPField.Name, String)?, source: String?, length: Int?, proto: String, host: String,
        exchanged: @escaping @Sendable (_ bytesIn: Int64, _ bytesOut: Int64, _ ended: Bool) -> Void
    ) async -> Response {
        let limit = route.config.maxConcurrent
        guard route.inFlight.add(1, ordering: .relaxed).newValue <= limit else {
            route.inFlight.subtract(1, ordering: .relaxed)
            metrics.upstreamError(route: route.config.name, kind: "busy")
            exchanged(0, 0, true)
            return HTTPSupport.upstreamFailure(
                .serviceUnavailable, "upstream_busy", "too many requests in flight on this route")
        }
        // The request target is Warden's own: the route's prefix, then the canonical path Cedar decided on, then the
        // checked query, written to the upstream byte for byte as decided (no URL type re-derives it).
        let query = request.uri.query.flatMap { $0.isEmpty ? nil : $0 }
        let target = route.prefix + path + (query.map { "?" + $0 } ?? "")
        guard path.utf8.first == UInt8(ascii: "/"), target.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
            route.inFlight.subtract(1, ordering: .relaxed)
            metrics.upstreamError(route: route.config.name, kind: "target")
            exchanged(0, 0, true)
            return HTTPSupport.upstreamFailure(
                .badRequest, "invalid_path", "the request target cannot be forwarded exactly as it was decided on")
        }
        var head = HTTPRequestHead(
            version: .http1_1, method: HTTPMethod(rawValue: request.method.rawValue), uri: target)
        for (name, value) in Self.passedHeaders(request.headers, injected: credential?.0) {
            head.headers.add(name: name, value: value)
        }
        if let (name, value) = credential { head.headers.replaceOrAdd(name: name.rawName, value: value) }
        // The host the agent reached Warden at is Warden's own public authority (its proofs are checked against it),
        // never the Host header the agent sent.
        if let source {
            let forFor = source.utf8.contains(UInt8(ascii: ":")) ? "\"[\(source)]\"" : source
            head.headers.add(
                name: "Forwarded",
                value: "for=\(forFor);proto=\(proto)" + (host.isEmpty ? "" : ";host=\"\(host)\""))
            head.headers.add(name: "X-Forwarded-For", value: source)
        }
        head.headers.add(name: "X-Forwarded-Proto", value: proto)
        if !host.isEmpty { head.headers.add(name: "X-Forwarded-Host", value: host) }
        head.headers.add(name: "X-Warden-Agent", value: who.agent.spiffeID.description)
        if !who.claims.actors.isEmpty { head.headers.add(name: "X-Warden-Subject", value: who.claims.subject) }
        // The body as the agent framed it: its announced length, or chunked.
        let sent = LimitedBody<RequestBody>.Counter()
        var stream: (any AsyncSequence<ByteBuffer, any Error> & Sendable)?
        if let length {
            head.headers.add(name: "Content-Length", value: String(length))
            if length > 0 {
                stream = LimitedBody(base: request.body, limit: route.config.maxBodyBytes, expected: length, sent: sent)
            }
        } else if request.headers[.transferEncoding] != nil {
            head.headers.add(name: "Transfer-Encoding", value: "chunked")
            stream = LimitedBody(base: request.body, limit: route.config.maxBodyBytes, expected: nil, sent: sent)
        }
        // The body streams with backpressure, each part written upstream before the next is read. The upload is over
        // (sent or abandoned) when `execute` returns, or, when the upstream's answer streams before it has read the
        // whole body, when that answer's body ends: nothing reads the agent's body after that (Hummingbird drains what
        // is left).
        let response: UpstreamResponse
        do {
            response = try await upstreams.execute(
                route.endpoint, head: head, stream: stream, timeout: .seconds(route.config.timeout),
                bufferUpTo: Self.bufferedResponseBytes)
        } catch {
            route.inFlight.subtract(1, ordering: .relaxed)
            exchanged(sent.value, 0, true)
            return upstreamError(error, route: route, who: who, request: request)
        }
        var headers = HTTPFields()
        let responseConnection = Self.connectionTokens(response.head.headers["connection"])
        var contentLength: Int?
        for (name, value) in response.head.headers {
            let lower = name.lowercased()
            if lower == "content-length" { contentLength = Int(value) }
            if Self.hopByHop.contains(lower) || responseConnection.contains(lower) { continue }
            if let n = HTTPField.Name(name) { headers.append(HTTPField(name: n, value: value)) }
        }
        if let contentLength { headers[.contentLength] = String(contentLength) }
        let status = HTTPResponse.Status(
            code: Int(response.head.status.code), reasonPhrase: response.head.status.reasonPhrase)
        switch response.body {
        case .buffered(let buffer):
            route.inFlight.subtract(1, ordering: .relaxed)
            exchanged(sent.value, Int64(buffer.readableBytes), true)
            return Response(status: status, headers: headers, body: .init(byteBuffer: buffer))
        case .streamed(let stream):
            let body = ReleasingBody(
                base: stream,
                release: ReleasingBody.Release(onProgress: { exchanged(0, $0, false) }) { bytesOut in
                    route.inFlight.subtract(1, ordering: .relaxed)
                    exchanged(sent.value, bytesOut, true)
                })
            return Response(status: status, headers: headers, body: ResponseBody(asyncSequence: body))
        }
    }

    /// 502 (unreachable, refused, reset) or 504 (deadline) with nothing of the upstream's address or error text;
    /// counted by kind and recorded.
    func upstreamError(_ error: UpstreamError, route: Route, who: AuthenticatedAgent, request: Request) -> Response {
        let timedOut = error.timedOut
        let kind = timedOut ? "timeout" : "unavailable"
        metrics.upstreamError(route: route.config.name, kind: kind)
        try? cp.audit.submit(
            AuditEvent(
                kind: .system, action: "upstream.error", actor: "system", agent: who.agent.spiffeID.description,
                agentID: who.agent.id, resource: route.riskFeed.resource, reason: kind,
                details: [("route", route.config.name), ("method", request.method.rawValue)]))
        logger.warning(
            "upstream request failed",
            metadata: ["route": "\(route.config.name)", "kind": "\(kind)", "error": "\(String(describing: error))"])
        return timedOut
            ? HTTPSupport.upstreamFailure(.gatewayTimeout, "upstream_timeout", "the upstream did not answer in time")
            : HTTPSupport.upstreamFailure(.badGateway, "upstream_unavailable", "the upstream is unavailable")
    }
}
