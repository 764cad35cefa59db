import Cedar
import Foundation
import WardenAudit
import WardenCore

/// What the audit log says the policy set and the manifests were used for over a window (`warden policy unused`):
/// how often each permit decided an allowed call, the permits of the current set that never did, and per agent the
/// scopes its manifest grants that no allowed call of its used. Unused grants are the least-privilege work left.
public struct PolicyUsage: Sendable {
    /// The window, microseconds since the epoch.
    public let since: Int64
    public let until: Int64
    /// Allowed decisions read, and whether the read stopped at its bound before the window's end.
    public let decisions: Int
    public let truncated: Bool
    /// How many allowed decisions each policy determined.
    public let uses: [String: Int]
    /// The permits of the current set that determined none, in set order.
    public let unusedPermits: [String]
    /// Per active agent (by name): the scopes of its manifest that no allowed call used.
    public let unusedScopes: [(agent: String, scopes: [String])]
}

extension ControlPlane {
    /// Reads the allowed decisions since `since` (microseconds; at most `maxEntries`) and compares them with the
    /// current policy set and the agents' manifests.
    public func policyUsage(since: Int64, maxEntries: Int = 1_000_000) throws(WardenError) -> PolicyUsage {
        var q = AuditLog.Query()
        q.since = since
        q.kind = .decision
        q.decision = .allow
        q.limit = 1000
        var uses: [String: Int] = [:]
        var usedScopes: [String: Set<String>] = [:]
        var decisions = 0
        var truncated = false
        while true {
            let rows = try audit.query(q)
            for (_, text) in rows {
                guard let entry = try? JSONValue.parse(text) else { continue }
                decisions += 1
                for case .string(let id) in entry["policies"]?.arrayValue ?? [] { uses[id, default: 0] += 1 }
                guard let agent = entry["agent"]?.stringValue, let scope = Self.scope(of: entry) else { continue }
                usedScopes[agent, default: []].insert(scope)
            }
            guard let last = rows.last, rows.count == q.limit else { break }
            if decisions >= maxEntries {
                truncated = true
                break
            }
            q.after = last.0
        }
        let snapshot = policies.snapshot
        let unusedPermits = snapshot.policies.policies.filter { $0.effect == .permit && uses[$0.id] == nil }.map(\.id)
        var unusedScopes: [(String, [String])] = []
        for record in try store.agents() where record.state == .active {
            let used = usedScopes[record.spiffeID.description] ?? []
            let unused = scopes(of: record).filter { scope in
                if used.contains(scope) { return false }
                // `tool:<server>/*` is used by any call to one of the server's tools.
                if scope.hasPrefix("tool:"), scope.hasSuffix("/*") {
                    let prefix = String(scope.dropLast())
                    return !used.contains { $0.hasPrefix(prefix) }
                }
                return true
            }
            if !unused.isEmpty { unusedScopes.append((record.manifest.name, unused.sorted())) }
        }
        return PolicyUsage(
            since: since, until: clock.wallMicros, decisions: decisions, truncated: truncated, uses: uses,
            unusedPermits: unusedPermits, unusedScopes: unusedScopes.sorted { $0.0 < $1.0 })
    }

    /// The scope an allowed decision used: `route:<name>` for a route call (`peer:<name>` for an agent route),
    /// `tool:<server>/<tool>` for a tool call; nil for other decisions.
    static func scope(of entry: JSONValue) -> String? {
        switch entry["action"]?.stringValue {
        case "call":
            if let resource = entry["resource"]?.stringValue, resource.hasPrefix("Agent::"),
                let slash = resource.range(of: "/agent/", options: .backwards)
            {
                return "peer:" + resource[slash.upperBound...].dropLast()
            }
            return entry["details"]?["route"]?.stringValue.map { "route:" + $0 }
        case "mcp:tools/call":
            guard let resource = entry["resource"]?.stringValue, resource.hasPrefix("Tool::\""),
                resource.hasSuffix("\"")
            else { return nil }
            return "tool:" + resource.dropFirst(7).dropLast()
        default: return nil
        }
    }
}
