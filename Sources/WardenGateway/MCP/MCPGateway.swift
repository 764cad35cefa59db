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
    public let metrics: MCPMetrics

    /// Protocol versions served: the stateless era, and the session era with its two predecessors.
    static let modernVersion = "2026-07-28"
    static let sessionVersions: Set<String> = ["2025-11-25", "2025-06-18", "2025-03-26"]

    public init(gateway: Gateway, approvals: ApprovalQueue = ApprovalQueue()) throws(WardenError) {
        self.gateway = gateway
        self.metrics = MCPMetrics(backend: gateway.metricsBackend)
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
                    url: url, http: gateway.upstreams, timeout: c.timeout, maxBytes: c.maxMessageBytes,
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
        var pipelineCall = Call(source: context.source)
        let path = request.uri.path
        // `/mcp` or `/mcp/<server>` exactly, as the raw path (the router may match `//mcp/x` too).
        guard path == "/mcp" || (path.hasPrefix("/mcp/") && !path.dropFirst(5).hasPrefix("/")) else {
            return Self.httpError(.notFound, JSONRPC.RPCError(JSONRPC.invalidRequest, "no such path"))
        }
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
