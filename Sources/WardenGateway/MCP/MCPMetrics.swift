import Synchronization

/// Counters of the MCP gateway (`/metrics`): requests by server, method and outcome, upstream failures by server and
/// kind, DLP findings by class; the calls waiting for approval are read at scrape time.
public final class MCPMetrics: Sendable {
    let requests: CounterFamily
    let upstreamErrors: CounterFamily
    let dlpFindings: CounterFamily
    public let approvalsPending = Atomic<Int64>(0)

    init(backend: MetricsBackend) {
        requests = CounterFamily("warden_mcp_requests_total", ["server", "method", "outcome"], backend: backend)
        upstreamErrors = CounterFamily("warden_mcp_upstream_errors_total", ["server", "kind"], backend: backend)
        dlpFindings = CounterFamily("warden_mcp_dlp_findings_total", ["class"], backend: backend)
    }

    /// Methods counted by name; anything else is `other` (the method is the agent's input).
    static let knownMethods: Set<String> = [
        "initialize", "server/discover", "ping", "tools/list", "tools/call", "resources/list", "resources/read",
        "resources/templates/list", "prompts/list", "prompts/get", "auth", "invalid",
    ]

    func count(server: String, method: String, outcome: String) {
        requests.increment(server, Self.knownMethods.contains(method) ? method : "other", outcome)
    }

    func upstreamError(server: String, kind: String) { upstreamErrors.increment(server, kind) }

    func dlp(kind: String) { dlpFindings.increment(kind) }

    /// The values read at scrape time, in the Prometheus text format (the counters are in the registry).
    package func render(alerts: Int64) -> String {
        var out = "# HELP warden_mcp_tool_alerts_total Tool definitions held for approval (changed, new or flagged).\n"
        out += "# TYPE warden_mcp_tool_alerts_total counter\nwarden_mcp_tool_alerts_total \(alerts)\n"
        out += "# HELP warden_mcp_approvals_pending Calls waiting for a human's approval.\n"
        out +=
            "# TYPE warden_mcp_approvals_pending gauge\nwarden_mcp_approvals_pending \(approvalsPending.load(ordering: .relaxed))\n"
        return out
    }
}
