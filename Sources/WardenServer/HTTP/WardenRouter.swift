import Cedar
import Crypto
import HTTPTypes
import Hummingbird
import NIOCore
import WardenControlPlane
import WardenCore
import WardenGateway
import WardenIdentity

/// The HTTP interface of the control plane (`../shared/DESIGN.md`, "External interfaces").
public enum WardenRouter {
    /// Builds the router for `cp`. `base` is the URL clients use to reach this listener (DPoP `htu` checks); on a
    /// `mutualTLS` listener, a client certificate (an X.509-SVID) may authenticate token requests and bind tokens
    /// (RFC 8705).
    public static func build(
        _ cp: ControlPlane, gateway: Gateway? = nil, mcp: MCPGateway? = nil, base: String? = nil,
        mutualTLS: Bool = false
    ) -> Router<WardenRequestContext> {
        let base = base ?? cp.issuer
        let router = Router(context: WardenRequestContext.self)
        @Sendable func certificate(_ context: WardenRequestContext) async throws(WardenError) -> ClientCertificate? {
            mutualTLS ? try await context.clientCertificate() : nil
        }
        /// The client certificate, read only where a certificate-bound token can be presented (a Bearer request).
        @Sendable func bearerCertificate(_ request: Request, _ context: WardenRequestContext) async throws(WardenError)
            -> ClientCertificate?
        {
            guard mutualTLS, request.headers[.authorization]?.lowercased().hasPrefix("bearer ") == true else {
                return nil
            }
            return try await context.clientCertificate()
        }

        router.get("/healthz") { _, _ in HTTPSupport.json(.ok, .object([("status", .string("ok"))])) }
        router.get("/readyz") { _, _ in
            guard cp.store.ping() else {
                return HTTPSupport.json(
                    .serviceUnavailable, .object([("status", .string("not_ready")), ("reason", .string("store"))]))
            }
            let audit = cp.audit.health
            guard audit.healthy else {
                return HTTPSupport.json(
                    .serviceUnavailable,
                    .object([("status", .string("not_ready")), ("reason", .string("audit"))]))
            }
            // Proofs made before this start are refused without a nonce for a few seconds: not ready yet.
            guard !cp.inStartWindow else {
                return HTTPSupport.json(
                    .serviceUnavailable,
                    .object([("status", .string("not_ready")), ("reason", .string("start_window"))]))
            }
            return HTTPSupport.json(.ok, .object([("status", .string("ready"))]))
        }
        // Aggregates for anyone on the listener; series that name agents only with the metrics or admin token.
        router.get("/metrics") { request, _ in
            let agentSeries = cp.mayReadAgentMetrics(request.headers[.authorization])
            return Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: .init(
                    byteBuffer: ByteBuffer(
                        string: Metrics.render(cp, gateway: gateway, mcp: mcp, agentSeries: agentSeries))))
        }
        router.get("/.well-known/jwks.json") { _, _ in
            var r = HTTPSupport.json(.ok, cp.jwks())
            r.headers[.cacheControl] = "max-age=60"
            r.headers[.contentType] = "application/jwk-set+json"
            return r
        }
        router.get("/.well-known/spiffe-bundle") { _, _ in HTTPSupport.json(.ok, cp.spiffeBundle()) }
        router.get("/.well-known/oauth-authorization-server") { _, _ in
            HTTPSupport.json(.ok, cp.authorizationServerMetadata())
        }

        router.post("/v1/enroll") { request, context in
            if let limited = limitedSource(cp, "enroll", context) { return limited }
            return await respond(cp, style: .enroll, audit: ("agent.enroll", request, context)) {
                () throws(WardenError) in
                let dpop = try HTTPSupport.single(request, .dpop, code: .invalidDPoPProof)
                let body = try await HTTPSupport.body(request, limit: HTTPSupport.maxJSONBytes)
                let json = try parseJSON(body)
                let agent = try cp.enroll(body: json, dpop: dpop, base: base)
                return HTTPSupport.json(
                    .ok,
                    .object([
                        ("agent_id", .string(agent.id)), ("spiffe_id", .string(agent.spiffeID.description)),
                        ("state", .string(agent.state.rawValue)), ("attestation", .string(agent.attestation ?? "")),
                        ("issuer", .string(cp.issuer)), ("token_endpoint", .string(cp.tokenEndpoint)),
                    ]))
            }
        }

