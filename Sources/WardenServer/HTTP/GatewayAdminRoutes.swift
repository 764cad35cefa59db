import Cedar
import HTTPTypes
import Hummingbird
import WardenControlPlane
import WardenCore
import WardenGateway

extension SecretStore.Info {
    /// Name and times; never the value.
    public var json: JSONValue {
        .object([
            ("name", .string(name)), ("created_at", .number(String(createdAt))),
            ("updated_at", .number(String(updatedAt))),
        ])
    }
}

extension PolicyEngine.Snapshot {
    public var json: JSONValue {
        .object([
            ("digest", .string(digest)), ("policies", .number(String(count))),
            ("ids", .array(policies.policies.map { .string($0.id) })),
            ("files", .array(files.map { .string($0) })), ("loaded_at", .number(String(loadedAt))),
        ])
    }
}

/// `/v1/admin/policies` (current set, reload) and `/v1/admin/secrets` (brokered credentials: names and ages, set,
/// delete; values are write-only).
enum GatewayAdminRoutes {
    static func add(
        to admin: RouterGroup<WardenRequestContext>, _ cp: ControlPlane, gateway: Gateway? = nil,
        mcp: MCPGateway? = nil
    ) {
        // Unused grants over a window (default 7 days): permits that decided no allowed call, manifest scopes no
        // allowed call used.
        admin.get("/policies/unused") { request, context in
            let text = request.uri.queryParameters["since"].map(String.init) ?? "7d"
            guard let seconds = WardenConfig.parseDuration(text), seconds > 0, seconds <= 366 * 86_400 else {
                throw WardenError(.invalidRequest, "since must be a duration such as 24h, 7d or 30d (at most 366d)")
            }
            let u = try cp.policyUsage(since: cp.clock.wallMicros - seconds * 1_000_000)
            return HTTPSupport.json(
                .ok,
                .object([
                    ("since", .string(AuditEvent.rfc3339(micros: u.since))),
                    ("until", .string(AuditEvent.rfc3339(micros: u.until))),
                    ("allowed_decisions", .number(String(u.decisions))), ("truncated", .bool(u.truncated)),
                    ("unused_permits", .array(u.unusedPermits.map { .string($0) })),
                    (
                        "uses",
                        .object(u.uses.sorted { $0.key < $1.key }.map { ($0.key, .number(String($0.value))) })
                    ),
                    (
                        "unused_scopes",
                        .array(
                            u.unusedScopes.map { a in
                                .object([("agent", .string(a.agent)), ("scopes", .array(a.scopes.map { .string($0) }))])
                            })
                    ),
                ]))
        }
        // Who can reach a route or call a tool: every agent, always / never / conditional with the reason and the
        // deciding policies.
        if let gateway {
            // Why an agent would be allowed or refused a call now: the layers, the decision, every policy's trace.
            admin.get("/policies/explain") { request, context in
                let q = request.uri.queryParameters
                if let agentRef = q["agent"].map(String.init), let tool = q["tool"].map(String.init),
                    q["route"] == nil, let slash = tool.firstIndex(of: "/")
                {
                    guard let mcp else { throw WardenError(.notFound, "no MCP servers are configured") }
                    let arguments: JSONValue
                    do {
                        arguments = try JSONValue.parse(
                            q["arguments"].map(String.init) ?? "{}", maxDepth: 16, maxBytes: 64 * 1024)
                    } catch {
                        throw WardenError(.invalidRequest, "arguments must be a JSON object")
                    }
                    let (refused, e) = try mcp.explain(
                        agent: try cp.agent(agentRef), server: String(tool[..<slash]),
                        tool: String(tool[tool.index(after: slash)...]), arguments: arguments)
                    return HTTPSupport.json(.ok, Self.explanation(refused, e))
                }
                guard let agentRef = q["agent"].map(String.init), let route = q["route"].map(String.init) else {
                    throw WardenError(
                        .invalidRequest,
                        "explain needs ?agent=<name>&route=<name>[&method=&path=] or ?agent=<name>&tool=<server>/<tool>[&arguments=<json>]"
                    )
                }
                let agent = try cp.agent(agentRef)
                let (refused, e) = try gateway.explain(
                    agent: agent, route: route, method: q["method"].map(String.init) ?? "GET",
                    path: q["path"].map(String.init) ?? "/")
                return HTTPSupport.json(.ok, Self.explanation(refused, e))
            }
            admin.get("/policies/who-can") { request, context in
                let route = request.uri.queryParameters["route"].map(String.init) ?? ""
                let tool = request.uri.queryParameters["tool"].map(String.init) ?? ""
                let answers: [Gateway.Access]
                let target: (String, JSONValue)
                let action: String
                if !route.isEmpty, tool.isEmpty {
                    answers = try gateway.whoCan(route: route, agents: try cp.store.agents())
                    target = ("route", .string(route))
                    action = #"Action::"call""#
                } else if route.isEmpty, let slash = tool.firstIndex(of: "/") {
                    guard let mcp else { throw WardenError(.notFound, "no MCP servers are configured") }
                    answers = try mcp.whoCan(
                        server: String(tool[..<slash]), tool: String(tool[tool.index(after: slash)...]),
                        agents: try cp.store.agents())
                    target = ("tool", .string(tool))
                    action = #"Action::"mcp:tools/call""#
                } else {
                    throw WardenError(.invalidRequest, "who-can needs ?route=<name> or ?tool=<server>/<tool>")
                }
                return HTTPSupport.json(
                    .ok,
                    .object([
                        target, ("action", .string(action)),
                        (
                            "agents",
                            .array(
                                answers.map { a in
                                    .object([
                                        ("name", .string(a.agent.manifest.name)),
                                        ("spiffe_id", .string(a.agent.spiffeID.description)),
                                        ("access", .string(a.kind.rawValue)), ("reason", .string(a.reason)),
                                        ("policies", .array(a.policies.map { .string($0) })),
                                        ("conditions", .array(a.conditions.map { .string($0) })),
                                    ])
                                })
                        ),
                    ]))
            }
        }
        // A policy change's effect: the policies added, removed and changed, and with `since`, the recorded calls
        // the change would newly allow or newly deny (`warden policy diff OLD NEW --replay`).
        admin.post("/policies/diff") { request, context in
            let json: JSONValue
            do {
                json = try JSONValue.parse(
                    try await HTTPSupport.body(request, limit: 40 << 20), maxDepth: 8, maxBytes: 40 << 20)
            } catch let e as WardenError {
                throw e
            } catch {
                throw WardenError(.invalidRequest, "the body is not valid JSON")
            }
            func set(_ key: String) throws(WardenError) -> PolicyEngine.Snapshot {
                guard case .array(let files)? = json[key], files.count <= 1024 else {
                    throw WardenError(
                        .invalidRequest, "the body needs \"old\" and \"new\": lists of {\"name\", \"text\"}")
                }
                var texts: [(name: String, text: String)] = []
                for f in files {
                    guard let name = f["name"]?.stringValue, let text = f["text"]?.stringValue else {
                        throw WardenError(.invalidRequest, "each policy file is {\"name\": ..., \"text\": ...}")
                    }
                    texts.append((name, text))
                }
                do throws(WardenError) {
                    return try PolicyEngine.load(texts: texts, now: cp.now())
                } catch {
                    throw WardenError(.invalidRequest, "\(key): \(error.message)")
                }
            }
            let (old, new) = (try set("old"), try set("new"))
            var out: [(String, JSONValue)] = [("policies", PolicyChanges(old: old, new: new).json)]
            if let text = json["since"]?.stringValue {
                guard let seconds = WardenConfig.parseDuration(text), seconds > 0, seconds <= 366 * 86_400 else {
                    throw WardenError(.invalidRequest, "since must be a duration such as 24h, 7d or 30d (at most 366d)")
                }
                let since = cp.clock.wallMicros - seconds * 1_000_000
                guard let gateway else {
                    throw WardenError(
                        .notFound, "replay needs the gateway (its routes), which this server does not run")
                }
                let r = try gateway.replay(old: old, new: new, since: since)
                func changes(_ list: [Gateway.ReplayChange]) -> JSONValue {
                    .array(
                        list.map { c in
                            .object([
                                ("seq", .number(String(c.seq))), ("time", .string(c.time)), ("agent", .string(c.agent)),
                                ("route", .string(c.route)), ("method", .string(c.method)), ("path", .string(c.path)),
                                ("old", .string(c.old.allowed ? "allow" : "deny")),
                                ("old_reason", .string(c.old.message)),
                                ("old_policies", .array(c.old.policies.map { .string($0) })),
                                ("new", .string(c.new.allowed ? "allow" : "deny")),
                                ("new_reason", .string(c.new.message)),
                                ("new_policies", .array(c.new.policies.map { .string($0) })),
                            ])
                        })
                }
                out.append(
                    (
                        "replay",
                        .object([
                            ("since", .string(AuditEvent.rfc3339(micros: since))),
                            ("decisions_read", .number(String(r.read))), ("truncated", .bool(r.truncated)),
                            ("replayed", .number(String(r.replayed))),
                            (
                                "not_replayed",
                                .object(
                                    r.skipped.sorted { $0.key < $1.key }.map { ($0.key, .number(String($0.value))) })
                            ),
                            ("newly_allowed_count", .number(String(r.newlyAllowedCount))),
                            ("newly_denied_count", .number(String(r.newlyDeniedCount))),
                            ("newly_allowed", changes(r.newlyAllowed)), ("newly_denied", changes(r.newlyDenied)),
                        ])
                    ))
            }
            return HTTPSupport.json(.ok, .object(out))
        }
        // The posture report (`warden posture`).
        admin.get("/posture") { request, context in
            let text = request.uri.queryParameters["window"].map(String.init) ?? "30d"
            guard let seconds = WardenConfig.parseDuration(text), seconds >= 86_400, seconds <= 366 * 86_400 else {
                throw WardenError(.invalidRequest, "window must be a duration of 1d to 366d")
            }
            return HTTPSupport.json(.ok, try cp.posture(windowDays: seconds / 86_400))
        }
        admin.get("/policies") { request, context in
            HTTPSupport.json(.ok, cp.policies.snapshot.json)
        }
        admin.post("/policies/reload") { request, context in
            HTTPSupport.json(.ok, try await cp.reloadPolicies(actor: "admin").json)
        }
        admin.get("/secrets") { request, context in
            HTTPSupport.json(.ok, .object([("secrets", .array(cp.secrets.list().map(\.json)))]))
        }
        admin.put("/secrets/:name") { request, context in
            let name = context.parameters.get("name") ?? ""
            // The raw value is the body (a trailing newline, as `echo` writes, is not part of it).
            var value = try await HTTPSupport.body(request, limit: SecretStore.maxValueBytes + 2)
            if value.last == UInt8(ascii: "\n") { value.removeLast() }
            if value.last == UInt8(ascii: "\r") { value.removeLast() }
            try cp.secrets.set(name, value: value, now: cp.now())
            guard let info = cp.secrets.list().first(where: { $0.name == name }) else {
                throw WardenError(.storage, "the secret was not stored")
            }
            return HTTPSupport.json(.ok, info.json)
        }
        admin.delete("/secrets/:name") { request, context in
            let name = context.parameters.get("name") ?? ""
            try cp.secrets.delete(name)
            return HTTPSupport.json(.ok, .object([("deleted", .string(name))]))
        }
    }

