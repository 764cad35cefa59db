import Cedar
import HTTPTypes
import Hummingbird
import WardenControlPlane
import WardenCore
import WardenGateway

extension AgentRecord {
    /// The agent as the admin API and CLI show it.
    public var adminJSON: JSONValue {
        var pairs: [(String, JSONValue)] = [
            ("agent_id", .string(id)), ("name", .string(name)), ("spiffe_id", .string(spiffeID.description)),
            ("state", .string(state.rawValue)), ("owner", .string(manifest.owner)),
            ("manifest_digest", .string(manifestDigest)), ("manifest", manifest.json),
            ("created_at", .number(String(createdAt))), ("updated_at", .number(String(updatedAt))),
        ]
        if let keyThumbprint { pairs.append(("key_thumbprint", .string(keyThumbprint))) }
        if let attestation { pairs.append(("attestation", .string(attestation))) }
        return .object(pairs)
    }
}

extension AgentEvent {
    public var json: JSONValue {
        var pairs: [(String, JSONValue)] = [
            ("seq", .number(String(seq))), ("at", .number(String(at))), ("kind", .string(kind)),
            ("actor", .string(actor)), ("reason", .string(reason)),
        ]
        if let from { pairs.append(("from", .string(from.rawValue))) }
        if let to { pairs.append(("to", .string(to.rawValue))) }
        return .object(pairs)
    }
}

/// `/v1/admin/...`: agents, lifecycle, join tokens, token revocation and key rotation, behind the admin token.
enum AdminRoutes {
    static func add(to admin: RouterGroup<WardenRequestContext>, _ cp: ControlPlane) {

        admin.post("/agents") { request, context in
            let body = try await HTTPSupport.body(request, limit: HTTPSupport.maxJSONBytes)
            let manifest = try AgentManifest(
                parsing: String(decoding: body, as: UTF8.self), file: "request body")
            return HTTPSupport.json(.created, try cp.register(manifest: manifest).json)
        }
        admin.get("/agents") { request, context in
            HTTPSupport.json(.ok, .object([("agents", .array(try cp.store.agents().map(\.adminJSON)))]))
        }
        admin.get("/agents/:ref") { request, context in
            HTTPSupport.json(.ok, try cp.agent(try ref(context)).adminJSON)
        }
        admin.get("/agents/:ref/events") { request, context in
            let agent = try cp.agent(try ref(context))
            return HTTPSupport.json(
                .ok, .object([("events", .array(try cp.store.events(agentID: agent.id).map(\.json)))]))
        }
        admin.post("/agents/:ref/:action") { request, context in
            let agentRef = try ref(context)
            let action = context.parameters.get("action") ?? ""
            let body = try await HTTPSupport.body(request, limit: HTTPSupport.maxJSONBytes)
            let json = body.isEmpty ? JSONValue.object([]) : try WardenRouter.parseJSON(body)
            let reason = json["reason"]?.stringValue ?? "admin \(action)"
            let target: AgentState
            switch action {
            case "quarantine": target = .quarantined
            case "activate", "release": target = .active
            case "revoke": target = .revoked
            case "decommission": target = .decommissioned
            case "join-token":
                return HTTPSupport.json(.created, try cp.newJoinToken(agent: agentRef).json)
            default:
                throw WardenError(
                    .notFound, "unknown action '\(action)' (quarantine, activate, revoke, decommission, join-token)"
                )
            }
            return HTTPSupport.json(
                .ok, try cp.transition(agent: agentRef, to: target, reason: reason).adminJSON)
        }
        admin.post("/revocations") { request, context in
            let json = try WardenRouter.parseJSON(
                try await HTTPSupport.body(request, limit: HTTPSupport.maxJSONBytes))
            guard let jti = json["jti"]?.stringValue else {
                throw WardenError(.invalidRequest, "the body must be {\"jti\": \"...\", \"reason\": \"...\"}")
            }
            let reason = json["reason"]?.stringValue ?? "revoked by admin"
            try cp.revokeToken(jti: jti, reason: reason, agent: json["agent"]?.stringValue)
            return HTTPSupport.json(.ok, .object([("revoked", .string(jti))]))
        }
        admin.post("/keys/rotate") { request, context in
            let kid = try cp.rotateSigningKey()
            return HTTPSupport.json(.ok, .object([("kid", .string(kid))]))
        }
    }

    static func ref(_ context: WardenRequestContext) throws(WardenError) -> String {
        guard let r = context.parameters.get("ref"), !r.isEmpty, r.utf8.count <= 2048 else {
            throw WardenError(.invalidRequest, "an agent id or name is required")
        }
        return r.removingPercentEncoding ?? r
    }
}

/// Every `/v1/admin` endpoint is behind this, as middleware on the group (never a guard per handler): exactly one
/// `Authorization: Bearer <admin token>`, compared in constant time, or 403 and an `admin.authenticate` refusal on the
/// record. A `WardenError` an admin handler throws becomes its JSON answer here, in one place.
struct AdminAuthentication: RouterMiddleware {
    typealias Context = WardenRequestContext
    let cp: ControlPlane

    func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        let values = request.headers[values: .authorization]
        guard values.count == 1, cp.isAdmin(values.first) else {
            let error = WardenError(.accessDenied, "the admin API needs Authorization: Bearer <admin token>")
            cp.auditDenial(
                action: "admin.authenticate", error: error, resource: request.uri.path, source: context.source)
            return HTTPSupport.response(error, style: .admin, nonce: nil)
        }
        do {
            return try await next(request, context)
        } catch let error as WardenError {
            return HTTPSupport.response(error, style: .admin, nonce: nil)
        }
    }
}