        router.post("/v1/token") { request, context in
            if let limited = limitedSource(cp, "token", context) { return limited }
            return await respond(cp, style: .token, audit: ("token.request", request, context)) {
                () throws(WardenError) in
                let contentType = request.headers[.contentType]?.lowercased() ?? ""
                guard contentType.hasPrefix("application/x-www-form-urlencoded") else {
                    throw WardenError(.invalidRequest, "the token request must be application/x-www-form-urlencoded")
                }
                let dpop = try HTTPSupport.single(request, .dpop, code: .invalidDPoPProof)
                let body = try await HTTPSupport.body(request, limit: HTTPSupport.maxFormBytes)
                let form = try HTTPSupport.form(body)
                let cert = try await certificate(context)
                let granted = try await cp.auditedToken(
                    form: form, dpop: dpop, base: base, certificate: cert,
                    requestDigest: requestDigest(request, body: body), source: context.source)
                var response = HTTPSupport.json(.ok, granted.json)
                response.headers[HTTPField.Name("Pragma")!] = "no-cache"
                return response
            }
        }

        router.get("/v1/whoami") { request, context in
            if let limited = limitedSource(cp, nil, context) { return limited }
            return await respond(cp, style: .protected, audit: ("authenticate", request, context)) {
                () throws(WardenError) in
                let who = try authenticate(
                    cp, request, base: base, certificate: try await bearerCertificate(request, context))
                var pairs: [(String, JSONValue)] = [
                    ("spiffe_id", .string(who.agent.spiffeID.description)), ("agent_id", .string(who.agent.id)),
                    ("exp", .number(String(who.claims.expiresAt))), ("jti", .string(who.claims.jti)),
                    ("state", .string(who.agent.state.rawValue)),
                    ("trust", .number(String(cp.trust.score(who.agent)))),
                ]
                if let scope = who.claims.scope { pairs.append(("scope", .string(scope))) }
                if !who.claims.delegation.isEmpty {
                    pairs.append(("delegation", .array(who.claims.delegation.map { .string($0) })))
                    pairs.append(("subject", .string(who.claims.subject)))
                }
                return HTTPSupport.json(.ok, .object(pairs))
            }
        }

        router.post("/v1/svid") { request, context in
            if let limited = limitedSource(cp, nil, context) { return limited }
            return await respond(cp, style: .protected, audit: ("svid.issue", request, context)) {
                () throws(WardenError) in
                let who = try authenticate(
                    cp, request, base: base, certificate: try await bearerCertificate(request, context))
                let json = try parseJSON(try await HTTPSupport.body(request, limit: HTTPSupport.maxJSONBytes))
                guard let csr = json["csr"]?.stringValue else {
                    throw WardenError(.invalidRequest, "the body must be {\"csr\": \"<PEM>\"}")
                }
                let (chain, bundle, expires): (String, String, Int64)
                do throws(WardenError) {
                    (chain, bundle, expires) = try cp.issueSVID(csrPEM: csr, for: who)
                } catch {
                    throw error.naming(who.agent.spiffeID.description)
                }
                return HTTPSupport.json(
                    .ok,
                    .object([
                        ("spiffe_id", .string(who.agent.spiffeID.description)), ("svid", .string(chain)),
                        ("bundle", .string(bundle)), ("expires_at", .number(String(expires))),
                    ]))
            }
        }

