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

/// Methods that describe and list: dispatch, `initialize` and `server/discover`, the tool catalogue (fetched per
/// upstream session, classified against the pins) and `tools/list` filtered by scope and Cedar.
extension MCPGateway {
    // MARK: Methods

    func dispatch(_ c: MCPCall, method: String, params: JSONValue?) async throws(JSONRPC.RPCError) -> JSONValue {
        switch method {
        case "initialize": return serverDescription(c, version: c.era, discover: false)
        case "server/discover": return serverDescription(c, version: Self.modernVersion, discover: true)
        case "ping": return .object([])
        case "tools/list": return try await listTools(c)
        case "tools/call": return try await callTool(c, params: params ?? .object([]))
        case "resources/list", "resources/templates/list", "prompts/list":
            return try await listOther(c, method: method, params: params)
        case "resources/read", "prompts/get":
            return try await readOther(c, method: method, params: params ?? .object([]))
        default:
            throw JSONRPC.RPCError(JSONRPC.methodNotFound, "method not found: \(method.prefix(100))")
        }
    }

    func serverDescription(_ c: MCPCall, version: String, discover: Bool) -> JSONValue {
        // Resources and prompts are served per server, not on the aggregate.
        let capabilities: JSONValue =
            c.server == nil
            ? .object([("tools", .object([("listChanged", .bool(false))]))])
            : .object([
                ("tools", .object([("listChanged", .bool(false))])), ("resources", .object([])),
                ("prompts", .object([])),
            ])
        let info = JSONValue.object([
            ("name", .string("warden")), ("title", .string("Warden MCP gateway")),
            ("version", .string(WardenVersion.current)),
        ])
        let instructions = JSONValue.string(
            c.server == nil
                ? "Tools of every MCP server you may use, named <server>.<tool>."
                : "Tools of the MCP server '\(c.server ?? "")' that you may use.")
        guard discover else {
            return .object([
                ("protocolVersion", .string(version)), ("capabilities", capabilities), ("serverInfo", info),
                ("instructions", instructions),
            ])
        }
        // 2026-07-28 `server/discover`: the versions served, capabilities, and the server's identity in `_meta`.
        return .object([
            (
                "supportedVersions",
                .array(([Self.modernVersion] + Self.sessionVersions.sorted(by: >)).map { .string($0) })
            ),
            ("capabilities", capabilities), ("instructions", instructions),
            ("_meta", .object([("io.modelcontextprotocol/serverInfo", info)])),
        ])
    }

    /// The servers a request addresses: the one in the path, or every server the token names a tool of.
    func addressed(_ c: MCPCall) -> [MCPServerRuntime] {
        if let name = c.server, let s = servers[name] { return [s] }
        return order.compactMap { servers[$0] }.filter { hasServerScope(c.agent, $0.config.name) }
    }

    /// Whether the token carries any `tool:<server>/...` scope (a scan of the scope string, no set built).
    func hasServerScope(_ a: AuthenticatedAgent, _ server: String) -> Bool {
        guard let scope = a.claims.scope else { return false }
        let prefix = "tool:\(server)/"
        return scope.split(separator: " ").contains { $0.hasPrefix(prefix) }
    }

    func hasToolScope(_ a: AuthenticatedAgent, _ server: String, _ tool: String) -> Bool {
        a.claims.hasScope("tool:\(server)/\(tool)") || a.claims.hasScope("tool:\(server)/*")
    }

    /// The catalogue of `server`: the cached one when younger than `maxAge` and fetched in the current upstream
    /// session, else fetched (all pages, in one session) and classified against the pins.
    func catalogue(_ s: MCPServerRuntime, maxAge: Duration?) async throws(JSONRPC.RPCError)
        -> MCPServerRuntime.Catalogue
    {
        if let maxAge, let cached = s.catalogue.withLock({ $0 }),
            cp.clock.monotonicMicros - cached.fetchedAt < Call.micros(maxAge),
            cached.session == s.upstream.currentSession
        {
            return cached
        }
        var tools: [(String, JSONValue)] = []
        var session = 0
        fetching: for attempt in 0..<3 {
            tools = []
            do throws(UpstreamFailure) {
                session = try await s.upstream.openSession()
            } catch {
                throw upstreamFailed(s, error)
            }
            var cursor: JSONValue?
            for _ in 0..<100 {
                let params: JSONValue? = cursor.map { .object([("cursor", $0)]) }
                let response: JSONValue
                do throws(UpstreamFailure) {
                    response = try await s.upstream.request("tools/list", params: params, session: session)
                } catch {
                    // A new session while listing: the whole list again, from that session.
                    if error.kind == UpstreamFailure.sessionChanged.kind, attempt < 2 { continue fetching }
                    throw upstreamFailed(s, error)
                }
                guard case .success(let result) = unwrap(response), case .array(let items)? = result["tools"] else {
                    throw JSONRPC.RPCError(JSONRPC.upstreamUnavailable, "the MCP server's tool list is unreadable")
                }
                for item in items.prefix(10_000 - tools.count) {
                    // Printable ASCII names only: Swift compares strings by canonical equivalence, and two names the
                    // upstream tells apart by their bytes must never meet in one entry here.
                    guard let name = item["name"]?.stringValue, Self.isToolName(name) else { continue }
                    tools.append((name, item))
                }
                guard let next = result["nextCursor"], case .string = next, tools.count < 10_000 else { break }
                cursor = next
            }
            break
        }
        let statuses = pins.observe(server: s.config.name, tools: tools.map { (name: $0.0, definition: $0.1) })
        var byName: [String: MCPServerRuntime.Tool] = [:]
        var order: [String] = []
        for (name, def) in tools where byName[name] == nil {
            byName[name] = s.tool(name: name, definition: def, digest: ToolPins.digest(def).digest)
            order.append(name)
        }
        _ = statuses
        let c = MCPServerRuntime.Catalogue(
            tools: byName, order: order, fetchedAt: cp.clock.monotonicMicros, session: session)
        s.catalogue.withLock { $0 = c }
        return c
    }

