// Why this file is long: it holds the MCP front end whole (both protocol eras, every method, the Cedar and audit
// steps); the one-enforcement-core issue moves authentication, decision and recording into shared pipeline stages
// and splits what stays by method.
import AsyncHTTPClient
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

/// Warden's version, as servers and clients see it.
public enum WardenVersion {
    public static let current = "0.6.0"
}

/// One upstream MCP server at run time: its configuration, the connection to it, its Cedar `ToolServer` entity and
/// the last tool catalogue fetched from it.
package final class MCPServerRuntime: Sendable {
    let config: MCPServerConfig
    let upstream: any MCPUpstream
    let entity: Entity
    package let catalogue = Mutex<Catalogue?>(nil)

    struct Tool: Sendable {
        let name: String
        let definition: JSONValue
        let digest: String
        let validator: SchemaValidator
        /// `Tool::"<server>/<tool>"` with `name`, `server`, `id`, `risk`, `dataClass`, in `ToolServer::"<server>"`.
        let entity: Entity
        let config: MCPToolConfig
    }

    package struct Catalogue: Sendable {
        var tools: [String: Tool]
        var order: [String]
        /// When, on the clock's monotonic reading (microseconds).
        var fetchedAt: Int64
        /// The upstream session it was fetched in (``MCPUpstream/openSession()``): a new session (a restarted
        /// server) may serve other definitions, so the catalogue is fetched again.
        var session: Int
    }

    init(config: MCPServerConfig, upstream: any MCPUpstream) {
        self.config = config
        self.upstream = upstream
        self.entity = Entity(
            uid: EntityUID("ToolServer", config.name), attributes: ["name": .string(config.name)], parents: [])
    }

    func tool(name: String, definition: JSONValue, digest: String) -> Tool {
        let c = config.tool(name)
        let id = config.name + "/" + name
        return Tool(
            name: name, definition: definition, digest: digest,
            validator: SchemaValidator(definition["inputSchema"] ?? .object([])),
            entity: Entity(
                uid: EntityUID("Tool", id),
                attributes: [
                    "name": .string(name), "server": .string(config.name), "id": .string(id),
                    "risk": .string(c.risk), "dataClass": .string(c.dataClass),
                    "allTools": .string(config.name + "/*"),
                ], parents: [entity.uid]),
            config: c)
    }
}

/// The MCP gateway (`docs/mcp.md`): MCP over streamable HTTP at `/mcp/<server>` and `/mcp` (every server the agent
/// may see, tool names prefixed `<server>.`), in both protocol eras (2025-11-25 with `initialize` and
/// `Mcp-Session-Id`; 2026-07-28 stateless with `server/discover` and `Mcp-Method`/`Mcp-Name` headers). Every call is
/// authenticated like the HTTP gateway's, decided per tool by Cedar, checked against the pinned definition and its
/// input schema, possibly held for a human's approval, recorded, forwarded with Warden's own session and brokered
/// credential, and its result scanned for secrets and personal data.
public final class MCPGateway: Sendable {
    let gateway: Gateway
    var cp: ControlPlane { gateway.cp }
    package let servers: [String: MCPServerRuntime]
    let order: [String]
    public let pins: ToolPins
    public let approvals: ApprovalQueue
    let sessions = MCPSessions()
    let dlp = DLPScanner()
    let logger: Logger
    let maxMessageBytes: Int
    public let metrics = MCPMetrics()

    /// Protocol versions served: the stateless era, and the session era with its two predecessors.
    static let modernVersion = "2026-07-28"
    static let sessionVersions: Set<String> = ["2025-11-25", "2025-06-18", "2025-03-26"]

