import Cedar
import WardenControlPlane
import WardenCore

/// "Who can call this tool?": as ``Gateway/whoCan(route:agents:)`` for `mcp:tools/call` on `Tool::"<server>/<tool>"`
/// (in its `ToolServer`), with the tool's configured attributes; the call's arguments, approval, protocol era and
/// the common context unknown. A forbid marked `@approval` that may apply makes the answer conditional: the call is
/// held for a human.
extension MCPGateway {
    /// The context keys of an MCP decision (``PolicyContextCheck/mcp``, the one list), unknown to who-can but
    /// `server`, which it knows.
    static let toolCallContextKeys = PolicyContextCheck.mcp.subtracting(["server"])

    /// Every agent's access to `server`/`tool`; `notFound` for an unknown server.
    package func whoCan(server: String, tool: String, agents: [AgentRecord]) throws(WardenError) -> [Gateway.Access] {
        guard let runtime = servers[server] else { throw WardenError(.notFound, "no MCP server named \(server)") }
        guard !tool.isEmpty, !tool.contains("/"), tool.utf8.count <= 256 else {
            throw WardenError(.invalidRequest, "the tool must be a tool name of the server")
        }
        // The entity Warden builds for the tool (its attributes come from the configuration, not the definition).
        let entity = runtime.tool(name: tool, definition: .object([]), digest: "").entity
        let snapshot = cp.policies.snapshot
        return agents.sorted { $0.manifest.name < $1.manifest.name }.map { agent in
            gateway.access(
                by: agent, scopes: ["tool:\(server)/\(tool)", "tool:\(server)/*"], action: "mcp:tools/call",
                resource: entity.uid, entities: [entity, runtime.entity], known: ["server": .string(server)],
                unknown: Self.toolCallContextKeys, snapshot)
        }
    }
}
