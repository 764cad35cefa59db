import Cedar
import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import Synchronization
import WardenAudit
import WardenControlPlane
import WardenCore
import WardenIdentity
import WardenInspect
import WardenRisk

/// `tools/call`: resolution, scope, limit, pin, schema, decision with the arguments, approval, admission record,
/// forward in the checked upstream session, and the result's screening.
extension MCPGateway {
    func resolve(_ c: MCPCall, _ name: String) -> (MCPServerRuntime, String)? {
        if let server = c.server { return servers[server].map { ($0, name) } }
        guard let dot = name.firstIndex(of: ".") else { return nil }
        let server = String(name[..<dot])
        return servers[server].map { ($0, String(name[name.index(after: dot)...])) }
    }

    func callTool(_ c: MCPCall, params: JSONValue) async throws(JSONRPC.RPCError) -> JSONValue {
        guard let name = params["name"]?.stringValue, !name.isEmpty, name.utf8.count <= 256 else {
            throw JSONRPC.RPCError(JSONRPC.invalidParams, "tools/call needs params.name")
        }
        guard name.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
            throw JSONRPC.RPCError(JSONRPC.invalidParams, "unknown tool (tool names are printable ASCII)")
        }
        let raw = params["arguments"] ?? .object([])
        guard case .object = raw else {
            throw JSONRPC.RPCError(JSONRPC.invalidParams, "params.arguments must be an object")
        }
        // Every number in its one spelling: the schema, Cedar, the record and the upstream all see these arguments.
        guard let arguments = JSONNumber.canonicalizing(raw) else {
            throw JSONRPC.RPCError(JSONRPC.invalidParams, Self.numberOutOfRange)
        }
        let digest = "sha256:" + Attestation.hex(SHA256.hash(data: Array(arguments.canonical.utf8)))
        let resourceName = c.server.map { "\($0)/\(name)" } ?? name
        var details: [(String, String)] = [("tool", name), ("arguments_digest", digest), ("era", c.era)]
        func refuse(
            _ code: Int, _ reason: String, _ message: String, resource: String? = nil, policies: [String] = []
        ) -> JSONRPC.RPCError {
            let r = resource ?? EntityUID("Tool", resourceName).description
            return refused(
                c, Self.judged("mcp:tools/call", r, details),
                Refusal(.forbidden, .accessDenied, Reason(reason), message, policies: policies), code: code)
        }
        guard let (s, tool) = resolve(c, name) else {
            throw refuse(JSONRPC.invalidParams, "unknown_tool", "unknown tool: \(name.prefix(128))")
        }
        let server = s.config.name
        let resource = EntityUID("Tool", "\(server)/\(tool)").description
        details[0] = ("tool", "\(server)/\(tool)")
        details.append(("server", server))
        guard hasToolScope(c.agent, server, tool) else {
            throw refuse(
                JSONRPC.accessDenied, "insufficient_scope", "the token does not carry the scope tool:\(server)/\(tool)",
                resource: resource)
        }
        do throws(Refusal) {
            try pipeline.limit.run(c.caller)
        } catch {
            throw refused(c, Self.judged("mcp:tools/call", resource, details), error, code: JSONRPC.rateLimited)
        }
        // The definition the upstream serves now (in its current session), against its pin.
        func pinned(_ cat: MCPServerRuntime.Catalogue) throws(JSONRPC.RPCError) -> MCPServerRuntime.Tool {
            guard let t = cat.tools[tool] else {
                throw refuse(
                    JSONRPC.invalidParams, "unknown_tool", "unknown tool: \(tool.prefix(128))", resource: resource)
            }
            switch pins.status(server: server, tool: tool, digest: t.digest) {
            case .pinned: return t
            case .pending:
                throw refuse(
                    JSONRPC.toolChanged, "tool_not_approved",
                    "the tool's definition is not approved (changed or new); an operator must approve it",
                    resource: resource)
            case .rejected:
                throw refuse(
                    JSONRPC.toolChanged, "tool_rejected", "this definition of the tool was rejected", resource: resource
                )
            }
        }
        var cat = try await catalogue(s, maxAge: .seconds(s.config.refresh))
        if cat.tools[tool] == nil, s.config.refresh > 0 { cat = try await catalogue(s, maxAge: nil) }
        let t = try pinned(cat)
        let problems = t.validator.validate(arguments)
        if !problems.isEmpty {
            throw refuse(
                JSONRPC.invalidParams, "invalid_arguments",
                "the arguments do not match the tool's input schema: " + problems.prefix(5).joined(separator: "; "),
                resource: resource)
        }
        // Cedar, with the arguments in the context.
        guard case .some(.some(let argsValue)) = Self.cedarValue(arguments) else {
            throw refuse(
                JSONRPC.invalidParams, "arguments_too_large", Self.argumentsTooLarge.message, resource: resource)
        }
        var verdict = decide(
            c, action: "mcp:tools/call", resource: t.entity, parent: s.entity, context: ["arguments": argsValue])
        var approvalReason: String?
        if !verdict.allowed {
            // A denial that only `@approval` policies made, and that approval would lift, asks a human instead.
            let approvalPolicies = cp.policies.snapshot.approvalPolicies
            if verdict.reason == "policy_denied", !verdict.policies.isEmpty,
                verdict.policies.allSatisfy(approvalPolicies.contains)
            {
                let again = decide(
                    c, action: "mcp:tools/call", resource: t.entity, parent: s.entity,
                    context: ["arguments": argsValue, "approved": .bool(true)])
                if again.allowed {
                    approvalReason = "policy:" + verdict.policies.joined(separator: ",")
                    verdict = again
                }
            }
            if approvalReason == nil {
                throw refuse(
                    JSONRPC.accessDenied, verdict.reason ?? "policy_denied", verdict.message, resource: resource,
                    policies: verdict.policies)
            }
        } else if t.config.needsApproval {
            approvalReason = t.config.risk == "high" ? "risk:high" : "tool:approval"
        } else if cp.risk.needsApproval(c.agent.agent.spiffeID.description, now: cp.clock.wallSeconds) {
            // The risk engine asked for step-up approval of this agent's calls.
            approvalReason = "risk:step-up"
        }
        if let approvalReason {
            let item = ApprovalQueue.Item(
                id: ApprovalQueue.newID(), agent: c.agent.agent.spiffeID.description, agentID: c.agent.agent.id,
                server: server, tool: tool, arguments: arguments, argumentsDigest: digest, reason: approvalReason,
                createdAt: cp.now(), expiresAt: cp.now() + s.config.approvalTimeout)
            details.append(("approval_id", item.id))
            audit(
                c, action: "mcp.approval.request", resource: resource, allowed: nil, reason: approvalReason,
                details: details)
            metrics.approvalsPending.add(1, ordering: .relaxed)
            let outcome = await approvals.hold(item, timeout: .seconds(s.config.approvalTimeout))
            metrics.approvalsPending.subtract(1, ordering: .relaxed)
            switch outcome {
            case .approved(let by)?:
                details.append(("approved_by", by))
                // The wait can be long: what held before it must still hold (token, agent, pin, policies).
                if let why = stillAdmissible(c, server: server, tool: t, arguments: argsValue, parent: s.entity) {
                    throw refuse(JSONRPC.accessDenied, why, "after approval: \(why)", resource: resource)
                }
            case .denied(let by, let why)?:
                details.append(("denied_by", by))
                throw refuse(
                    JSONRPC.approvalRefused, "approval_denied",
                    "the call was denied by an approver" + (why.map { ": \($0.prefix(200))" } ?? ""), resource: resource
                )
            case .timedOut?:
                throw refuse(
                    JSONRPC.approvalRefused, "approval_timeout", "no approver decided in time", resource: resource)
            case .abandoned?:
                throw refuse(
                    JSONRPC.approvalRefused, "approval_abandoned", "the call was abandoned", resource: resource)
            case nil, .full?:
                throw refuse(
                    JSONRPC.approvalRefused, "approval_queue_full", "too many calls are waiting for approval",
                    resource: resource)
            }
        }
        if let cred = s.config.credential, cp.secrets.value(cred.secret) == nil {
            throw refuse(
                JSONRPC.upstreamUnavailable, "credential_unavailable", "the server's credential is not available",
                resource: resource)
        }
        let admission: AuditTicket
        do throws(Refusal) {
            admission = try pipeline.recorder.admit(
                c.call, Self.judged("mcp:tools/call", resource, details), policies: verdict.policies)
        } catch {
            throw refused(c, Self.judged("mcp:tools/call", resource, details), error, code: JSONRPC.internalError)
        }
        // Forward with Warden's session and credential; the agent's `_meta` stays here. Only in the session whose
        // catalogue was checked: when the upstream has a new one (it restarted), its catalogue and this tool's pin
        // are checked again before the call goes out.
        var response: JSONValue?
        var session = cat.session
        for attempt in 0..<3 where response == nil {
            do throws(UpstreamFailure) {
                response = try await s.upstream.request(
                    "tools/call", params: .object([("name", .string(t.name)), ("arguments", arguments)]),
                    session: session)
            } catch {
                guard error.kind == UpstreamFailure.sessionChanged.kind, attempt < 2 else {
                    throw upstreamFailed(s, error)
                }
                let fresh = try await catalogue(s, maxAge: nil)
                guard try pinned(fresh).digest == t.digest else {
                    throw refuse(
                        JSONRPC.toolChanged, "tool_changed",
                        "the tool's definition changed while the call was being made; call it again",
                        resource: resource)
                }
                session = fresh.session
            }
        }
        guard let response else { throw upstreamFailed(s, .sessionChanged) }
        switch unwrap(response) {
        case .success(let result):
            let screened = try screen(c, s, result, resource: resource, details: details)
            pipeline.recorder.exchanged(
                c.call, Recorder.RiskFeed(.tool, resource: resource), bytesIn: 0,
                bytesOut: Int64(screened.serialized.utf8.count), cause: admission)
            return screened
        case .failure(let e):
            throw screened(s, e)
        }
    }

    /// An upstream's JSON-RPC error, its message and data through the DLP step too (redacted whatever `dlp` says:
    /// an error is not a result the operator chose to block).
    func screened(_ s: MCPServerRuntime, _ e: JSONRPC.RPCError) -> JSONRPC.RPCError {
        guard s.config.dlp != .off else {
            return JSONRPC.RPCError(e.code, String(e.message.prefix(1000)), data: e.data)
        }
        var (message, _) = dlp.redact(String(e.message.prefix(1000)))
        var data = e.data.map { dlp.redact($0).0 }
        if let cred = s.config.credential, let value = cp.secrets.value(cred.secret), value.utf8.count >= 8 {
            message = message.replacingOccurrences(of: value, with: "[REDACTED:brokered_credential]")
            data = data.map { Self.scrub($0, value).0 }
        }
        return JSONRPC.RPCError(e.code, message, data: data)
    }

    /// Re-checks a call after it waited for approval: the token is unrevoked and unexpired, the agent active, the
    /// definition still pinned, and the policies (as they are now) allow it when approved. nil when it still holds,
    /// else the reason code.
    func stillAdmissible(
        _ c: MCPCall, server: String, tool t: MCPServerRuntime.Tool, arguments: Value, parent: Entity
    ) -> String? {
        let claims = c.agent.claims
        if cp.revocations.isRevoked(claims.jti) { return "token_revoked" }
        if claims.expiresAt <= cp.now() { return "token_expired" }
        guard let entry = cp.agents.entry(c.agent.agent.spiffeID.description) else { return "agent_unknown" }
        guard entry.record.state == .active else { return "agent_\(entry.record.state.rawValue)" }
        guard pins.status(server: server, tool: t.name, digest: t.digest) == .pinned else { return "tool_not_approved" }
        let verdict = decide(
            c, action: "mcp:tools/call", resource: t.entity, parent: parent,
            context: ["arguments": arguments, "approved": .bool(true)])
        return verdict.allowed ? nil : (verdict.reason ?? "policy_denied")
    }

    /// The DLP step on a result: redacted or withheld per the server's `dlp`, the findings recorded by class.
    func screen(
        _ c: MCPCall, _ s: MCPServerRuntime, _ result: JSONValue, resource: String, details: [(String, String)]
    ) throws(JSONRPC.RPCError) -> JSONValue {
        guard s.config.dlp != .off else { return result }
        var (redacted, kinds) = dlp.redact(result)
        // The server's own brokered credential, whatever its shape, never reaches the agent.
        if let cred = s.config.credential, let value = cp.secrets.value(cred.secret), value.utf8.count >= 8 {
            let (scrubbed, found) = Self.scrub(redacted, value)
            if found {
                redacted = scrubbed
                kinds.insert("brokered_credential")
            }
        }
        guard !kinds.isEmpty else { return result }
        let classes = kinds.sorted().joined(separator: ",")
        for k in kinds { metrics.dlp(kind: k) }
        let blocked = s.config.dlp == .block
        audit(
            c, action: "mcp.dlp", resource: resource, allowed: !blocked,
            reason: blocked ? "dlp_blocked" : "dlp_redacted",
            details: details + [("classes", classes)])
        if blocked {
            throw JSONRPC.RPCError(
                JSONRPC.resultWithheld, "the result was withheld: it contains \(classes)",
                data: .object([("reason", .string("dlp_blocked"))]))
        }
        return redacted
    }

    /// Replaces every occurrence of `secret` in the strings (and keys) of `value` (depth is bounded by the parser).
    static func scrub(_ value: JSONValue, _ secret: String) -> (JSONValue, Bool) {
        switch value {
        case .string(let s) where s.contains(secret):
            return (.string(s.replacingOccurrences(of: secret, with: "[REDACTED:brokered_credential]")), true)
        case .array(let items):
            var found = false
            let out = items.map { item -> JSONValue in
                let (v, f) = scrub(item, secret)
                found = found || f
                return v
            }
            return (.array(out), found)
        case .object(let pairs):
            var found = false
            let out = pairs.map { pair -> (String, JSONValue) in
                let (v, f) = scrub(pair.1, secret)
                var key = pair.0
                if key.contains(secret) {
                    key = key.replacingOccurrences(of: secret, with: "[REDACTED:brokered_credential]")
                    found = true
                }
                found = found || f
                return (key, v)
            }
            return (.object(out), found)
        default:
            return (value, false)
        }
    }

    /// `resources/list`, `resources/templates/list`, `prompts/list` of one server, filtered by Cedar.
}