    public init(gateway: Gateway, approvals: ApprovalQueue = ApprovalQueue()) throws(WardenError) {
        self.gateway = gateway
        let cp = gateway.cp
        self.pins = try ToolPins(store: cp.store, clock: cp.clock)
        self.approvals = approvals
        var servers: [String: MCPServerRuntime] = [:]
        for (name, c) in cp.config.mcpServers {
            let secrets = cp.secrets
            let cred = c.credential
            let credential: @Sendable () -> (String, String)? = {
                guard let cred, let value = secrets.value(cred.secret) else { return nil }
                return (cred.env ?? cred.header, cred.prefix + value)
            }
            let upstream: any MCPUpstream
            switch c.transport {
            case .http(let url):
                upstream = HTTPUpstream(
                    url: url, http: gateway.http, timeout: c.timeout, maxBytes: c.maxMessageBytes,
                    credential: credential)
            case .stdio(let command, let cwd):
                upstream = StdioUpstream(
                    config: c, command: command, cwd: cwd, home: cp.config.data + "/mcp/" + name,
                    credential: credential)
            }
            servers[name] = MCPServerRuntime(config: c, upstream: upstream)
        }
        self.servers = servers
        self.order = servers.keys.sorted()
        self.maxMessageBytes = servers.values.map(\.config.maxMessageBytes).max() ?? (4 << 20)
        var logger = Logger(label: "warden.mcp")
        logger.logLevel = .info
        self.logger = logger
    }

    public func shutdown() async {
        for s in servers.values { await s.upstream.shutdown() }
    }

    /// An MCP request in the pipeline: the pipeline's ``Call`` (authenticated: its ``Caller``), the protocol era and
    /// the server addressed (nil on the aggregate endpoint).
    struct MCPCall {
        let call: Call
        let caller: Caller
        let era: String
        let server: String?
        var agent: AuthenticatedAgent { caller.agent }
        var principal: Entity { caller.principal }
        var trust: Int { caller.trust }
        var source: String? { call.source }
    }

    var pipeline: Pipeline { gateway.pipeline }

    // MARK: HTTP

