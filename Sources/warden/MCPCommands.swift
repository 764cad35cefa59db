import ArgumentParser
import Cedar
import Foundation
import WardenClient
import WardenControlPlane
import WardenCore
import WardenGateway
import WardenServer

struct MCPCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mcp",
        abstract: "The MCP gateway: pinned tool definitions.",
        subcommands: [MCPToolsCommand.self]
    )
}

struct MCPToolsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tools",
        abstract: "List, compare and approve MCP tool definitions (pins).",
        subcommands: [MCPToolsList.self, MCPToolsDiff.self, MCPToolsApprove.self, MCPToolsReject.self]
    )
}

/// `server/tool` → its parts.
func splitTool(_ s: String) throws -> (String, String) {
    let parts = s.split(separator: "/", maxSplits: 1).map(String.init)
    guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else {
        throw ValidationError("name the tool as <server>/<tool>")
    }
    return (parts[0], parts[1])
}

struct MCPToolsList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list", abstract: "Recorded tool definitions with their state (approved, pending, ...).")

    @Option(name: .customLong("mcp-server"), help: "Only this MCP server's tools.") var mcpServer: String?
    @Flag(name: .long, help: "Print JSON.") var json = false
    @OptionGroup var admin: AdminOptions

    func run() async throws {
        try await reporting {
            let result: JSONValue
            if let client = try admin.client() {
                let q = mcpServer.map { "?server=\(WardenHTTP.percentEncode($0))" } ?? ""
                result = try await client.call("GET", "/v1/admin/mcp/tools" + q)
            } else {
                let (cp, lock) = try admin.local()
                result = .object([("tools", .array(try cp.store.mcpTools(server: mcpServer).map(\.json)))])
                withExtendedLifetime(lock) {}
            }
            if json {
                print(result.serialized)
                return
            }
            let rows = result["tools"]?.arrayValue ?? []
            if rows.isEmpty { print("no tool definitions recorded") }
            for r in rows {
                let flags = (r["flags"]?.arrayValue ?? []).compactMap(\.stringValue)
                print(
                    "\(r["server"]?.stringValue ?? "?")/\(r["tool"]?.stringValue ?? "?")\t\(r["state"]?.stringValue ?? "?")\t\(r["digest"]?.stringValue ?? "")"
                        + (flags.isEmpty ? "" : "\tflags: " + flags.joined(separator: ",")))
            }
        }
    }
}

struct MCPToolsDiff: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "diff", abstract: "Show a tool's pinned definition against the ones waiting for approval.")

    @Argument(help: "The tool, as <server>/<tool>.") var tool: String
    @OptionGroup var admin: AdminOptions

    func run() async throws {
        try await reporting {
            let (server, name) = try splitTool(tool)
            let result: JSONValue
            if let client = try admin.client() {
                result = try await client.call(
                    "GET", "/v1/admin/mcp/tools/\(WardenHTTP.percentEncode(server))/\(WardenHTTP.percentEncode(name))")
            } else {
                let (cp, lock) = try admin.local()
                let rows = try cp.store.mcpTools(server: server).filter { $0.tool == name }
                guard !rows.isEmpty else { throw WardenError(.notFound, "no recorded definition of \(server)/\(name)") }
                result = .object([
                    ("pinned", rows.first { $0.state == "approved" }?.json ?? .null),
                    ("pending", .array(rows.filter { $0.state == "pending" }.map(\.json))),
                ])
                withExtendedLifetime(lock) {}
            }
            let pinned = result["pinned"].flatMap { $0 == .null ? nil : $0 }
            let pending = result["pending"]?.arrayValue ?? []
            let old = pinned?["definition"].map { pretty($0) } ?? []
            if pending.isEmpty {
                print(
                    "\(server)/\(name): nothing waiting for approval; pinned \(pinned?["digest"]?.stringValue ?? "-")")
                return
            }
            for p in pending {
                let flags = (p["flags"]?.arrayValue ?? []).compactMap(\.stringValue)
                print("--- pinned  \(pinned?["digest"]?.stringValue ?? "(none)")")
                print(
                    "+++ pending \(p["digest"]?.stringValue ?? "?")"
                        + (flags.isEmpty ? "" : "  flags: \(flags.joined(separator: ","))"))
                for line in lineDiff(old, p["definition"].map { pretty($0) } ?? []) { print(line) }
            }
            print("approve with: warden mcp tools approve \(server)/\(name) --digest <digest>")
        }
    }
}

struct MCPToolsApprove: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "approve", abstract: "Pin a tool's pending definition (the latest, or --digest).")

    @Argument(help: "The tool, as <server>/<tool>.") var tool: String
    @Option(name: .long, help: "The definition's digest (sha256:...); default: the latest pending.") var digest: String?
    @OptionGroup var admin: AdminOptions

    func run() async throws { try await decideTool(tool, digest: digest, approve: true, admin: admin) }
}

struct MCPToolsReject: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reject", abstract: "Reject a tool's pending definition (it stays hidden and refused).")

    @Argument(help: "The tool, as <server>/<tool>.") var tool: String
    @Option(name: .long, help: "The definition's digest (sha256:...); default: the latest pending.") var digest: String?
    @OptionGroup var admin: AdminOptions

    func run() async throws { try await decideTool(tool, digest: digest, approve: false, admin: admin) }
}

