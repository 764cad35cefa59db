import Foundation
import Testing
import WardenGateway
import WardenTestSupport

@testable import WardenControlPlane
@testable import WardenServer

/// `tools/list` offers only the tools some call of the agent may be allowed on (Cedar partial evaluation with the
/// call's arguments and approval unknown), through the live gateway and the mock MCP server on loopback.
@Suite("MCP tools/list lists only callable tools (mock MCP server on loopback)")
struct MCPToolListingTests {
    /// Replaces the policy set (the demo file and all) with `text` and reloads it.
    static func usePolicies(_ env: MCPEnv, _ text: String) async throws {
        let dir = env.f.dir + "/policies"
        for name in try FileManager.default.contentsOfDirectory(atPath: dir) {
            try FileManager.default.removeItem(atPath: dir + "/" + name)
        }
        try text.write(toFile: dir + "/test.cedar", atomically: true, encoding: .utf8)
        try await env.f.cp.reloadPolicies(actor: "test")
    }

    @Test("mcp:tools/list permitted on every tool, mcp:tools/call on two of three: only those two are listed")
    func listOnlyCallable() async throws {
        try await withMCP { env in
            try await Self.usePolicies(
                env,
                """
                @id("list-all") permit (principal, action == Action::"mcp:tools/list", resource);
                @id("call-read") permit (principal, action == Action::"mcp:tools/call", resource == Tool::"files/read");
                @id("call-search")
                permit (principal, action == Action::"mcp:tools/call", resource == Tool::"files/search");
                """)
            let a = try env.f.agent("file-bot", tools: ["files/read", "files/search", "files/leak"])
            let s = try await env.session(a)
            #expect(env.toolNames(try await env.rpc(a, session: s, "tools/list")) == ["read", "search"])
            // The aggregate endpoint lists the same.
            let agg = try await env.session(a, "/mcp")
            #expect(
                env.toolNames(try await env.rpc(a, session: agg, "tools/list", path: "/mcp"))
                    == ["files.read", "files.search"])
            // What is listed can be called; what is hidden cannot.
            let ok = try await env.rpc(a, session: s, "tools/call", #"{"name":"read","arguments":{"path":"/a"}}"#)
            #expect(ok["result"] != nil)
            let leak = try await env.rpc(a, session: s, "tools/call", #"{"name":"leak","arguments":{}}"#)
            #expect(leak["error"]?["code"] == .number("-32003"))
            let listed = try await env.entries("mcp:tools/list")
            // Hidden: leak (no call permitted) and delete (not in the token's scopes).
            #expect(listed.first?["details"]?["hidden"]?.stringValue == "2")
        }
    }

    @Test("a tool some arguments can reach stays listed; one under an unconditional or failing forbid is hidden")
    func listResidual() async throws {
        try await withMCP { env in
            try await Self.usePolicies(
                env,
                """
                @id("list-all") permit (principal, action == Action::"mcp:tools/list", resource);
                @id("read-ok") permit (principal, action == Action::"mcp:tools/call", resource == Tool::"files/read")
                when { context.arguments.path == "/ok" };
                @id("search-id")
                permit (principal, action == Action::"mcp:tools/call", resource == Tool::"files/search")
                when { context.arguments.id == 1 };
                @id("call-all") permit (principal, action == Action::"mcp:tools/call", resource)
                when { resource.name == "leak" || resource.name == "delete" };
                @id("no-leak") forbid (principal, action == Action::"mcp:tools/call", resource == Tool::"files/leak")
                unless { false };
                @id("broken-guard")
                forbid (principal, action == Action::"mcp:tools/call", resource == Tool::"files/delete")
                when { 9223372036854775807 + 1 > 0 };
                """)
            let a = try env.f.agent("wide-bot", tools: ["files/*"])
            let s = try await env.session(a)
            #expect(env.toolNames(try await env.rpc(a, session: s, "tools/list")) == ["read", "search"])
            // The listed tool is callable with the arguments its policy wants, and only with those.
            let ok = try await env.rpc(a, session: s, "tools/call", #"{"name":"read","arguments":{"path":"/ok"}}"#)
            #expect(ok["result"] != nil)
            let other = try await env.rpc(a, session: s, "tools/call", #"{"name":"read","arguments":{"path":"/x"}}"#)
            #expect(other["error"]?["code"] == .number("-32003"))
            // The hidden ones are refused whatever the arguments: forbidden, and a forbid that fails (fail closed).
            let leak = try await env.rpc(a, session: s, "tools/call", #"{"name":"leak","arguments":{}}"#)
            #expect(leak["error"]?["code"] == .number("-32003"))
            let delete = try await env.rpc(a, session: s, "tools/call", #"{"name":"delete","arguments":{"path":"/"}}"#)
            #expect(delete["error"]?["data"]?["reason"]?.stringValue == "policy_error")
        }
    }

    @Test("a forbid that an approval lifts leaves the tool listed")
    func listApprovable() async throws {
        try await withMCP { env in
            try await Self.usePolicies(
                env,
                """
                @id("all") permit (principal, action in [Action::"mcp:tools/list", Action::"mcp:tools/call"], resource);
                @id("needs-approval") @approval
                forbid (principal, action == Action::"mcp:tools/call", resource == Tool::"files/delete")
                unless { context.approved };
                """)
            let a = try env.f.agent("wide-bot", tools: ["files/*"])
            let s = try await env.session(a)
            #expect(
                env.toolNames(try await env.rpc(a, session: s, "tools/list")) == ["delete", "leak", "read", "search"])
        }
    }
}