    /// Handles `/mcp` and `/mcp/<server>`.
    package func handle(_ request: Request, context: WardenRequestContext, base: String, mutualTLS: Bool) async
        -> Response
    {
        var pipelineCall = Call(.mcp, source: context.source)
        let path = request.uri.path
        var serverName: String?
        if path.count > 5 {
            var name = String(path.dropFirst(5))
            if name.hasSuffix("/") { name.removeLast() }
            serverName = name
        }
        let metadataURL = base + "/.well-known/oauth-protected-resource" + path
        // Labels and audit resources name configured servers only (a path is the agent's input).
        let label = serverName.flatMap { servers[$0] == nil ? nil : $0 } ?? "*"
        // 1. Authenticate (the agent's credential stops here: the upstream gets Warden's).
        let caller: Caller
        do throws(Refusal) {
            caller = try await pipeline.authenticate.run(
                &pipelineCall, request: request, context: context, base: base, mutualTLS: mutualTLS)
        } catch {
            if !error.isChallenge { metrics.count(server: label, method: "auth", outcome: error.reason.rawValue) }
            let resource = "ToolServer::\"\(label)\""
            pipeline.recorder.refused(
                pipelineCall,
                Recorder.Entry(
                    action: "mcp:connect", resource: resource, risk: Recorder.RiskFeed(.tool, resource: resource)),
                error)
            var response = error.response(nonce: cp.currentNonce())
            // RFC 9728 §5.1: point standard MCP clients at the protected-resource metadata.
            if let challenge = response.headers[.wwwAuthenticate] {
                response.headers[.wwwAuthenticate] =
                    challenge + ", resource_metadata=\(HTTPSupport.quoted(metadataURL))"
            }
            return response
        }
        let agent = caller.agent
        let call = MCPCall(call: pipelineCall, caller: caller, era: "", server: serverName)
        if let serverName, servers[serverName] == nil {
            return Self.httpError(.notFound, JSONRPC.RPCError(JSONRPC.invalidRequest, "no MCP server '\(serverName)'"))
        }
        switch request.method {
        case .post: break
        case .delete:
            // Ends a 2025-11-25 session.
            guard let id = request.headers[.mcpSessionID] else {
                return Self.httpError(
                    .badRequest, JSONRPC.RPCError(JSONRPC.invalidRequest, "Mcp-Session-Id is required"))
            }
            return sessions.end(id, agentID: agent.agent.id)
                ? Response(status: .noContent)
                : Self.httpError(.notFound, JSONRPC.RPCError(JSONRPC.invalidRequest, "no such session"))
        default:
            // No server-initiated stream (GET): allowed by the transport (405).
            var headers = HTTPFields()
            headers[.allow] = "POST, DELETE"
            return Response(status: .methodNotAllowed, headers: headers)
        }
        // 2. The message (bounded), the era, and the era's own checks.
        let bytes: [UInt8]
        let limit = serverName.flatMap { servers[$0]?.config.maxMessageBytes } ?? maxMessageBytes
        do { bytes = try await HTTPSupport.body(request, limit: limit) } catch {
            refused(call, label, "mcp:message", "message_too_large")
            return Self.httpError(
                .contentTooLarge, JSONRPC.RPCError(JSONRPC.invalidRequest, "the message is larger than \(limit) bytes"))
        }
        let versionHeader = request.headers[.mcpProtocolVersion]
        let message: JSONRPC.Message
        do throws(JSONRPC.RPCError) {
            message = try JSONRPC.parse(bytes, maxBytes: limit)
        } catch {
            metrics.count(server: label, method: "invalid", outcome: "invalid_message")
            refused(call, label, "mcp:message", "invalid_message")
            return Self.httpError(.badRequest, error)
        }
        var era: String
        if let versionHeader {
            guard versionHeader == Self.modernVersion || Self.sessionVersions.contains(versionHeader) else {
                return Self.httpError(
                    .badRequest,
                    JSONRPC.RPCError(
                        JSONRPC.unsupportedProtocolVersion,
                        "unsupported MCP-Protocol-Version \(versionHeader.prefix(40))", id: message.id,
                        data: .object([
                            (
                                "supported",
                                .array(([Self.modernVersion] + Self.sessionVersions.sorted(by: >)).map { .string($0) })
                            ),
                            ("requested", .string(String(versionHeader.prefix(40)))),
                        ])))
            }
            era = versionHeader
        } else if case .request(_, "initialize", _) = message {
            era = "2025-11-25"
        } else if case .request(_, let m, _) = message, m == "server/discover" {
            era = Self.modernVersion
        } else {
            era = "2025-03-26"
        }
        var sessionHeader: HTTPFields = [:]
        if era == Self.modernVersion {
            if let mismatch = Self.headerMismatch(message, request.headers) {
                metrics.count(server: label, method: message.method ?? "?", outcome: "header_mismatch")
                refused(call, label, message.method.map { "mcp:" + $0 } ?? "mcp:message", "header_mismatch")
                return Self.httpError(.badRequest, mismatch)
            }
        } else if case .request(_, "initialize", let params) = message {
            let asked = params?["protocolVersion"]?.stringValue ?? ""
            era = Self.sessionVersions.contains(asked) ? asked : "2025-11-25"
            sessionHeader[.mcpSessionID] = sessions.create(agentID: agent.agent.id, version: era, now: cp.now())
        } else {
            guard let id = request.headers[.mcpSessionID] else {
                refused(call, label, message.method.map { "mcp:" + $0 } ?? "mcp:message", "session_required")
                return Self.httpError(
                    .badRequest,
                    JSONRPC.RPCError(
                        JSONRPC.invalidRequest, "Mcp-Session-Id is required (initialize first)", id: message.id))
            }
            guard let v = sessions.use(id, agentID: agent.agent.id, now: cp.now()) else {
                refused(call, label, message.method.map { "mcp:" + $0 } ?? "mcp:message", "unknown_session")
                return Self.httpError(
                    .notFound, JSONRPC.RPCError(JSONRPC.invalidRequest, "no such session", id: message.id))
            }
            if versionHeader == nil { era = v }
        }
        let c = MCPCall(call: pipelineCall, caller: caller, era: era, server: serverName)
        // 3. Dispatch.
        switch message {
        case .notification, .response:
            // Client notifications (initialized, cancelled) and responses need no answer here.
            return Response(status: .accepted, headers: sessionHeader)
        case .request(let id, let method, let params):
            let body: JSONValue
            var status = HTTPResponse.Status.ok
            do throws(JSONRPC.RPCError) {
                var result = try await dispatch(c, method: method, params: params)
                if era == Self.modernVersion { result = Self.modernResult(result, method: method) }
                body = JSONRPC.result(id: id, result)
                metrics.count(server: serverName ?? "*", method: method, outcome: "ok")
            } catch {
                var e = error
                e.id = id
                body = e.json
                metrics.count(server: serverName ?? "*", method: method, outcome: String(e.code))
                // 2026-07-28 gives some codes an HTTP status of their own; the session era answers 200.
                if era == Self.modernVersion { status = Self.modernStatus[e.code] ?? .ok }
            }
            return Self.reply(body, status: status, request: request, headers: sessionHeader)
        }
    }

