import Cedar
import Foundation
import WardenCore
import WardenRisk

/// What the gateway knows about one upstream tool beyond its definition: the Cedar attributes of its
/// `Tool::"<server>/<tool>"` entity and whether every call needs a human's approval.
public struct MCPToolConfig: Sendable, Hashable {
    /// `low`, `medium` or `high` (Cedar `resource.risk`); `high` puts every call on hold for approval.
    public var risk: String
    /// The data class the tool touches (Cedar `resource.dataClass`), such as `public`, `internal`, `pii`, `payment`.
    public var dataClass: String
    /// Every call waits for a human's approval (implied by `risk: high`).
    public var approval: Bool

    public init(risk: String = "low", dataClass: String = "internal", approval: Bool = false) {
        self.risk = risk
        self.dataClass = dataClass
        self.approval = approval
    }

    public var needsApproval: Bool { approval || risk == "high" }
}

/// What the DLP step does with a tool result that carries a secret or personal data.
public enum DLPAction: String, Sendable, Hashable {
    /// Replace each finding with `[REDACTED:<class>]` and pass the rest.
    case redact
    /// Withhold the whole result (a JSON-RPC error to the agent).
    case block
    /// No scan.
    case off
}

/// One upstream MCP server (`mcp_servers.<name>`): reached over streamable HTTP (`url`) or started as a supervised
/// process speaking MCP over stdio (`command`).
public struct MCPServerConfig: Sendable, Hashable {
    public enum Transport: Sendable, Hashable {
        case http(url: String)
        case stdio(command: [String], cwd: String?)
    }

    public var name: String
    public var transport: Transport
    /// For stdio servers: the only environment the process gets besides `PATH`, `LANG` and `HOME`.
    public var env: [String: String] = [:]
    /// The brokered credential: in a header to an HTTP server, in an environment variable (`env`) to a stdio one.
    public var credential: CredentialInjection?
    /// Per tool; tools not named get ``defaultTool``.
    public var tools: [String: MCPToolConfig] = [:]
    public var defaultTool = MCPToolConfig()
    public var dlp: DLPAction = .redact
    /// How long a call waits for an approver, seconds.
    public var approvalTimeout: Int64 = 300
    /// Deadline of one upstream exchange, seconds.
    public var timeout: Int64 = 30
    /// Largest JSON-RPC message accepted from the agent or the upstream, bytes.
    public var maxMessageBytes = 4 << 20
    /// How old the cached tool catalogue may be when a call is checked against the pins, seconds (0: fetch it before
    /// every call). A client's `tools/list` always fetches it.
    public var refresh: Int64 = 10

    public init(name: String, transport: Transport) {
        self.name = name
        self.transport = transport
    }

    public func tool(_ name: String) -> MCPToolConfig { tools[name] ?? defaultTool }

