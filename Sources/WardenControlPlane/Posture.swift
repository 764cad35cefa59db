import Cedar
import Foundation
import WardenAudit
import WardenCore

/// The posture report (`warden posture`): the inventory of non-human identities and the evidence of how well they are
/// governed, from the server's own records (agents and their lifecycle events, join tokens, signing keys, the policy
/// set, the audit log over a window): attestation strength, credential ages, idle agents, over-permissive policies,
/// unused grants, refusals and detections, time to containment, the share of traffic from verified identities, and a
/// maturity level from 1 to 5, each level with the checks that decide it.
extension ControlPlane {
    /// Days of audit log the activity figures cover.
    public static let postureWindowDays: Int64 = 30

    /// The report as JSON (the CLI renders text, Markdown and HTML from it).
    public func posture(windowDays: Int64 = postureWindowDays, maxEntries: Int = 1_000_000) throws(WardenError)
        -> JSONValue
    {
        let now = self.now()
        let day: Int64 = 86_400
        let since = clock.wallMicros - windowDays * day * 1_000_000
        let records = try store.agents()

        // Activity over the window: one pass over the decisions.
        var lastSeen: [String: Int64] = [:]
        var decisions = 0
        var verified = 0
        var denied = 0
        var deniedBy: [String: Int] = [:]
        var truncated = false
        var q = AuditLog.Query()
        q.since = since
        q.kind = .decision
        q.limit = 1000
        reading: while true {
            let rows = try audit.query(q)
            for (_, text) in rows {
                guard let e = try? JSONValue.parse(text) else { continue }
                decisions += 1
                if let agent = e["agent"]?.stringValue {
                    verified += 1
                    let t = e["time"]?.stringValue.flatMap(AuditEvent.parseRFC3339).map { $0 / 1_000_000 } ?? now
                    lastSeen[agent] = max(lastSeen[agent] ?? 0, t)
                }
                if e["decision"]?.stringValue == "deny" {
                    denied += 1
                    deniedBy[e["reason"]?.stringValue ?? "unknown", default: 0] += 1
                }
                if decisions >= maxEntries {
                    truncated = true
                    break reading
                }
            }
            guard let last = rows.last, rows.count == q.limit else { break }
            q.after = last.0
        }

        // Detections over the window: the alert records.
        var alerts = 0
        var bySeverity: [String: Int] = [:]
        var containments: [Double] = []
        var after: Int64 = 0
        while alerts < 100_000 {
            let page = try RiskHub.alerts(in: audit, after: after, limit: 1000)
            for a in page.alerts {
                guard let t = a["time"]?.stringValue.flatMap(AuditEvent.parseRFC3339), t >= since else { continue }
                alerts += 1
                bySeverity[a["severity"]?.stringValue ?? "unknown", default: 0] += 1
                let actions = (a["actions"]?.arrayValue ?? []).compactMap(\.stringValue)
                if actions.contains(where: { ["quarantine", "revoke", "throttle"].contains($0) }),
                    case .number(let text)? = a["containment_ms"], let ms = Double(text)
                {
                    containments.append(ms)
                }
            }
            guard page.next != after else { break }
            after = page.next
        }

        // The inventory.
        var byState: [String: Int] = [:]
        var byStrength: [String: Int] = [:]
        var agentRows: [JSONValue] = []
        var idle: [String] = []
        var neverSeen: [String] = []
        var oldKeys: [String] = []
        for r in records {
            byState[r.state.rawValue, default: 0] += 1
            guard r.state == .active || r.state == .quarantined || r.state == .pending else { continue }
            let strength = Self.attestationStrength(r)
            if r.state == .active { byStrength[strength, default: 0] += 1 }
            let events = (try? store.events(agentID: r.id)) ?? []
            let enrolledAt = events.last {
                $0.kind == "enrolled" || ($0.kind == "state_changed" && $0.from == .pending)
            }?
            .at
            let svidEvent = events.last { $0.kind == "svid_issued" }
            let svidExpiry = svidEvent.flatMap { e in
                e.reason.range(of: "expires ").flatMap { Int64(e.reason[$0.upperBound...].prefix { $0.isNumber }) }
            }
            var row: [(String, JSONValue)] = [
                ("name", .string(r.name)), ("state", .string(r.state.rawValue)), ("owner", .string(r.manifest.owner)),
                ("attestation", .string(strength)),
            ]
            if let node = r.manifest.node { row.append(("node", .string(node))) }
            if let enrolledAt {
                let age = (now - enrolledAt) / day
                row.append(("credential_age_days", .number(String(age))))
                // An enrolled key is the agent's long-lived credential (tokens and SVIDs are minutes to an hour).
                if r.keyThumbprint != nil && age >= 90 { oldKeys.append(r.name) }
            }
            if let svidEvent {
                row.append(("svid_issued_days_ago", .number(String((now - svidEvent.at) / day))))
                row.append(("svid_valid", .bool((svidExpiry ?? 0) > now)))
            }
            if let seen = lastSeen[r.spiffeID.description] {
                row.append(("last_seen_days_ago", .number(String((now - seen) / day))))
            } else if r.state == .active {
                row.append(("last_seen_days_ago", .null))
                if let enrolledAt, now - enrolledAt >= windowDays * day {
                    idle.append(r.name)
                } else {
                    neverSeen.append(r.name)
                }
            }
            agentRows.append(.object(row))
        }
        let tokens = try store.outstandingJoinTokens(now: now)
        let names = Dictionary(records.map { ($0.id, $0.name) }, uniquingKeysWith: { a, _ in a })
        let tokenRows: [JSONValue] = tokens.map { t in
            .object([
                ("agent", .string(names[t.agentID] ?? t.agentID)),
                ("age_seconds", .number(String(max(0, now - (t.expiresAt - config.joinTokenTTL))))),
                ("expires_in_seconds", .number(String(t.expiresAt - now))),
            ])
        }
        let keyAge = now - keys.currentCreatedAt
        let keyCompliant = keyAge <= config.signingKeyRotation + config.signingKeyRotation / 10

        // Policies.
        let snapshot = policies.snapshot
        let overPermissive = Self.overPermissive(snapshot.policies, highRiskTools: highRiskTools())
        let usage = try policyUsage(since: since)
        let unusedScopeCount = usage.unusedScopes.reduce(0) { $0 + $1.scopes.count }
        var suggestions: [String] = []
        for (agent, scopes) in usage.unusedScopes {
            suggestions.append(
                "\(agent): remove \(scopes.joined(separator: ", ")) from its manifest (unused for \(windowDays) days)")
        }
        for p in overPermissive {
            suggestions.append("\(p.id): \(p.why); scope it to the roles and resources that use it")
        }
        for id in usage.unusedPermits {
            suggestions.append("\(id): permitted nothing in \(windowDays) days; remove it if no agent needs it")
        }
        for name in oldKeys { suggestions.append("\(name): its enrolled key is 90 days old or more; re-enroll it") }
        if !tokens.isEmpty {
            suggestions.append("\(tokens.count) join token(s) outstanding: use them or let them expire")
        }

        // Maturity.
        let active = records.filter { $0.state == .active }
        let strong = active.filter { ["kernel+binary", "binary hash"].contains(Self.attestationStrength($0)) }
        let sortedContainment = containments.sorted()
        let median = sortedContainment.isEmpty ? nil : sortedContainment[sortedContainment.count / 2]
        let playbooksContain = risk.engine.withLock { $0 != nil }
        var levels: [JSONValue] = []
        var level = 0
        var stillMet = true
        func addLevel(_ n: Int, _ name: String, _ checks: [(String, Bool)]) {
            let met = checks.allSatisfy(\.1)
            if met && stillMet { level = n } else { stillMet = false }
            levels.append(
                .object([
                    ("level", .number(String(n))), ("name", .string(name)), ("met", .bool(met)),
                    (
                        "checks",
                        .array(checks.map { .object([("check", .string($0.0)), ("passed", .bool($0.1))]) })
                    ),
                ]))
        }
        addLevel(
            1, "Inventoried identities",
            [
                ("every agent is registered with an owner (\(records.count) agents)", true),
                ("every call is authenticated and recorded in the signed audit log", true),
            ])
        addLevel(
            2, "Short-lived, sender-constrained credentials",
            [
                ("access tokens live at most 5 minutes (\(config.accessTTL) s)", config.accessTTL <= 300),
                ("every token is bound to a key (DPoP) or certificate (mTLS): no bearer tokens", true),
                ("X.509-SVIDs live at most an hour (\(config.svidTTL) s)", config.svidTTL <= 3600),
                ("no join token outstanding (\(tokens.count))", tokens.isEmpty),
            ])
        addLevel(
            3, "Attested workloads, rotated keys",
            [
                (
                    "every active agent attested by its binary or by the kernel (\(strong.count) of \(active.count))",
                    !active.isEmpty && strong.count == active.count
                ),
                (
                    "the signing key rotates on schedule (age \(keyAge / 3600) h, schedule \(config.signingKeyRotation / 3600) h)",
                    keyCompliant
                ),
                ("no enrolled key older than 90 days (\(oldKeys.count))", oldKeys.isEmpty),
            ])
        addLevel(
            4, "Least privilege",
            [
                ("no over-permissive permit (\(overPermissive.count))", overPermissive.isEmpty),
                (
                    "no unused permit over \(windowDays) days (\(usage.unusedPermits.count))",
                    usage.unusedPermits.isEmpty
                ),
                ("no unused manifest scope over \(windowDays) days (\(unusedScopeCount))", unusedScopeCount == 0),
                ("no active agent idle for \(windowDays) days (\(idle.count))", idle.isEmpty),
            ])
        addLevel(
            5, "Continuous verification",
            [
                ("the risk engine judges every call", playbooksContain),
                (
                    "every call over the window came from a verified identity (\(verified) of \(decisions))",
                    decisions > 0 && verified == decisions
                ),
                (
                    "detections are contained within a second (median \(median.map { String(format: "%.0f", $0) } ?? "n/a") ms)",
                    median.map { $0 <= 1000 } ?? true
                ),
            ])

        func counts(_ d: [String: Int]) -> JSONValue {
            .object(d.sorted { ($1.value, $0.key) < ($0.value, $1.key) }.map { ($0.key, .number(String($0.value))) })
        }
        let maturity: JSONValue = .object([("level", .number(String(level))), ("levels", .array(levels))])
        let inventory: JSONValue = .object([
            ("agents", .number(String(records.count))), ("by_state", counts(byState)),
            ("active_by_attestation", counts(byStrength)), ("list", .array(agentRows)),
        ])
        let signingKey: JSONValue = .object([
            ("age_seconds", .number(String(keyAge))),
            ("rotation_seconds", .number(String(config.signingKeyRotation))), ("compliant", .bool(keyCompliant)),
        ])
        let credentials: JSONValue = .object([
            ("access_token_ttl_seconds", .number(String(config.accessTTL))),
            ("svid_ttl_seconds", .number(String(config.svidTTL))), ("join_tokens_outstanding", .array(tokenRows)),
            ("enrolled_keys_90_days_or_older", .array(oldKeys.map { .string($0) })), ("signing_key", signingKey),
        ])
        let share = decisions == 0 ? "1" : String(format: "%.4f", Double(verified) / Double(decisions))
        let activity: JSONValue = .object([
            ("decisions", .number(String(decisions))), ("verified", .number(String(verified))),
            ("verified_share", .number(share)), ("denied", .number(String(denied))),
            ("denied_by_reason", counts(deniedBy)), ("idle_agents", .array(idle.map { .string($0) })),
            ("never_seen_agents", .array(neverSeen.map { .string($0) })), ("truncated", .bool(truncated)),
        ])
        let medianValue: JSONValue = median.map { .number(String(format: "%.1f", $0)) } ?? .null
        let maxValue: JSONValue = sortedContainment.last.map { .number(String(format: "%.1f", $0)) } ?? .null
        let detections: JSONValue = .object([
            ("alerts", .number(String(alerts))), ("by_severity", counts(bySeverity)),
            ("containments", .number(String(containments.count))), ("containment_ms_median", medianValue),
            ("containment_ms_max", maxValue),
        ])
        let overPermissiveJSON: [JSONValue] = overPermissive.map {
            .object([("id", .string($0.id)), ("why", .string($0.why))])
        }
        let unusedScopesJSON: [JSONValue] = usage.unusedScopes.map { a in
            .object([("agent", .string(a.agent)), ("scopes", .array(a.scopes.map { .string($0) }))])
        }
        let policiesJSON: JSONValue = .object([
            ("count", .number(String(snapshot.policies.policies.count))),
            ("over_permissive", .array(overPermissiveJSON)),
            ("unused_permits", .array(usage.unusedPermits.map { .string($0) })),
            ("unused_scopes", .array(unusedScopesJSON)),
        ])
        return .object([
            ("generated_at", .string(AuditEvent.rfc3339(micros: clock.wallMicros))),
            ("trust_domain", .string(config.trustDomain)), ("window_days", .number(String(windowDays))),
            ("maturity", maturity), ("inventory", inventory), ("credentials", credentials), ("activity", activity),
            ("detections", detections), ("policies", policiesJSON),
            ("suggestions", .array(suggestions.map { .string($0) })),
        ])
    }