    /// Records a refusal of the transport layer (bad message, header mismatch, session) as the agent's.
    func refused(_ c: MCPCall, _ server: String, _ action: String, _ reason: String) {
        audit(c, action: action, resource: "ToolServer::\"\(server)\"", allowed: false, reason: reason, details: [])
    }

    /// Methods whose 2026-07-28 results carry caching directives.
    static let cacheableMethods: Set<String> = [
        "prompts/list", "resources/list", "resources/read", "resources/templates/list", "server/discover", "tools/list",
    ]

    /// A result as the 2026-07-28 schema wants it: `resultType` always, and for cacheable methods `ttlMs: 0` and
    /// `cacheScope: "private"` (Warden's answers are per agent and pins can change at any time, so never shared or
    /// kept, whatever the upstream said).
    static func modernResult(_ result: JSONValue, method: String) -> JSONValue {
        var r = result
        if r["resultType"] == nil { r = r.setting("resultType", .string("complete")) }
        if cacheableMethods.contains(method) {
            r = r.setting("ttlMs", .number("0")).setting("cacheScope", .string("private"))
        }
        return r
    }

    /// 2026-07-28: `Mcp-Method` must name the body's method, and `Mcp-Name` the tool, prompt or resource of the
    /// methods that have one; missing or different is a 400.
    static func headerMismatch(_ message: JSONRPC.Message, _ headers: HTTPFields) -> JSONRPC.RPCError? {
        var id: JSONRPC.ID?
        var params: JSONValue?
        switch message {
        case .request(let i, _, let p):
            id = i
            params = p
        case .notification(_, let p): params = p
        case .response: return nil
        }
        guard let method = message.method else { return nil }
        for name in [HTTPField.Name.mcpMethod, .mcpName, .mcpProtocolVersion] where headers[values: name].count > 1 {
            return JSONRPC.RPCError(JSONRPC.headerMismatch, "\(name) appears more than once", id: id)
        }
        guard let h = headers[.mcpMethod] else {
            return JSONRPC.RPCError(JSONRPC.headerMismatch, "the Mcp-Method header is required", id: id)
        }
        guard h == method else {
            return JSONRPC.RPCError(JSONRPC.headerMismatch, "Mcp-Method does not match the body's method", id: id)
        }
        // Requests carry the per-request envelope: `_meta` with the protocol version (equal to the header) and the
        // client's capabilities.
        if id != nil {
            guard let meta = params?["_meta"], case .object = meta,
                let version = meta["io.modelcontextprotocol/protocolVersion"],
                meta["io.modelcontextprotocol/clientCapabilities"] != nil
            else {
                return JSONRPC.RPCError(
                    JSONRPC.invalidParams,
                    "params._meta must carry io.modelcontextprotocol/protocolVersion and clientCapabilities", id: id)
            }
            guard case .string(let v) = version, v == headers[.mcpProtocolVersion] else {
                return JSONRPC.RPCError(
                    JSONRPC.headerMismatch, "MCP-Protocol-Version does not match params._meta", id: id)
            }
        }
        let named: String? =
            switch method {
            case "tools/call", "prompts/get": params?["name"]?.stringValue
            case "resources/read": params?["uri"]?.stringValue
            default: nil
            }
        guard let named else { return nil }
        guard let header = headers[.mcpName].flatMap(decodeHeaderValue) else {
            return JSONRPC.RPCError(
                JSONRPC.headerMismatch, "a valid Mcp-Name header is required for \(method)", id: id)
        }
        guard header == named else {
            return JSONRPC.RPCError(JSONRPC.headerMismatch, "Mcp-Name does not match the body", id: id)
        }
        return nil
    }

    /// A header value as MCP encodes it: verbatim, or `=?base64?<canonical base64 of UTF-8>?=`; nil when malformed.
    static func decodeHeaderValue(_ value: String) -> String? {
        guard value.hasPrefix("=?base64?"), value.hasSuffix("?="), value.utf8.count >= 11 else { return value }
        let payload = String(value.dropFirst(9).dropLast(2))
        guard let data = Data(base64Encoded: payload), data.base64EncodedString() == payload,
            let text = String(data: data, encoding: .utf8)
        else { return nil }
        return text
    }

