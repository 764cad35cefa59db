import WardenAudit
import WardenControlPlane
import WardenCore
import WardenGateway

/// `GET /metrics` in the Prometheus text exposition format.
enum Metrics {
    /// `agentSeries`: the series labelled by agent (identities and trust scores), only for an authenticated scraper.
    static func render(_ cp: ControlPlane, gateway: Gateway? = nil, mcp: MCPGateway? = nil, agentSeries: Bool = false)
        -> String
    {
        let a = cp.audit.health
        var out = ""
        func metric(_ name: String, _ type: String, _ help: String, _ value: Int64) {
            out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n\(name) \(value)\n"
        }
        metric(
            "warden_audit_healthy", "gauge", "1 when the audit log accepts writes, 0 when it is failing.",
            a.healthy ? 1 : 0)
        metric("warden_audit_entries", "gauge", "Entries in the audit log (its tree size).", a.treeSize)
        metric(
            "warden_audit_appended_total", "counter", "Events appended through the group-commit writer.", a.appended)
        metric("warden_audit_batches_total", "counter", "Group-commit batches written (one fsync each).", a.batches)
        metric("warden_audit_failed_batches_total", "counter", "Batches that could not be written.", a.failedBatches)
        metric(
            "warden_audit_rejected_total", "counter",
            "Events refused (log failing or queue full) or lost with a failed batch.", a.rejected)
        metric("warden_audit_checkpoints_total", "counter", "Checkpoints signed by this process.", a.checkpoints)
        let states = cp.agents.states()
        out += "# HELP warden_agents Registered agents by lifecycle state.\n# TYPE warden_agents gauge\n"
        for state in AgentState.allCases { out += "warden_agents{state=\"\(state.rawValue)\"} \(states[state] ?? 0)\n" }
        let policies = cp.policies.snapshot
        metric("warden_policies", "gauge", "Policies in the current set.", Int64(policies.count))
        metric(
            "warden_policies_loaded_timestamp_seconds", "gauge", "When the current policy set was loaded.",
            policies.loadedAt)
        metric(
            "warden_policy_reload_failures_total", "counter", "Policy reloads refused (the last good set stayed).",
            cp.policies.reloadFailures.load(ordering: .relaxed))
        gateway?.metricsBackend.render(into: &out)
        if let risk = cp.risk.attached {
            metric(
                "warden_risk_events_total", "counter", "Events the risk engine processed.",
                risk.processed.load(ordering: .relaxed))
            metric(
                "warden_risk_events_dropped_total", "counter", "Events dropped because the risk queue was full.",
                risk.dropped.load(ordering: .relaxed))
            metric("warden_risk_alerts_total", "counter", "Risk alerts raised.", risk.alerts.load(ordering: .relaxed))
            metric(
                "warden_risk_agents_tracked", "gauge", "Agents with a baseline in memory.", Int64(risk.trackedAgents))
        }
        metric(
            "warden_unauthenticated_refusals_total", "counter",
            "Refusals that named no agent (summarised per source in the audit log, counted here one by one).",
            Int64(cp.sources.refusalCount))
        metric(
            "warden_source_limited_total", "counter",
            "Requests answered 429 by the per-source limits (unauthenticated refusals, enrollment, token endpoint).",
            Int64(cp.sources.limitedCount))
        // Trust: per agent only where the engine lowered it (bounded: one series per agent would not scale).
        let lowered = cp.agents.loweredTrust(limit: 1000)
        metric(
            "warden_trust_lowered_agents", "gauge", "Agents whose trust score is below their attestation's baseline.",
            Int64(lowered.count))
        if agentSeries {
            out += "# HELP warden_agent_trust Trust score (0-100) of agents below their baseline, lowest 1000.\n"
            out += "# TYPE warden_agent_trust gauge\n"
            for (agent, score) in lowered.agents {
                out += "warden_agent_trust{agent=\"\(Self.labelValue(agent))\"} \(score)\n"
            }
        }
        if let mcp { out += mcp.metrics.render(alerts: mcp.pins.alerts.load(ordering: .relaxed)) }
        return out
    }

    /// A Prometheus label value: backslash, double quote and line feed escaped.
    static func labelValue(_ s: String) -> String {
        s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            .replacingOccurrences(of: "\n", with: "\\n")
    }
}
