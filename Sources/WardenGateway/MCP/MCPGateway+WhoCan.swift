import Cedar
import WardenControlPlane
import WardenCore
import WardenInspect

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

extension MCPGateway {
    /// Why `agent` would be allowed or refused a `tools/call` of `server`/`tool` with `arguments` now (`warden policy
    /// explain --tool`): the layers before the policy (state, tool scopes), then the decision on the Cedar request the
    /// gateway would build (the tool's configured attributes, the arguments as the call would give them, protocol
    /// era `era`, not approved), with every policy's trace. A forbid marked `@approval` that applies means the call
    /// would be held for a human.
    package func explain(
        agent: AgentRecord, server: String, tool: String, arguments: JSONValue, era: String = "2025-11-25"
    ) throws(WardenError) -> (refusedBefore: String?, explanation: Explanation) {
        guard let runtime = servers[server] else { throw WardenError(.notFound, "no MCP server named \(server)") }
        guard !tool.isEmpty, !tool.contains("/"), tool.utf8.count <= 256 else {
            throw WardenError(.invalidRequest, "the tool must be a tool name of the server")
        }
        guard case .object = arguments, let canonical = JSONNumber.canonicalizing(arguments),
            case .some(let converted?) = Self.cedarValue(canonical)
        else {
            throw WardenError(.invalidRequest, "the arguments must be a JSON object within the gateway's limits")
        }
        var refused: String?
        let held = cp.scopes(of: agent)
        if agent.state != .active {
            refused = "the agent is \(agent.state.rawValue)"
        } else if !held.contains("tool:\(server)/\(tool)") && !held.contains("tool:\(server)/*") {
            refused = "insufficient_scope: its manifest does not name tool:\(server)/\(tool)"
        }
        let entity = runtime.tool(name: tool, definition: .object([]), digest: "").entity
        let who = Decide.Principal(
            entity: AgentDirectory.entity(agent), spiffeID: agent.spiffeID.description, roles: agent.manifest.roles,
            trust: cp.trust.score(agent), delegation: [], delegated: false, subject: agent.spiffeID.description)
        var context = Self.context(era: era, server: server)
        context["arguments"] = converted
        guard
            let (request, built) = pipeline.decide.request(
                who, source: nil, action: "mcp:tools/call", resource: entity.uid, entities: [entity, runtime.entity],
                context: context)
        else { throw WardenError(.invalidRequest, "the entities are invalid") }
        return (refused, Authorizer().explain(request, policies: cp.policies.snapshot.policies, entities: built))
    }
}