    static func httpError(_ status: HTTPResponse.Status, _ error: JSONRPC.RPCError) -> Response {
        HTTPSupport.json(status, error.json)
    }

    /// JSON, or one server-sent event when the client accepts only `text/event-stream`.
    /// The HTTP status of a JSON-RPC error in the 2026-07-28 era.
    static let modernStatus: [Int: HTTPResponse.Status] = [
        JSONRPC.parseError: .badRequest, JSONRPC.invalidRequest: .badRequest, JSONRPC.invalidParams: .badRequest,
        JSONRPC.headerMismatch: .badRequest, JSONRPC.unsupportedProtocolVersion: .badRequest,
        JSONRPC.methodNotFound: .notFound,
    ]

    static func reply(
        _ body: JSONValue, status: HTTPResponse.Status = .ok, request: Request, headers: HTTPFields
    ) -> Response {
        let accept = request.headers[values: .accept].joined(separator: ",").lowercased()
        if !accept.isEmpty, !accept.contains("application/json"), !accept.contains("*/*"),
            accept.contains("text/event-stream")
        {
            var h = headers
            h[.contentType] = "text/event-stream"
            h[.cacheControl] = "no-store"
            return Response(
                status: status, headers: h,
                body: .init(byteBuffer: ByteBuffer(string: "event: message\ndata: \(body.serialized)\n\n")))
        }
        return HTTPSupport.json(status, body, headers: headers)
    }

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
            let r = resource ?? "Tool::\"\(resourceName)\""
            return refused(
                c, Self.judged("mcp:tools/call", r, details),
                Refusal(.forbidden, .accessDenied, Reason(reason), message, policies: policies), code: code)
        }
        guard let (s, tool) = resolve(c, name) else {
            throw refuse(JSONRPC.invalidParams, "unknown_tool", "unknown tool: \(name.prefix(128))")
        }
        let server = s.config.name
        let resource = "Tool::\"\(server)/\(tool)\""
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
        } else if cp.risk.needsApproval(c.agent.agent.spiffeID.description, now: Double(cp.now())) {
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
        do throws(Refusal) {
            try pipeline.recorder.admit(
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
                bytesOut: Int64(screened.serialized.utf8.count))
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
    func listOther(_ c: MCPCall, method: String, params: JSONValue?) async throws(JSONRPC.RPCError) -> JSONValue {
        guard let name = c.server, let s = servers[name] else {
            throw JSONRPC.RPCError(JSONRPC.methodNotFound, "\(method) is served at /mcp/<server>")
        }
        guard hasServerScope(c.agent, name) else {
            let key =
                method == "prompts/list" ? "prompts" : method == "resources/list" ? "resources" : "resourceTemplates"
            return .object([(key, .array([]))])
        }
        let response: JSONValue
        do throws(UpstreamFailure) {
            var p = params?.removing("_meta")
            if case .object(let pairs)? = p, pairs.isEmpty { p = nil }
            response = try await s.upstream.request(method, params: p)
        } catch {
            throw upstreamFailed(s, error)
        }
        guard case .success(let result) = unwrap(response) else {
            if case .failure(let e) = unwrap(response) { throw e }
            throw JSONRPC.RPCError(JSONRPC.internalError, "no result")
        }
        let (key, action, idKey, type) =
            switch method {
            case "prompts/list": ("prompts", "mcp:prompts/get", "name", "Prompt")
            case "resources/list": ("resources", "mcp:resources/read", "uri", "Resource")
            default: ("resourceTemplates", "mcp:resources/read", "uriTemplate", "Resource")
            }
        guard case .array(let items)? = result[key] else { return result }
        let kept = items.filter { item in
            guard let id = item[idKey]?.stringValue else { return false }
            return decide(c, action: action, resource: otherEntity(type, s, id), parent: s.entity, context: [:]).allowed
        }
        return result.setting(key, .array(kept))
    }

    func otherEntity(_ type: String, _ s: MCPServerRuntime, _ id: String) -> Entity {
        let key = type == "Prompt" ? "name" : "uri"
        return Entity(
            uid: EntityUID(type, s.config.name + "/" + id),
            attributes: [
                key: .string(id), "server": .string(s.config.name), "allTools": .string(s.config.name + "/*"),
            ],
            parents: [s.entity.uid])
    }

    /// `resources/read` and `prompts/get`: decided per call, recorded, forwarded, screened.
    func readOther(_ c: MCPCall, method: String, params: JSONValue) async throws(JSONRPC.RPCError) -> JSONValue {
        let isPrompt = method == "prompts/get"
        let key = isPrompt ? "name" : "uri"
        guard let id = params[key]?.stringValue, !id.isEmpty, id.utf8.count <= 2048 else {
            throw JSONRPC.RPCError(JSONRPC.invalidParams, "\(method) needs params.\(key)")
        }
        guard let name = c.server, let s = servers[name] else {
            throw JSONRPC.RPCError(JSONRPC.methodNotFound, "\(method) is served at /mcp/<server>")
        }
        let action = isPrompt ? "mcp:prompts/get" : "mcp:resources/read"
        let entity = otherEntity(isPrompt ? "Prompt" : "Resource", s, id)
        let resource = entity.uid.description
        var extra: [String: Value] = [:]
        var forwarded: [(String, JSONValue)] = [(key, .string(id))]
        var details: [(String, String)] = [("server", name), (key, String(id.prefix(512)))]
        if isPrompt {
            let raw = params["arguments"] ?? .object([])
            guard case .object = raw else {
                throw JSONRPC.RPCError(JSONRPC.invalidParams, "params.arguments must be an object")
            }
            // Numbers in their one spelling, for Cedar and the upstream alike.
            guard let args = JSONNumber.canonicalizing(raw) else {
                throw JSONRPC.RPCError(JSONRPC.invalidParams, Self.numberOutOfRange)
            }
            guard case .some(.some(let argsValue)) = Self.cedarValue(args) else { throw Self.argumentsTooLarge }
            extra["arguments"] = argsValue
            forwarded.append(("arguments", args))
            details.append(
                ("arguments_digest", "sha256:" + Attestation.hex(SHA256.hash(data: Array(args.canonical.utf8)))))
        }
        guard hasServerScope(c.agent, name) else {
            throw refused(
                c, Self.judged(action, resource, details),
                Refusal(.forbidden, .accessDenied, .insufficientScope, "the token carries no tool scope of \(name)"),
                code: JSONRPC.accessDenied)
        }
        let verdict = decide(c, action: action, resource: entity, parent: s.entity, context: extra)
        guard verdict.allowed else {
            throw refused(
                c, Self.judged(action, resource, details), Decide.refusal(verdict), code: JSONRPC.accessDenied)
        }
        do throws(Refusal) {
            try pipeline.limit.run(c.caller)
            try pipeline.recorder.admit(c.call, Self.judged(action, resource, details), policies: verdict.policies)
        } catch {
            throw refused(
                c, Self.judged(action, resource, details), error,
                code: error.reason == .rateLimited ? JSONRPC.rateLimited : JSONRPC.internalError)
        }
        let response: JSONValue
        do throws(UpstreamFailure) {
            response = try await s.upstream.request(method, params: .object(forwarded))
        } catch {
            throw upstreamFailed(s, error)
        }
        switch unwrap(response) {
        case .success(let result): return try screen(c, s, result, resource: resource, details: details)
        case .failure(let e): throw screened(s, e)
        }
    }

    // MARK: Cedar

    /// Decides `action` on `resource` (in its `ToolServer`) for the caller (``Decide``), with this front end's
    /// context keys: `server`, `protocolVersion`, `approved` (false unless given), and `arguments` when given.
    func decide(
        _ c: MCPCall, action: String, resource: Entity, parent: Entity, context extra: [String: Value]
    ) -> PolicyEngine.Verdict {
        pipeline.decide.run(
            c.caller, source: c.source, action: action, resource: resource.uid, entities: [resource, parent],
            context: Self.context(c, parent: parent, extra))
    }

    /// The context keys a `tools/call` sets per call, on top of what ``decide(_:action:resource:parent:context:)``
    /// sets for every request: the arguments, and `approved` (true when a human approves a held call).
    static let perCallContextKeys: Set<String> = ["arguments", "approved"]

    /// Whether some request like ``decide(_:action:resource:parent:context:)``'s, with the context keys `unknown`
    /// not known yet, may be allowed (Cedar partial evaluation); false when none can be.
    func mayDecide(_ c: MCPCall, action: String, resource: Entity, parent: Entity, unknown: Set<String>) -> Bool {
        pipeline.decide.may(
            c.caller, source: c.source, action: action, resource: resource.uid, entities: [resource, parent],
            unknown: unknown, context: Self.context(c, parent: parent, [:]))
    }

    static func context(_ c: MCPCall, parent: Entity, _ extra: [String: Value]) -> [String: Value] {
        var context: [String: Value] = [
            "server": .string(parent.uid.id), "approved": .bool(false), "protocolVersion": .string(c.era),
        ]
        for (k, v) in extra { context[k] = v }
        return context
    }

    /// Arguments beyond what is given to Cedar whole: entries per object or array, and nesting.
    static let maxArgumentEntries = 1000
    static let maxArgumentDepth = 8

    /// JSON arguments as a Cedar value: objects as records, arrays as sets, numbers by their exact value (integers in
    /// Int64 as longs whatever their spelling, others as their canonical spelling: ``JSONNumber``), nulls left out.
    /// nil when the arguments are larger or deeper than the limits, or a number is out of range: the call is then
    /// refused, never decided on a trimmed copy (a policy must see everything the upstream will).
    static func cedarValue(_ v: JSONValue, depth: Int = 0) -> Value?? {
        guard depth <= maxArgumentDepth else { return nil }
        switch v {
        case .null: return .some(nil)
        case .bool(let b): return .bool(b)
        case .number(let n): return JSONNumber(n).map { $0.cedar }
        case .string(let s): return .string(s)
        case .array(let items):
            guard items.count <= maxArgumentEntries else { return nil }
            var out = Set<Value>()
            for item in items {
                guard let converted = cedarValue(item, depth: depth + 1) else { return nil }
                if let c = converted { out.insert(c) }
            }
            return .set(out)
        case .object(let pairs):
            guard pairs.count <= maxArgumentEntries else { return nil }
            var r: [String: Value] = [:]
            for (k, item) in pairs {
                guard let converted = cedarValue(item, depth: depth + 1) else { return nil }
                if let c = converted { r[k] = c }
            }
            return .record(r)
        }
    }

    static let numberOutOfRange = "a number's exponent has more than \(JSONNumber.maxExponentDigits) digits"

    static let argumentsTooLarge = JSONRPC.RPCError(
        JSONRPC.invalidParams,
        "the arguments are too large for policy evaluation (at most \(maxArgumentEntries) entries per object or array, \(maxArgumentDepth) levels)",
        data: .object([("reason", .string("arguments_too_large"))]))

    // MARK: Audit

    /// The record entry of an MCP call that the risk engine judges (a tool call, resource read or prompt).
    static func judged(_ action: String, _ resource: String, _ details: [(String, String)]) -> Recorder.Entry {
        Recorder.Entry(
            action: action, resource: resource, details: details, risk: Recorder.RiskFeed(.tool, resource: resource))
    }

    /// A refused call through the recorder (its record and risk event), as the JSON-RPC error the agent gets: `code`,
    /// the message, and the reason code in `data.reason`.
    func refused(_ c: MCPCall, _ entry: Recorder.Entry, _ refusal: Refusal, code: Int) -> JSONRPC.RPCError {
        pipeline.recorder.refused(c.call, entry, refusal)
        return JSONRPC.RPCError(
            code, refusal.error.message, data: .object([("reason", .string(refusal.reason.rawValue))]))
    }

    /// Records a decision or an event about the call that the risk engine does not judge (best effort).
    func audit(
        _ c: MCPCall, action: String, resource: String, allowed: Bool?, reason: String?, policies: [String] = [],
        message: String? = nil, details: [(String, String)]
    ) {
        pipeline.recorder.note(
            c.call, Recorder.Entry(action: action, resource: resource, details: details),
            decision: allowed.map { $0 ? .allow : .deny }, reason: reason, policies: policies, message: message)
    }
}

extension JSONRPC.Message {
    var id: JSONRPC.ID? {
        if case .request(let id, _, _) = self { return id }
        return nil
    }
}

extension HTTPField.Name {
    static let mcpSessionID = HTTPField.Name("Mcp-Session-Id")!
    static let mcpProtocolVersion = HTTPField.Name("MCP-Protocol-Version")!
    static let mcpMethod = HTTPField.Name("Mcp-Method")!
    static let mcpName = HTTPField.Name("Mcp-Name")!
}

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
