import Synchronization

/// Counters of the MCP gateway (`/metrics`).
public final class MCPMetrics: Sendable {
    struct Key: Hashable {
        let a: String
        let b: String
        let c: String
    }

    let requests = Mutex<[Key: Int64]>([:])
    let upstreamErrors = Mutex<[Key: Int64]>([:])
    let dlpFindings = Mutex<[String: Int64]>([:])
    public let approvalsPending = Atomic<Int64>(0)

    func count(server: String, method: String, outcome: String) {
        let known: Set<String> = [
            "initialize", "server/discover", "ping", "tools/list", "tools/call", "resources/list", "resources/read",
            "resources/templates/list", "prompts/list", "prompts/get", "auth", "invalid",
        ]
        let m = known.contains(method) ? method : "other"
        requests.withLock { $0[Key(a: server, b: m, c: outcome), default: 0] += 1 }
    }

    func upstreamError(server: String, kind: String) {
        upstreamErrors.withLock { $0[Key(a: server, b: kind, c: ""), default: 0] += 1 }
    }

    func dlp(kind: String) { dlpFindings.withLock { $0[kind, default: 0] += 1 } }

    /// Prometheus text.
    package func render(alerts: Int64) -> String {
        var out =
            "# HELP warden_mcp_requests_total MCP requests by server, method and outcome (ok or a reason / code).\n"
        out += "# TYPE warden_mcp_requests_total counter\n"
        for (k, v) in requests.withLock({ $0 }).sorted(by: {
            ($0.key.a, $0.key.b, $0.key.c) < ($1.key.a, $1.key.b, $1.key.c)
        }) {
            out += "warden_mcp_requests_total{server=\"\(k.a)\",method=\"\(k.b)\",outcome=\"\(k.c)\"} \(v)\n"
        }
        out += "# HELP warden_mcp_upstream_errors_total Failed exchanges with upstream MCP servers.\n"
        out += "# TYPE warden_mcp_upstream_errors_total counter\n"
        for (k, v) in upstreamErrors.withLock({ $0 }).sorted(by: { ($0.key.a, $0.key.b) < ($1.key.a, $1.key.b) }) {
            out += "warden_mcp_upstream_errors_total{server=\"\(k.a)\",kind=\"\(k.b)\"} \(v)\n"
        }
        out += "# HELP warden_mcp_dlp_findings_total Secrets and personal data found in MCP results, by class.\n"
        out += "# TYPE warden_mcp_dlp_findings_total counter\n"
        for (k, v) in dlpFindings.withLock({ $0 }).sorted(by: { $0.key < $1.key }) {
            out += "warden_mcp_dlp_findings_total{class=\"\(k)\"} \(v)\n"
        }
        out += "# HELP warden_mcp_tool_alerts_total Tool definitions held for approval (changed, new or flagged).\n"
        out += "# TYPE warden_mcp_tool_alerts_total counter\nwarden_mcp_tool_alerts_total \(alerts)\n"
        out += "# HELP warden_mcp_approvals_pending Calls waiting for a human's approval.\n"
        out +=
            "# TYPE warden_mcp_approvals_pending gauge\nwarden_mcp_approvals_pending \(approvalsPending.load(ordering: .relaxed))\n"
        return out
    }
}