func decideTool(_ tool: String, digest: String?, approve: Bool, admin: AdminOptions) async throws {
    let (server, name) = try splitTool(tool)
    let verb = approve ? "approve" : "reject"
    let body: JSONValue = digest.map { .object([("digest", .string($0))]) } ?? .object([])
    try await admin.perform(
        remote: { c in
            try await c.call(
                "POST",
                "/v1/admin/mcp/tools/\(WardenHTTP.percentEncode(server))/\(WardenHTTP.percentEncode(name))/\(verb)",
                json: body)
        },
        offline: { cp in
            let pins = try ToolPins(store: cp.store, clock: cp.clock)
            return try pins.decide(server: server, tool: name, digest: digest, approve: approve, actor: "admin").json
        })
}

/// Indented JSON lines (keys sorted), for diffs.
func pretty(_ v: JSONValue, indent: String = "") -> [String] {
    let inner = indent + "  "
    switch v {
    case .object(let pairs) where !pairs.isEmpty:
        var out = ["{"]
        let sorted = pairs.sorted { $0.0 < $1.0 }
        for (i, (k, value)) in sorted.enumerated() {
            var lines = pretty(value, indent: inner)
            lines[0] = inner + JSONValue.string(k).serialized + ": " + lines[0]
            if i < sorted.count - 1 { lines[lines.count - 1] += "," }
            out += lines
        }
        out.append(indent + "}")
        return out
    case .array(let items) where !items.isEmpty:
        var out = ["["]
        for (i, item) in items.enumerated() {
            var lines = pretty(item, indent: inner)
            lines[0] = inner + lines[0]
            if i < items.count - 1 { lines[lines.count - 1] += "," }
            out += lines
        }
        out.append(indent + "]")
        return out
    default:
        return [v.serialized]
    }
}

/// A line diff (longest common subsequence): unchanged lines with two spaces, removed with `-`, added with `+`.
func lineDiff(_ a: [String], _ b: [String]) -> [String] {
    guard a.count * b.count <= 4_000_000 else { return a.map { "- " + $0 } + b.map { "+ " + $0 } }
    var lcs = Array(repeating: Array(repeating: 0, count: b.count + 1), count: a.count + 1)
    for i in stride(from: a.count - 1, through: 0, by: -1) {
        for j in stride(from: b.count - 1, through: 0, by: -1) {
            lcs[i][j] = a[i] == b[j] ? lcs[i + 1][j + 1] + 1 : max(lcs[i + 1][j], lcs[i][j + 1])
        }
    }
    var out: [String] = []
    var i = 0
    var j = 0
    while i < a.count || j < b.count {
        if i < a.count, j < b.count, a[i] == b[j] {
            out.append("  " + a[i])
            i += 1
            j += 1
        } else if j < b.count, i == a.count || lcs[i][j + 1] >= lcs[i + 1][j] {
            out.append("+ " + b[j])
            j += 1
        } else {
            out.append("- " + a[i])
            i += 1
        }
    }
    return out
}

struct ApprovalsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "approvals",
        abstract: "MCP tool calls held for a human's approval (on a running server).",
        subcommands: [ApprovalsList.self, ApprovalsApprove.self, ApprovalsDeny.self]
    )
}

struct ApprovalsList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list", abstract: "Calls waiting: id, agent, tool, arguments, why, and when they expire.")

    @Flag(name: .long, help: "Print JSON.") var json = false
    @OptionGroup var admin: AdminOptions

    func run() async throws {
        try await reporting {
            guard let client = try admin.client() else {
                throw ValidationError("held calls live in the running server: pass --server URL")
            }
            let result = try await client.call("GET", "/v1/admin/approvals")
            if json {
                print(result.serialized)
                return
            }
            let items = result["approvals"]?.arrayValue ?? []
            if items.isEmpty { print("no calls waiting for approval") }
            for a in items {
                print(
                    "\(a["id"]?.stringValue ?? "?")\t\(a["agent"]?.stringValue ?? "?")\t\(a["server"]?.stringValue ?? "?")/\(a["tool"]?.stringValue ?? "?")\t\(a["arguments"]?.serialized ?? "{}")\t\(a["reason"]?.stringValue ?? "")\texpires \(a["expires_at"]?.integerValue ?? 0)"
                )
            }
        }
    }
}

struct ApprovalsApprove: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "approve", abstract: "Let a held call proceed.")

    @Argument(help: "The approval id (from `warden approvals list`).") var id: String
    @Option(name: .long, help: "Who approves (recorded).") var approver: String?
    @OptionGroup var admin: AdminOptions

    func run() async throws {
        try await decideApproval(id, approve: true, reason: nil, approver: approver, admin: admin)
    }
}

struct ApprovalsDeny: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "deny", abstract: "Refuse a held call (the agent gets an MCP error).")

    @Argument(help: "The approval id (from `warden approvals list`).") var id: String
    @Option(name: .long, help: "Why (recorded and told to the agent).") var reason: String?
    @Option(name: .long, help: "Who denies (recorded).") var approver: String?
    @OptionGroup var admin: AdminOptions

    func run() async throws {
        try await decideApproval(id, approve: false, reason: reason, approver: approver, admin: admin)
    }
}

func decideApproval(_ id: String, approve: Bool, reason: String?, approver: String?, admin: AdminOptions) async throws {
    try await reporting {
        guard let client = try admin.client() else {
            throw ValidationError("held calls live in the running server: pass --server URL")
        }
        var body: [(String, JSONValue)] = []
        if let reason { body.append(("reason", .string(reason))) }
        if let approver { body.append(("approver", .string(approver))) }
        let result = try await client.call(
            "POST", "/v1/admin/approvals/\(WardenHTTP.percentEncode(id))/\(approve ? "approve" : "deny")",
            json: .object(body))
        print(result.serialized)
    }
}
