import Cedar
import HTTPTypes
import Hummingbird
import WardenControlPlane
import WardenCore
import WardenGateway
import WardenStore

extension MCPToolRow {
    public var json: JSONValue {
        var pairs: [(String, JSONValue)] = [
            ("server", .string(server)), ("tool", .string(tool)), ("digest", .string(digest)),
            ("state", .string(state)),
            ("flags", .array(flags.split(separator: ",").map { .string(String($0)) })),
            ("first_seen", .number(String(firstSeen))),
        ]
        if let decidedAt { pairs.append(("decided_at", .number(String(decidedAt)))) }
        if let decidedBy { pairs.append(("decided_by", .string(decidedBy))) }
        pairs.append(("definition", (try? JSONValue.parse(definition)) ?? .string(definition)))
        return .object(pairs)
    }
}

/// RFC 9728 protected-resource metadata for the MCP endpoints, and the operator's MCP API: tool pins
/// (`/v1/admin/mcp/tools`) and calls held for approval (`/v1/admin/approvals`).
enum MCPAdminRoutes {
    static func add(
        to router: Router<WardenRequestContext>, admin: RouterGroup<WardenRequestContext>, _ cp: ControlPlane,
        mcp: MCPGateway, base: String
    ) {
        // RFC 9728 §3: the metadata of `<base>/mcp[/<server>]` at the well-known path with the resource's path
        // appended (and at the bare well-known path for the aggregate).
        @Sendable func metadata(_ path: String) -> Response {
            var scopes: [JSONValue] = []
            for (name, _) in cp.config.mcpServers.sorted(by: { $0.key < $1.key })
            where path == "/mcp" || path == "/mcp/\(name)" {
                scopes.append(.string("tool:\(name)/*"))
            }
            var r = HTTPSupport.json(
                .ok,
                .object([
                    ("resource", .string(base + path)),
                    ("authorization_servers", .array([.string(cp.issuer)])),
                    ("bearer_methods_supported", .array([.string("header")])),
                    ("scopes_supported", .array(scopes)),
                    ("dpop_signing_alg_values_supported", .array([.string("ES256")])),
                    ("dpop_bound_access_tokens_required", .bool(cp.config.tlsBase == nil)),
                    ("tls_client_certificate_bound_access_tokens", .bool(cp.config.tlsBase != nil)),
                    ("resource_name", .string("Warden MCP gateway")),
                ]))
            r.headers[.cacheControl] = "max-age=300"
            return r
        }
        router.get("/.well-known/oauth-protected-resource") { _, _ in metadata("/mcp") }
        router.get("/.well-known/oauth-protected-resource/mcp") { _, _ in metadata("/mcp") }
        router.get("/.well-known/oauth-protected-resource/mcp/:server") { _, context in
            let server = context.parameters.get("server") ?? ""
            guard cp.config.mcpServers[server] != nil else {
                return HTTPSupport.json(.notFound, .object([("error", .string("not_found"))]))
            }
            return metadata("/mcp/\(server)")
        }

        admin.get("/mcp/tools") { request, context in
            let server = request.uri.queryParameters.get("server")
            let rows = try cp.store.mcpTools(server: server)
            return HTTPSupport.json(.ok, .object([("tools", .array(rows.map(\.json)))]))
        }
        admin.get("/mcp/tools/:server/:tool") { request, context in
            let server = context.parameters.get("server") ?? ""
            let tool = context.parameters.get("tool") ?? ""
            let rows = try cp.store.mcpTools(server: server).filter { $0.tool == tool }
            guard !rows.isEmpty else { throw WardenError(.notFound, "no recorded definition of \(server)/\(tool)") }
            return HTTPSupport.json(
                .ok,
                .object([
                    ("server", .string(server)), ("tool", .string(tool)),
                    ("pinned", rows.first { $0.state == "approved" }?.json ?? .null),
                    ("pending", .array(rows.filter { $0.state == "pending" }.map(\.json))),
                    (
                        "history",
                        .array(rows.filter { $0.state == "superseded" || $0.state == "rejected" }.map(\.json))
                    ),
                ]))
        }
        for (verb, approve) in [("approve", true), ("reject", false)] {
            admin.post("/mcp/tools/:server/:tool/\(verb)") { request, context in
                let server = context.parameters.get("server") ?? ""
                let tool = context.parameters.get("tool") ?? ""
                let body = try await HTTPSupport.body(request, limit: 4096)
                var digest: String?
                if !body.isEmpty {
                    guard let v = try? JSONValue.parse(body), case .object = v else {
                        throw WardenError(.invalidRequest, "the body is {\"digest\": \"sha256:...\"} or empty")
                    }
                    digest = v["digest"]?.stringValue
                }
                let row = try mcp.pins.decide(
                    server: server, tool: tool, digest: digest, approve: approve, actor: "admin")
                // The next call or listing sees the decision.
                mcp.servers[server]?.catalogue.withLock { $0 = nil }
                return HTTPSupport.json(.ok, row.json)
            }
        }
        admin.get("/approvals") { request, context in
            HTTPSupport.json(.ok, .object([("approvals", .array(mcp.approvals.list().map(\.json)))]))
        }
        for (verb, approve) in [("approve", true), ("deny", false)] {
            admin.post("/approvals/:id/\(verb)") { request, context in
                let id = context.parameters.get("id") ?? ""
                let body = try await HTTPSupport.body(request, limit: 4096)
                var reason: String?
                var actor = "admin"
                if !body.isEmpty {
                    guard let v = try? JSONValue.parse(body), case .object = v else {
                        throw WardenError(
                            .invalidRequest, "the body is {\"reason\": \"...\", \"approver\": \"...\"} or empty")
                    }
                    reason = v["reason"]?.stringValue.map { String($0.prefix(500)) }
                    if let a = v["approver"]?.stringValue, !a.isEmpty {
                        actor = "admin:" + String(a.prefix(128))
                    }
                }
                guard let item = mcp.approvals.decide(id, approve: approve, actor: actor, reason: reason) else {
                    throw WardenError(.notFound, "no call waiting for approval with id \(id.prefix(64))")
                }
                var details: [(String, String)] = [
                    ("approval_id", item.id), ("tool", "\(item.server)/\(item.tool)"),
                    ("arguments_digest", item.argumentsDigest),
                ]
                if let reason { details.append(("reason", reason)) }
                try? cp.audit.submit(
                    AuditEvent(
                        kind: .admin, action: approve ? "mcp.approval.approve" : "mcp.approval.deny", actor: actor,
                        agent: item.agent, agentID: item.agentID, resource: "Tool::\"\(item.server)/\(item.tool)\"",
                        decision: approve ? .allow : .deny, details: details))
                return HTTPSupport.json(
                    .ok, item.json.setting("decision", .string(approve ? "approved" : "denied")))
            }
        }
    }
}