        // Node agents (`warden node`): the agents they attest, and SVIDs for them.
        router.get("/v1/node/entries") { request, context in
            if let limited = limitedSource(cp, nil, context) { return limited }
            return await respond(cp, style: .protected, audit: ("node.entries", request, context)) {
                () throws(WardenError) in
                let who = try authenticate(
                    cp, request, base: base, certificate: try await bearerCertificate(request, context))
                return HTTPSupport.json(.ok, cp.nodeEntries(for: who))
            }
        }
        router.post("/v1/node/svid") { request, context in
            if let limited = limitedSource(cp, nil, context) { return limited }
            return await respond(cp, style: .protected, audit: ("svid.issue", request, context)) {
                () throws(WardenError) in
                let who = try authenticate(
                    cp, request, base: base, certificate: try await bearerCertificate(request, context))
                let json = try parseJSON(try await HTTPSupport.body(request, limit: HTTPSupport.maxJSONBytes))
                guard let agent = json["agent"]?.stringValue, let csr = json["csr"]?.stringValue else {
                    throw WardenError(.invalidRequest, "the body must be {\"agent\": \"<name>\", \"csr\": \"<PEM>\"}")
                }
                let (r, chain, bundle, expires): (AgentRecord, String, String, Int64)
                do throws(WardenError) {
                    (r, chain, bundle, expires) = try cp.issueNodeSVID(
                        agent: agent, csrPEM: csr, ttl: json["ttl"]?.integerValue, by: who)
                } catch {
                    throw error.naming(who.agent.spiffeID.description)
                }
                return HTTPSupport.json(
                    .ok,
                    .object([
                        ("spiffe_id", .string(r.spiffeID.description)), ("svid", .string(chain)),
                        ("bundle", .string(bundle)), ("expires_at", .number(String(expires))),
                    ]))
            }
        }
        router.post("/v1/node/jwt-svid") { request, context in
            if let limited = limitedSource(cp, nil, context) { return limited }
            return await respond(cp, style: .protected, audit: ("jwt_svid.issue", request, context)) {
                () throws(WardenError) in
                let who = try authenticate(
                    cp, request, base: base, certificate: try await bearerCertificate(request, context))
                let json = try parseJSON(try await HTTPSupport.body(request, limit: HTTPSupport.maxJSONBytes))
                guard let agent = json["agent"]?.stringValue, case .array(let items)? = json["audience"] else {
                    throw WardenError(
                        .invalidRequest, "the body must be {\"agent\": \"<name>\", \"audience\": [\"<aud>\", ...]}")
                }
                let audiences = items.compactMap(\.stringValue)
                guard audiences.count == items.count else {
                    throw WardenError(.invalidRequest, "audience must be a list of strings")
                }
                let (r, token, expires): (AgentRecord, String, Int64)
                do throws(WardenError) {
                    (r, token, expires) = try cp.issueJWTSVID(
                        agent: agent, audiences: audiences, ttl: json["ttl"]?.integerValue, by: who)
                } catch {
                    throw error.naming(who.agent.spiffeID.description)
                }
                return HTTPSupport.json(
                    .ok,
                    .object([
                        ("spiffe_id", .string(r.spiffeID.description)), ("svid", .string(token)),
                        ("expires_at", .number(String(expires))),
                    ]))
            }
        }