    /// 1 to 128 printable ASCII characters without spaces (SEP-986 allows fewer).
    static func isToolName(_ s: String) -> Bool {
        !s.isEmpty && s.utf8.count <= 128 && s.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F }
    }

    /// A listed tool: the pinned fields only, so nothing unpinned (`_meta`, icons, unknown fields) reaches a model.
    static func listed(_ definition: JSONValue) -> JSONValue {
        guard case .object(let pairs) = definition else { return definition }
        return .object(pairs.filter { ToolPins.pinnedFields.contains($0.0) })
    }

    func upstreamFailed(_ s: MCPServerRuntime, _ e: UpstreamFailure) -> JSONRPC.RPCError {
        metrics.upstreamError(server: s.config.name, kind: e.kind)
        logger.warning(
            "MCP upstream failed",
            metadata: ["server": "\(s.config.name)", "kind": "\(e.kind)", "detail": "\(e.detail)"])
        try? cp.audit.submit(
            AuditEvent(
                kind: .system, action: "upstream.error", actor: "system", resource: "ToolServer::\"\(s.config.name)\"",
                reason: e.kind == "timeout" ? "timeout" : "unavailable"))
        return JSONRPC.RPCError(
            JSONRPC.upstreamUnavailable,
            e.kind == "timeout" ? "the MCP server did not answer in time" : "the MCP server is unavailable")
    }

    func listTools(_ c: MCPCall) async throws(JSONRPC.RPCError) -> JSONValue {
        var out: [JSONValue] = []
        var hidden = 0
        let targets = addressed(c)
        if let name = c.server, !hasServerScope(c.agent, name) {
            audit(
                c, action: "mcp:tools/list", resource: "ToolServer::\"\(name)\"", allowed: true, reason: nil,
                details: [("listed", "0")])
            return .object([("tools", .array([]))])
        }
        for s in targets {
            let cat: MCPServerRuntime.Catalogue
            do throws(JSONRPC.RPCError) {
                cat = try await catalogue(s, maxAge: .seconds(s.config.refresh))
            } catch {
                // The aggregate lists what it can; one server's endpoint reports the failure.
                if c.server != nil { throw error }
                continue
            }
            for name in cat.order {
                guard let t = cat.tools[name] else { continue }
                // Listed only when the policies let the agent see it and some call of it may be allowed (the
                // call's per-call context unknown): a tool no call can reach is not offered.
                guard pins.status(server: s.config.name, tool: name, digest: t.digest) == .pinned,
                    hasToolScope(c.agent, s.config.name, name),
                    decide(c, action: "mcp:tools/list", resource: t.entity, parent: s.entity, context: [:]).allowed,
                    mayDecide(
                        c, action: "mcp:tools/call", resource: t.entity, parent: s.entity,
                        unknown: Self.perCallContextKeys)
                else {
                    hidden += 1
                    continue
                }
                let shown = Self.listed(t.definition)
                out.append(c.server == nil ? shown.setting("name", .string(s.config.name + "." + name)) : shown)
            }
        }
        audit(
            c, action: "mcp:tools/list", resource: c.server.map { "ToolServer::\"\($0)\"" } ?? "ToolServer::\"*\"",
            allowed: true, reason: nil, details: [("listed", String(out.count)), ("hidden", String(hidden))])
        return .object([("tools", .array(out))])
    }

    /// Resolves a tool name: `<tool>` on a server's endpoint, `<server>.<tool>` on the aggregate.
}
