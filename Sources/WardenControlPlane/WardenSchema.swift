import Cedar

/// Warden's entity model as a Cedar schema (`warden policy schema`): what the gateway really builds for its
/// decisions (`AgentDirectory.entity`, the routes' `Service` entities, the MCP gateway's `Tool`, `ToolServer`,
/// `Resource` and `Prompt` entities) and the context of each action (`PolicyContextCheck`, the one list of keys). The
/// server validates its policy set against it at start and on every reload (Cedar's strict validator): a set that
/// does not type-check stops the start, and a reload refuses it, with every error; the last good set stays.
///
/// One part cannot be written in a Cedar schema: a tool call's (or prompt's) `context.arguments`, whatever JSON the
/// call carries. It is typed as any value (``Schema/AttributeType/dynamic``): the validator checks what is around it,
/// and Cedar itself errs at evaluation when a policy reads what a call does not have (an erring forbid denies).
public enum WardenSchema {
    /// The schema in the human-readable syntax (without `arguments`, which no Cedar schema can describe).
    public static let text = """
        // Warden's entity model (warden policy schema). context.arguments of mcp:tools/call and mcp:prompts/get is
        // any JSON object the call carries: not expressible here; Warden's validator types it as any value.
        type Risk = { ready: Bool, newResource: Bool, newSegment: Bool, findings: Long, volumeRatio: decimal };

        entity Role, Team, Segment;
        entity Agent in [Role, Team] = {
            name: String, owner: String, manifestDigest: String, state: String,
            tags: Set<String>, roles: Set<String>, routes: Set<String>, peers: Set<String>, tools: Set<String>,
            environment?: String, team?: String, configDigest?: String, model?: String, modelDigest?: String,
        };
        entity Service in [Segment] = { name: String };
        entity ToolServer = { name: String };
        entity Tool in [ToolServer] = {
            name: String, server: String, id: String, risk: String, dataClass: String, allTools: String,
        };
        entity Resource in [ToolServer] = { uri: String, server: String, allTools: String };
        entity Prompt in [ToolServer] = { name: String, server: String, allTools: String };

        action call appliesTo {
            principal: Agent, resource: [Service, Agent],
            context: {
                method: String, path: String, route: String, query: Set<String>, contentLength: Long,
                risk: Risk, time: datetime, trust: Long, delegation: Set<String>, delegated: Bool, subject: String,
                source?: ipaddr,
            },
        };
        type MCPContext = {
            server: String, approved: Bool, protocolVersion: String,
            risk: Risk, time: datetime, trust: Long, delegation: Set<String>, delegated: Bool, subject: String,
            source?: ipaddr,
        };
        action "mcp:tools/list", "mcp:tools/call" appliesTo { principal: Agent, resource: Tool, context: MCPContext };
        action "mcp:resources/read" appliesTo { principal: Agent, resource: Resource, context: MCPContext };
        action "mcp:prompts/get" appliesTo { principal: Agent, resource: Prompt, context: MCPContext };
        """

    /// The schema the server validates with: ``text`` with `arguments` added (present on every tool call, on a
    /// prompt's `get` but not when prompts are listed).
    public static let schema: Schema = {
        var s = try! Schema(text: text, file: "warden-schema")
        for (id, required) in [("mcp:tools/call", true), ("mcp:prompts/get", false)] {
            let uid = EntityUID("Action", id)
            s.actions[uid]?.context["arguments"] = Schema.Attribute(.dynamic, required: required)
        }
        return s
    }()
}
