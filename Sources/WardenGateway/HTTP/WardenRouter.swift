import Cedar
import HTTPTypes
import Hummingbird
import WardenCore
import WardenIdentity

/// The HTTP interface of the control plane (`../shared/DESIGN.md`, "External interfaces").
public enum WardenRouter {
    /// Builds the router for `cp`. `base` is the URL clients use to reach this listener (DPoP `htu` checks); on a
    /// `mutualTLS` listener, a client certificate (an X.509-SVID) may authenticate token requests and bind tokens
    /// (RFC 8705).
    public static func build(_ cp: ControlPlane, base: String? = nil, mutualTLS: Bool = false)
        -> Router<WardenRequestContext>
    {
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
            cp.store.ping()
                ? HTTPSupport.json(.ok, .object([("status", .string("ready"))]))
                : HTTPSupport.json(
                    .serviceUnavailable, .object([("status", .string("not_ready")), ("reason", .string("store"))]))
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

        router.post("/v1/enroll") { request, _ in
            await respond(cp, style: .enroll) { () throws(WardenError) in
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
            await respond(cp, style: .token) { () throws(WardenError) in
                let contentType = request.headers[.contentType]?.lowercased() ?? ""
                guard contentType.hasPrefix("application/x-www-form-urlencoded") else {
                    throw WardenError(.invalidRequest, "the token request must be application/x-www-form-urlencoded")
                }
                let dpop = try HTTPSupport.single(request, .dpop, code: .invalidDPoPProof)
                let form = try HTTPSupport.form(try await HTTPSupport.body(request, limit: HTTPSupport.maxFormBytes))
                let cert = try await certificate(context)
                var response = HTTPSupport.json(
                    .ok, try cp.token(form: form, dpop: dpop, base: base, certificate: cert).json)
                response.headers[HTTPField.Name("Pragma")!] = "no-cache"
                return response
            }
        }

        router.get("/v1/whoami") { request, context in
            await respond(cp, style: .protected) { () throws(WardenError) in
                let who = try authenticate(
                    cp, request, base: base, certificate: try await bearerCertificate(request, context))
                var pairs: [(String, JSONValue)] = [
                    ("spiffe_id", .string(who.agent.spiffeID.description)), ("agent_id", .string(who.agent.id)),
                    ("exp", .number(String(who.claims.expiresAt))), ("jti", .string(who.claims.jti)),
                    ("state", .string(who.agent.state.rawValue)),
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
            await respond(cp, style: .protected) { () throws(WardenError) in
                let who = try authenticate(
                    cp, request, base: base, certificate: try await bearerCertificate(request, context))
                let json = try parseJSON(try await HTTPSupport.body(request, limit: HTTPSupport.maxJSONBytes))
                guard let csr = json["csr"]?.stringValue else {
                    throw WardenError(.invalidRequest, "the body must be {\"csr\": \"<PEM>\"}")
                }
                let (chain, bundle, expires) = try cp.issueSVID(csrPEM: csr, for: who)
                return HTTPSupport.json(
                    .ok,
                    .object([
                        ("spiffe_id", .string(who.agent.spiffeID.description)), ("svid", .string(chain)),
                        ("bundle", .string(bundle)), ("expires_at", .number(String(expires))),
                    ]))
            }
        }

        AdminRoutes.add(to: router, cp)
        return router
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
    static func respond(
        _ cp: ControlPlane, style: ErrorStyle, _ body: () async throws(WardenError) -> Response
    ) async -> Response {
        let nonce = cp.currentNonce()
        var response: Response
        do throws(WardenError) {
            response = try await body()
        } catch {
            response = HTTPSupport.response(error, style: style, nonce: nonce)
        }
        if let nonce { response.headers[.dpopNonce] = nonce }
        return response
    }
}