    /// How strongly an agent's identity is tied to what runs: `kernel+binary` (a node attests its processes with a
    /// binary hash), `kernel (uid only)`, `binary hash` (enrolled with its binary's hash), `manifest only`, or `not
    /// enrolled`.
    static func attestationStrength(_ r: AgentRecord) -> String {
        if r.manifest.node != nil {
            // Manifests require a uid selector; the binary's hash on top is the stronger pin.
            return r.manifest.selectors.contains { $0.hasPrefix("unix:sha256:") }
                ? "kernel+binary" : "kernel (uid only)"
        }
        switch r.attestation {
        case "manifest+binary": return "binary hash"
        case "manifest": return "manifest only"
        default: return "not enrolled"
        }
    }

    /// The tools configured `risk: high`, as `server/tool`.
    func highRiskTools() -> Set<String> {
        var out: Set<String> = []
        for (server, s) in config.mcpServers {
            if s.defaultTool.risk == "high" { out.insert(server + "/*") }
            for (tool, t) in s.tools where t.risk == "high" { out.insert(server + "/" + tool) }
        }
        return out
    }

    /// Permits whose principal or resource is unconstrained, and unconditional permits that reach a high-risk tool
    /// (by name, through its server, or through an unconstrained resource on a tool action).
    static func overPermissive(_ set: PolicySet, highRiskTools: Set<String>) -> [(id: String, why: String)] {
        var out: [(String, String)] = []
        for p in set.policies where p.effect == .permit {
            var why: [String] = []
            // Unconstrained in its scope and not narrowed by its conditions either (they never name the variable).
            let conditions = p.conditions.map { CedarPrinter.text($0.body) }.joined(separator: " ")
            func named(_ variable: String) -> Bool {
                conditions.range(of: "\\b\(variable)\\b", options: .regularExpression) != nil
            }
            if case .any = p.principal, !named("principal") { why.append("any principal") }
            if case .any = p.resource, !named("resource") { why.append("any resource") }
            if p.conditions.isEmpty, !highRiskTools.isEmpty {
                let toolAction: Bool
                switch p.action {
                case .any: toolAction = true
                case .equals(let a): toolAction = a.id.hasPrefix("mcp:")
                case .in(let a): toolAction = a.id.hasPrefix("mcp:") || a.id == "write" || a.id == "read"
                case .inAny(let list): toolAction = list.contains { $0.id.hasPrefix("mcp:") }
                }
                var reaches: String?
                switch p.resource {
                case .any where toolAction: reaches = highRiskTools.sorted().first
                case .equals(.entity(let e)) where e.type.description == "Tool":
                    reaches = highRiskTools.contains(e.id) ? e.id : nil
                case .in(.entity(let e)) where e.type.description == "ToolServer":
                    reaches = highRiskTools.sorted().first { $0.hasPrefix(e.id + "/") }
                default: break
                }
                if let reaches { why.append("no condition, and it reaches the high-risk tool \(reaches)") }
            }
            if !why.isEmpty { out.append((p.id, why.joined(separator: "; "))) }
        }
        return out
    }
}