        // The admin API: one group, authenticated by its middleware.
        let admin = router.group("/v1/admin").add(middleware: AdminAuthentication(cp: cp))
        AdminRoutes.add(to: admin, cp)
        AuditRoutes.add(to: admin, cp)
        GatewayAdminRoutes.add(to: admin, cp, gateway: gateway, mcp: mcp)
        RiskAdminRoutes.add(to: admin, cp)
        if let mcp { MCPAdminRoutes.add(to: router, admin: admin, cp, mcp: mcp, base: base) }
        // The enforcement point's two front ends, registered as routes: `/r/<route>[/...]` for every method an HTTP
        // API uses, and `/mcp[/<server>]` (the MCP handler answers 405 for the methods MCP does not use).
        if let gateway {
            for method in gatewayMethods {
                // One recursive wildcard: the handler parses the raw path itself (a `:route` capture would be a
                // second parameter the router builds on every call, for nothing).
                router.on("/r/**", method: method) { request, context in
                    await gateway.handle(request, context: context, base: base, mutualTLS: mutualTLS)
                }
                if let mcp {
                    for path in ["/mcp", "/mcp/:server"] {
                        router.on(RouterPath(path), method: method) { request, context in
                            await mcp.handle(request, context: context, base: base, mutualTLS: mutualTLS)
                        }
                    }
                }
            }
        }
        return router
    }

    /// The methods `/r/` and `/mcp` take: those of HTTP APIs. Others (CONNECT, TRACE, WebDAV's) are not routed.
    static let gatewayMethods: [HTTPRequest.Method] = [.get, .head, .post, .put, .patch, .delete, .options]

    /// 429 with `Retry-After` when the client's address has used up its requests to `endpoint` (`enroll`, `token`)
    /// or its unauthenticated refusals; counted in the source's refusal summary.
    static func limitedSource(_ cp: ControlPlane, _ endpoint: String?, _ context: WardenRequestContext) -> Response? {
        let source = context.source
        guard let wait = cp.sources.blocked(source) ?? endpoint.flatMap({ cp.sources.take($0, source) }) else {
            return nil
        }
        cp.sources.refused(source, reason: "rate_limited", now: cp.now())
        var response = HTTPSupport.json(
            .tooManyRequests,
            .object([
                ("error", .string("slow_down")),
                ("error_description", .string("too many requests from this address; retry later")),
                ("reason", .string("rate_limited")),
            ]))
        response.headers[.retryAfter] = String(max(1, Int(min(wait, 86_400).rounded(.up))))
        return response
    }

    /// The client's address, when the connection has one.
    /// `sha256:<hex>` over the method, the path and the body: what the audit log records instead of the request.
    static func requestDigest(_ request: Request, body: [UInt8]) -> String {
        var h = SHA256()
        h.update(data: Array("\(request.method.rawValue) \(request.uri.path)\n".utf8))
        h.update(data: body)
        return "sha256:" + Attestation.hex(h.finalize())
    }

    static func authenticate(
        _ cp: ControlPlane, _ request: Request, base: String, certificate: ClientCertificate?
    ) throws(WardenError) -> AuthenticatedAgent {
        let authorization = try HTTPSupport.single(request, .authorization, code: .invalidToken)
        let dpop = try HTTPSupport.single(request, .dpop, code: .invalidDPoPProof)
        return try cp.authenticate(
            authorization: authorization, dpop: dpop, method: request.method.rawValue, path: request.uri.path,
            base: base, certificate: certificate)
    }

    static func parseJSON(_ bytes: [UInt8]) throws(WardenError) -> JSONValue {
        do {
            return try JSONValue.parse(bytes, maxDepth: 16, maxBytes: HTTPSupport.maxJSONBytes)
        } catch {
            throw WardenError(.invalidRequest, "the body is not valid JSON: \(error.message)")
        }
    }

    /// Runs a handler, turning its error into the endpoint's error response, and adds `DPoP-Nonce` when nonces are on.
    /// A refusal at an endpoint whose successes are recorded elsewhere is recorded here (`audit`: the action, the
    /// request and its context); the nonce challenge (`use_dpop_nonce`) is part of the protocol, not a refusal.
    static func respond(
        _ cp: ControlPlane, style: ErrorStyle, audit: (String, Request, WardenRequestContext)? = nil,
        _ body: () async throws(WardenError) -> Response
    ) async -> Response {
        let nonce = cp.currentNonce()
        var response: Response
        do throws(WardenError) {
            response = try await body()
        } catch {
            // Not recorded here: the nonce challenge (part of the protocol, not a refusal) and an attestation
            // failure (the store recorded it with the enrollment it ended).
            if let (action, request, context) = audit, error.code != .useDPoPNonce, error.code != .attestationFailed {
                cp.auditDenial(
                    action: action, error: error, resource: request.uri.path, source: context.source,
                    agent: error.agent.flatMap { cp.agents.agent($0) })
            }
            response = HTTPSupport.response(error, style: style, nonce: nonce)
        }
        if let nonce { response.headers[.dpopNonce] = nonce }
        return response
    }
}