    /// `explain`'s answer: the decision (refused before the policy when a layer refuses), the determining policies
    /// and errors, for a deny the permits that came closest and why they did not apply, and every policy's trace.
    static func explanation(_ refused: String?, _ e: Explanation) -> JSONValue {
        func why(_ o: Explanation.Outcome) -> (String, String) {
            switch o {
            case .applies: ("applies", "")
            case .scopeMismatch(let parts): ("scope_mismatch", "does not match: " + parts.joined(separator: ", "))
            case .conditionFailed(let clause): ("condition_false", clause)
            case .error(let message): ("error", message)
            }
        }
        func trace(_ t: Explanation.Trace) -> JSONValue {
            let (outcome, detail) = why(t.outcome)
            var pairs: [(String, JSONValue)] = [
                ("id", .string(t.id)), ("effect", .string(t.effect.rawValue)), ("outcome", .string(outcome)),
            ]
            if !detail.isEmpty { pairs.append(("detail", .string(detail))) }
            return .object(pairs)
        }
        let allowed = refused == nil && e.response.decision == .allow
        var pairs: [(String, JSONValue)] = [("decision", .string(allowed ? "allow" : "deny"))]
        if let refused { pairs.append(("refused_before_policy", .string(refused))) }
        pairs.append(("policy_decision", .string(e.response.decision == .allow ? "allow" : "deny")))
        pairs.append(("determining", .array(e.response.reasons.map { .string($0) })))
        pairs.append(
            ("errors", .array(e.response.errors.map { .string("\($0.policyID): \($0.message)") })))
        if e.response.decision == .deny {
            let closest = e.traces.filter { $0.effect == .permit }.sorted { $0.closeness > $1.closeness }.prefix(3)
            pairs.append(("closest_permits", .array(closest.map(trace))))
        }
        pairs.append(("policies", .array(e.traces.map(trace))))
        return .object(pairs)
    }
}