    static func validEnvName(_ s: String) -> Bool {
        guard let f = s.utf8.first, !(f >= 0x30 && f <= 0x39), s.utf8.count <= 128 else { return false }
        return s.utf8.allSatisfy { c in
            (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || (c >= 0x30 && c <= 0x39) || c == 0x5F
        }
    }

    static let risks: Set<String> = ["low", "medium", "high"]
}

extension WardenConfig {
    /// Parses `mcp_servers:`.
    static func parseMCPServers(
        _ v: JSONValue, fail: (String, String) -> WardenError
    ) throws(WardenError) -> [String: MCPServerConfig] {
        guard case .object(let pairs) = v else {
            throw fail("mcp_servers", "must be a mapping of server names to servers")
        }
        guard pairs.count <= 1000 else { throw fail("mcp_servers", "at most 1000 servers") }
        var out: [String: MCPServerConfig] = [:]
        for (name, sv) in pairs {
            let path = "mcp_servers.\(name)"
            guard RouteConfig.validName(name), !name.contains(".") else {
                throw fail(path, "a server name is 1 to 64 letters, digits, '_' or '-'")
            }
            guard case .object(let fields) = sv else { throw fail(path, "must be a mapping with url or command") }
            var s = MCPServerConfig(name: name, transport: .http(url: ""))
            var url: String?
            var command: [String]?
            var cwd: String?
            for (k, fv) in fields {
                let p = "\(path).\(k)"
                switch k {
                case "url":
                    let u = try text(fv, p, fail: fail)
                    guard RouteConfig.parseUpstream(u) != nil else {
                        throw fail(p, "must be an http(s) URL with a host, without query, fragment or user info")
                    }
                    url = u
                case "command":
                    guard case .array(let items) = fv, !items.isEmpty, items.count <= 64 else {
                        throw fail(p, "must be a list: the program and its arguments")
                    }
                    var list: [String] = []
                    for (i, item) in items.enumerated() { list.append(try text(item, "\(p)[\(i)]", fail: fail)) }
                    command = list
                case "cwd": cwd = try text(fv, p, fail: fail)
                case "env":
                    guard case .object(let vars) = fv, vars.count <= 256 else {
                        throw fail(p, "must be a mapping of variable names to values")
                    }
                    for (ek, ev) in vars {
                        guard MCPServerConfig.validEnvName(ek) else {
                            throw fail("\(p).\(ek)", "must be an environment variable name")
                        }
                        guard case .string(let value) = ev, value.utf8.count <= 4096, !value.contains("\0") else {
                            throw fail("\(p).\(ek)", "must be a string")
                        }
                        s.env[ek] = value
                    }
                case "credential":
                    s.credential = try parseCredential(fv, p, owner: name, allowEnv: true, fail: fail)
                case "tools":
                    guard case .object(let tools) = fv, tools.count <= 10_000 else {
                        throw fail(p, "must be a mapping of tool names to {risk, data_class, approval}")
                    }
                    for (tk, tv) in tools {
                        s.tools[tk] = try parseTool(tv, "\(p).\(tk)", fail: fail)
                    }
                case "risk", "data_class":
                    let t = try parseTool(.object([(k, fv)]), path, fail: fail)
                    if k == "risk" { s.defaultTool.risk = t.risk } else { s.defaultTool.dataClass = t.dataClass }
                case "dlp":
                    guard case .string(let a) = fv, let action = DLPAction(rawValue: a) else {
                        throw fail(p, "must be redact, block or off")
                    }
                    s.dlp = action
                case "approval_timeout":
                    guard let n = durationValue(fv), (1...86_400).contains(n) else {
                        throw fail(p, "must be a duration from 1s to 1d")
                    }
                    s.approvalTimeout = n
                case "timeout":
                    guard let n = durationValue(fv), (1...3600).contains(n) else {
                        throw fail(p, "must be a duration from 1s to 1h")
                    }
                    s.timeout = n
                case "refresh":
                    guard let n = durationValue(fv), (0...3600).contains(n) else {
                        throw fail(p, "must be a duration from 0s to 1h")
                    }
                    s.refresh = n
                case "max_message_bytes":
                    guard let n = whole(fv, in: 1024...(64 << 20)) else {
                        throw fail(p, "must be a whole number of bytes from 1024 to 67108864")
                    }
                    s.maxMessageBytes = n
                default:
                    throw fail(
                        p,
                        "unknown key (known: url, command, cwd, env, credential, tools, risk, data_class, dlp, approval_timeout, timeout, refresh, max_message_bytes)"
                    )
                }
            }
            switch (url, command) {
            case (let u?, nil):
                s.transport = .http(url: u)
                if s.credential?.env != nil { throw fail("\(path).credential.env", "is for stdio servers") }
                if !s.env.isEmpty || cwd != nil { throw fail(path, "env and cwd are for stdio servers (command)") }
            case (nil, let c?):
                s.transport = .stdio(command: c, cwd: cwd)
                if let cred = s.credential, cred.env == nil {
                    throw fail("\(path).credential", "a stdio server gets its credential in a variable: {secret, env}")
                }
            default: throw fail(path, "needs exactly one of url (streamable HTTP) and command (stdio)")
            }
            out[name] = s
        }
        return out
    }

    static func parseTool(
        _ v: JSONValue, _ path: String, fail: (String, String) -> WardenError
    ) throws(WardenError) -> MCPToolConfig {
        guard case .object(let fields) = v else { throw fail(path, "must be {risk, data_class, approval}") }
        var t = MCPToolConfig()
        for (k, fv) in fields {
            let p = "\(path).\(k)"
            switch k {
            case "risk":
                guard case .string(let r) = fv, MCPServerConfig.risks.contains(r) else {
                    throw fail(p, "must be low, medium or high")
                }
                t.risk = r
            case "data_class":
                let d = try text(fv, p, fail: fail)
                guard d.utf8.count <= 64 else { throw fail(p, "at most 64 bytes") }
                t.dataClass = d
            case "approval":
                guard case .bool(let b) = fv else { throw fail(p, "must be true or false") }
                t.approval = b
            default: throw fail(p, "unknown key (known: risk, data_class, approval)")
            }
        }
        return t
    }
}
