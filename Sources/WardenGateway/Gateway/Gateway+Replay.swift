import Cedar
import Foundation
import WardenAudit
import WardenControlPlane
import WardenCore

/// "What does this policy change newly allow, or newly deny?" (`warden policy diff OLD NEW --replay`): the `/r/` calls
/// the audit log recorded over a window, rebuilt into the Cedar requests the gateway made (the agent as it is now,
/// the route, method, canonical path, query names, content length, and the recorded time, trust, source and
/// delegation) and decided against both policy sets with the gateway's rules (a forbid that errs denies). Only calls
/// the policy decided are replayed: a call refused before the policy (authentication, scope, rate limit) would be
/// refused again whatever the policies say. MCP calls are counted, not replayed: their arguments, which policies may
/// read, are not in the log.
extension Gateway {
    /// One call whose decision the change turns around.
    package struct ReplayChange: Sendable {
        package let seq: Int64
        package let time: String
        package let agent: String
        package let route: String
        package let method: String
        package let path: String
        package let old: PolicyEngine.Verdict
        package let new: PolicyEngine.Verdict
    }

    package struct Replay: Sendable {
        /// Decisions read from the log, and whether the read stopped at its bound.
        package var read = 0
        package var truncated = false
        /// Calls decided again on both sets.
        package var replayed = 0
        /// Calls not replayed, by why (`refused_before_policy`, `mcp_arguments_not_recorded`, `route_gone`, ...).
        package var skipped: [String: Int] = [:]
        package var newlyAllowedCount = 0
        package var newlyDeniedCount = 0
        /// The first ``examples`` of each, in log order.
        package var newlyAllowed: [ReplayChange] = []
        package var newlyDenied: [ReplayChange] = []
    }

    /// Policy-layer refusal reasons: a call refused for one of these reached the policy.
    static let policyReasons: Set<String> = ["policy_denied", "policy_error"]

    /// Replays the decisions recorded since `since` (microseconds) against `old` and `new`.
    package func replay(
        old: PolicyEngine.Snapshot, new: PolicyEngine.Snapshot, since: Int64, maxEntries: Int = 200_000,
        examples: Int = 20
    ) throws(WardenError) -> Replay {
        var out = Replay()
        var q = AuditLog.Query()
        q.since = since
        q.kind = .decision
        q.limit = 1000
        reading: while true {
            let rows = try cp.audit.query(q)
            for (seq, text) in rows {
                guard let entry = try? JSONValue.parse(text) else { continue }
                out.read += 1
                switch replayOne(entry, old: old, new: new) {
                case .skipped(let why): out.skipped[why, default: 0] += 1
                case .same: out.replayed += 1
                case .changed(var change):
                    out.replayed += 1
                    change = ReplayChange(
                        seq: seq, time: change.time, agent: change.agent, route: change.route, method: change.method,
                        path: change.path, old: change.old, new: change.new)
                    if change.new.allowed {
                        out.newlyAllowedCount += 1
                        if out.newlyAllowed.count < examples { out.newlyAllowed.append(change) }
                    } else {
                        out.newlyDeniedCount += 1
                        if out.newlyDenied.count < examples { out.newlyDenied.append(change) }
                    }
                }
                if out.read >= maxEntries {
                    out.truncated = true
                    break reading
                }
            }
            guard let last = rows.last, rows.count == q.limit else { break }
            q.after = last.0
        }
        return out
    }

    enum ReplayOutcome {
        case skipped(String)
        case same
        case changed(ReplayChange)
    }

    /// One recorded decision decided again on both sets.
    func replayOne(_ entry: JSONValue, old: PolicyEngine.Snapshot, new: PolicyEngine.Snapshot) -> ReplayOutcome {
        guard let action = entry["action"]?.stringValue else { return .skipped("not_a_call") }
        if action.hasPrefix("mcp:") { return .skipped("mcp_arguments_not_recorded") }
        guard action == "call" else { return .skipped("not_a_call") }
        if entry["decision"]?.stringValue != "allow" {
            guard let reason = entry["reason"]?.stringValue, Self.policyReasons.contains(reason) else {
                return .skipped("refused_before_policy")
            }
        }
        let details = entry["details"]
        guard let spiffeID = entry["agent"]?.stringValue, let routeName = details?["route"]?.stringValue,
            let method = details?["method"]?.stringValue, let shown = details?["path"]?.stringValue
        else { return .skipped("incomplete_record") }
        guard let agent = cp.agents.agent(spiffeID) else { return .skipped("agent_gone") }
        guard let route = routes[routeName] else { return .skipped("route_gone") }
        let prefix = "/r/" + routeName
        guard shown.hasPrefix(prefix) else { return .skipped("incomplete_record") }
        let path = shown.dropFirst(prefix.utf8.count).isEmpty ? "/" : String(shown.dropFirst(prefix.utf8.count))
        let query = Set(
            (details?["query_keys"]?.stringValue ?? "").split(separator: ",").map { Value.string(String($0)) })
        let length = details?["content_length"]?.stringValue.flatMap { Int($0) }
        var entities: [Entity] = []
        if let service = route.service {
            entities.append(service)
        } else if let target = cp.agents.entry(route.resource.id), target.record.spiffeID != agent.spiffeID {
            entities.append(target.entity)
        }
        let delegation = (entry["delegation"]?.arrayValue ?? []).compactMap(\.stringValue)
        let who = Decide.Principal(
            entity: AgentDirectory.entity(agent), spiffeID: agent.spiffeID.description, roles: agent.manifest.roles,
            trust: entry["trust"]?.integerValue.map { Int($0) } ?? cp.trust.score(agent), delegation: delegation,
            delegated: !delegation.isEmpty, subject: delegation.first ?? agent.spiffeID.description)
        guard
            var (request, built) = pipeline.decide.request(
                who, source: entry["source"]?.stringValue, action: "call", resource: route.resource,
                entities: entities,
                context: Self.callContext(method: method, path: path, route: routeName, query: query, length: length),
                feed: route.riskFeed)
        else { return .skipped("invalid_entities") }
        // The time of the call, not of the replay.
        if let time = entry["time"]?.stringValue, let micros = AuditEvent.parseRFC3339(time) {
            let ms = micros / 1000
            var context = request.context
            context["time"] = .ext(.datetime(CedarDatetime(milliseconds: ms)))
            request = Cedar.Request(
                principal: request.principal, action: request.action, resource: request.resource, context: context)
        }
        let before = PolicyEngine.authorize(request, entities: built, snapshot: old)
        let after = PolicyEngine.authorize(request, entities: built, snapshot: new)
        guard before.allowed != after.allowed else { return .same }
        return .changed(
            ReplayChange(
                seq: 0, time: entry["time"]?.stringValue ?? "", agent: agent.manifest.name, route: routeName,
                method: method, path: path, old: before, new: after))
    }
}
