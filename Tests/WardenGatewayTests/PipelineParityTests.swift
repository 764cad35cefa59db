import Cedar
import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing
import WardenCore
import WardenGateway
import WardenIdentity
import WardenTestSupport

@testable import WardenControlPlane
@testable import WardenServer

/// One route and one MCP server behind one Warden, for sending the same refusals through both front ends.
struct ParityEnv {
    let f: Fixture
    let client: any TestClientProtocol
    let upstream: MockMCPServer
    /// Every route the router has (method and path pattern).
    let routes: [(HTTPRequest.Method, String)]

    /// `GET /r/tickets/v1/x` as `a`; the reason code of the refusal (nil when the call was let through).
    func viaRoute(_ a: TestAgent, token: String?, authorization: String? = nil) async throws -> String? {
        var h = HTTPFields()
        if let token {
            h[.authorization] = authorization ?? "DPoP \(token)"
            h[HTTPField.Name("DPoP")!] = try a.signer.proof(
                method: "GET", url: f.cp.url(path: "/r/tickets/v1/x"), accessToken: token, now: f.clock.now)
        }
        let r = try await client.execute(uri: "/r/tickets/v1/x", method: .get, headers: h, body: nil)
        return r.json?["reason"]?.stringValue
    }

    /// `tools/call read` at `/mcp/files` as `a` (in a 2025-11-25 session when `session` is given); the reason code of
    /// the refusal, from the HTTP answer (authentication) or the JSON-RPC error's `data.reason`; nil when allowed.
    func viaMCP(_ a: TestAgent, token: String?, session: String? = nil, authorization: String? = nil)
        async throws -> String?
    {
        var h = HTTPFields()
        if let token {
            h[.authorization] = authorization ?? "DPoP \(token)"
            h[HTTPField.Name("DPoP")!] = try a.signer.proof(
                method: "POST", url: f.cp.url(path: "/mcp/files"), accessToken: token, now: f.clock.now)
        }
        h[.contentType] = "application/json"
        h[.accept] = "application/json, text/event-stream"
        if let session {
            h[HTTPField.Name("Mcp-Session-Id")!] = session
            h[HTTPField.Name("MCP-Protocol-Version")!] = "2025-11-25"
        }
        let body = #"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read","arguments":{"path":"/a"}}}"#
        let r = try await client.execute(uri: "/mcp/files", method: .post, headers: h, body: ByteBuffer(string: body))
        let json = try #require(r.json)
        if let reason = json["reason"]?.stringValue { return reason }
        if let error = json["error"], case .object = error { return error["data"]?["reason"]?.stringValue ?? "?" }
        return nil
    }

    func session(_ a: TestAgent, token: String) async throws -> String {
        var h = HTTPFields()
        h[.authorization] = "DPoP \(token)"
        h[HTTPField.Name("DPoP")!] = try a.signer.proof(
            method: "POST", url: f.cp.url(path: "/mcp/files"), accessToken: token, now: f.clock.now)
        h[.contentType] = "application/json"
        h[.accept] = "application/json, text/event-stream"
        let body =
            #"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#
        let r = try await client.execute(uri: "/mcp/files", method: .post, headers: h, body: ByteBuffer(string: body))
        return try #require(r.headers[HTTPField.Name("Mcp-Session-Id")!])
    }

    /// The reasons of the deny entries of `agent` for `action`, in order.
    func denials(_ a: TestAgent, _ action: String) async throws -> [String] {
        await f.cp.audit.flush()
        return try f.cp.audit.entries(after: 0, limit: 10_000).compactMap { try? JSONValue.parse($0.1) }.filter {
            $0["action"]?.stringValue == action && $0["agent"]?.stringValue == a.id
                && $0["decision"]?.stringValue == "deny"
        }.compactMap { $0["reason"]?.stringValue }
    }
}

func withParity(_ body: @escaping @Sendable (ParityEnv) async throws -> Void) async throws {
    let upstream = MockMCPServer()
    try await upstream.app.test(.live) { upClient in
        let port = try #require(upClient.port)
        let policies = FileManager.default.temporaryDirectory.appendingPathComponent(
            "warden-parity-\(UUID().uuidString).cedar"
        ).path
        try """
        @id("calls") permit (principal, action == Action::"call", resource);
        @id("tools") permit (principal, action in [Action::"mcp:tools/list", Action::"mcp:tools/call"], resource);
        @id("blocked") forbid (principal, action, resource) when { principal.name == "blocked-bot" };
        """.write(toFile: policies, atomically: true, encoding: .utf8)
        let f = try Fixture { c in
            c.policies = [policies]
            c.routes = [
                "tickets": RouteConfig(name: "tickets", upstream: "http://127.0.0.1:\(port)", segment: "support")
            ]
            c.mcpServers = [
                "files": MCPServerConfig(name: "files", transport: .http(url: "http://127.0.0.1:\(port)/mcp"))
            ]
            // Eight calls per agent, shared by both front ends, never refilled within a test.
            c.rateLimitPerAgent = RateLimit(perSecond: 1.0 / 86_400, burst: 8)
        }
        let gateway = try Gateway(cp: f.cp)
        let mcp = try MCPGateway(gateway: gateway)
        let router = WardenRouter.build(f.cp, gateway: gateway, mcp: mcp)
        let routes = router.routes.map { ($0.method, $0.path.description) }
        try await serving(router, gateway: gateway, mcp: mcp) { client in
            try await body(ParityEnv(f: f, client: client, upstream: upstream, routes: routes))
        }
    }
}

/// The one pipeline: the same refusals sent through `/r/` and through MCP give the same reason codes, in the answer
/// and in the audit log.
@Suite("One pipeline: the same refusals through /r/ and MCP (live listener)")
struct PipelineParityTests {
    static let tools = ["files/read"]

    @Test("authentication refusals: no credentials, a forged token, a revoked token, a quarantined agent")
    func authentication() async throws {
        try await withParity { env in
            let a = try env.f.agent("plain-bot", tools: Self.tools)
            let token = try env.f.token(a)
            // No credentials, and a token that is not one.
            let none = try await env.viaRoute(a, token: nil)
            #expect(none != nil)
            #expect(try await env.viaMCP(a, token: nil) == none)
            let forged = "eyJhbGciOiJFUzI1NiJ9.e30.AAAA"
            #expect(try await env.viaRoute(a, token: forged) == "invalid_token")
            #expect(try await env.viaMCP(a, token: forged) == "invalid_token")
            // Revoked.
            let jti = try #require(try claims(token)["jti"]?.stringValue)
            try env.f.cp.revokeToken(jti: jti, reason: "test")
            let revoked = try await env.viaRoute(a, token: token)
            #expect(revoked == "token_revoked")
            #expect(try await env.viaMCP(a, token: token) == revoked)
            // Quarantined, with a fresh token taken before.
            let b = try env.f.agent("held-bot", tools: Self.tools)
            let fresh = try env.f.token(b)
            _ = try env.f.cp.transition(agent: b.record.id, to: .quarantined, reason: "test")
            let held = try await env.viaRoute(b, token: fresh)
            #expect(held == "quarantined")
            #expect(try await env.viaMCP(b, token: fresh) == held)
            // Recorded alike: the same reasons under each front end's action.
            #expect(try await env.denials(a, "call") == ["token_revoked"])
            #expect(try await env.denials(a, "mcp:connect") == ["token_revoked"])
            #expect(try await env.denials(b, "call") == [try #require(held)])
            #expect(try await env.denials(b, "mcp:connect") == [try #require(held)])
        }
    }

    @Test("decision refusals: a token without the scope, a policy's forbid")
    func decisions() async throws {
        try await withParity { env in
            // The scope of the other front end only.
            let a = try env.f.agent("scoped-bot", tools: Self.tools)
            let routeOnly = try env.f.token(a, ["scope": "route:tickets"])
            let toolOnly = try env.f.token(a, ["scope": "tool:files/read"])
            #expect(try await env.viaRoute(a, token: toolOnly) == "insufficient_scope")
            let s = try await env.session(a, token: routeOnly)
            #expect(try await env.viaMCP(a, token: routeOnly, session: s) == "insufficient_scope")
            // A forbid: the same policy named in both records.
            let b = try env.f.agent("blocked-bot", tools: Self.tools)
            let token = try env.f.token(b)
            #expect(try await env.viaRoute(b, token: token) == "policy_denied")
            let sb = try await env.session(b, token: token)
            #expect(try await env.viaMCP(b, token: token, session: sb) == "policy_denied")
            #expect(try await env.denials(a, "call") == ["insufficient_scope"])
            #expect(try await env.denials(a, "mcp:tools/call") == ["insufficient_scope"])
            #expect(try await env.denials(b, "call") == ["policy_denied"])
            #expect(try await env.denials(b, "mcp:tools/call") == ["policy_denied"])
            await env.f.cp.audit.flush()
            let entries = try env.f.cp.audit.entries(after: 0, limit: 10_000).compactMap { try? JSONValue.parse($0.1) }
            let policies = entries.filter { $0["agent"]?.stringValue == b.id && $0["decision"]?.stringValue == "deny" }
                .map { $0["policies"]?.arrayValue?.compactMap(\.stringValue) ?? [] }
            #expect(policies == [["blocked"], ["blocked"]])
        }
    }

    @Test("limits: the agent's rate limit and the risk engine's throttle stop MCP calls as they stop /r/ calls")
    func limits() async throws {
        try await withParity { env in
            // The agent's own limit (8 calls, shared by both front ends).
            let a = try env.f.agent("busy-bot", tools: Self.tools)
            let token = try env.f.token(a)
            let s = try await env.session(a, token: token)
            for _ in 0..<4 {
                #expect(try await env.viaRoute(a, token: token) == nil)
                #expect(try await env.viaMCP(a, token: token, session: s) == nil)
            }
            #expect(try await env.viaMCP(a, token: token, session: s) == "rate_limited")
            #expect(try await env.viaRoute(a, token: token) == "rate_limited")
            #expect(try await env.denials(a, "mcp:tools/call") == ["rate_limited"])
            #expect(try await env.denials(a, "call") == ["rate_limited"])
            // The risk engine's throttle: its own bucket (bursts of five), shared by both front ends. Before the
            // pipeline, MCP calls did not see it at all.
            let b = try env.f.agent("throttled-bot", tools: Self.tools)
            let tb = try env.f.token(b)
            let sb = try await env.session(b, token: tb)
            env.f.cp.risk.throttled.withLock { $0[b.id] = Double(env.f.clock.now + 3600) }
            for _ in 0..<5 { #expect(try await env.viaRoute(b, token: tb) == nil) }
            #expect(try await env.viaMCP(b, token: tb, session: sb) == "rate_limited")
            #expect(try await env.viaRoute(b, token: tb) == "rate_limited")
            // The throttle refused them (the agent's own limit had 3 calls left).
            await env.f.cp.audit.flush()
            let messages = try env.f.cp.audit.entries(after: 0, limit: 10_000).compactMap { try? JSONValue.parse($0.1) }
                .filter { $0["agent"]?.stringValue == b.id && $0["decision"]?.stringValue == "deny" }
                .map { "\($0["action"]?.stringValue ?? ""): \($0["message"]?.stringValue ?? "")" }
            #expect(
                messages == [
                    "mcp:tools/call: rate limit exceeded (throttled by the risk engine)",
                    "call: rate limit exceeded (throttled by the risk engine)",
                ])
            let calls = env.upstream.calls.withLock { $0 }
            #expect(calls.count == 4, "only busy-bot's four allowed tool calls reached the MCP server")
        }
    }
}

@Suite("Front-end paths as the router matches them (live listener)")
struct FrontEndPathTests {
    @Test("a path the router matches with empty segments (//r/…, /r//…, //mcp/…) is refused, never forwarded")
    func emptySegments() async throws {
        try await withParity { env in
            let a = try env.f.agent("path-bot", tools: PipelineParityTests.tools)
            let token = try env.f.token(a)
            for (method, path) in [
                (HTTPRequest.Method.get, "//r/tickets/v1/x"), (.get, "/r//tickets/v1/x"), (.post, "//mcp/files"),
                (.post, "/mcp//files"),
            ] {
                var h = HTTPFields()
                h[.authorization] = "DPoP \(token)"
                h[HTTPField.Name("DPoP")!] = try a.signer.proof(
                    method: method.rawValue, url: env.f.cp.url(path: path), accessToken: token, now: env.f.clock.now)
                h[.contentType] = "application/json"
                let r = try await env.client.execute(
                    uri: path, method: method, headers: h,
                    body: ByteBuffer(string: #"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#))
                #expect(r.status == .notFound, "\(path): \(r.status)")
                // Refused on the path's shape, before the credentials are even read.
                if path.contains("/r/") || path.hasPrefix("/r/") {
                    #expect(r.json?["reason"]?.stringValue == "unknown_route", "\(path)")
                } else {
                    #expect(r.json?["error"]?["message"]?.stringValue == "no such path", "\(path)")
                }
            }
            #expect(env.upstream.seen.withLock { $0.isEmpty }, "nothing reached the upstream")
            // Not recorded as the agent's: the credentials were never looked at.
            #expect(try await env.denials(a, "call").isEmpty)
            #expect(try await env.denials(a, "mcp:connect").isEmpty)
        }
    }
}

@Suite("Admin API: every endpoint behind the group's middleware (live listener)")
struct AdminSurfaceTests {
    @Test("every /v1/admin route the router has refuses no token, a near miss and the scrape token, and records it")
    func everyAdminRoute() async throws {
        try await withParity { env in
            let admin = env.routes.filter { $0.1.hasPrefix("/v1/admin") }
            // The whole admin API is registered (agents, audit, policies, secrets, risk, MCP pins and approvals).
            #expect(admin.count >= 30, "\(admin.count) admin routes")
            let real = try String(contentsOfFile: env.f.dir + "/admin.token", encoding: .utf8)
                .trimmingCharacters(in: .whitespacesAndNewlines)
            let scrape = try String(contentsOfFile: env.f.dir + "/metrics.token", encoding: .utf8)
                .trimmingCharacters(in: .whitespacesAndNewlines)
            for (method, pattern) in admin {
                // Parameters filled in (`:ref` → `x`), wildcards too.
                let path = pattern.split(separator: "/").map {
                    $0.hasPrefix(":") || $0.hasPrefix("{") || $0.hasPrefix("*") ? "x" : String($0)
                }
                .joined(separator: "/")
                for authorization in [nil, "Bearer " + String(real.dropLast()), "Bearer " + scrape, "Basic " + real] {
                    var h = HTTPFields()
                    if let authorization { h[.authorization] = authorization }
                    let r = try await env.client.execute(
                        uri: "/" + path, method: method, headers: h, body: ByteBuffer(string: "{}"))
                    #expect(r.status == .unauthorized, "\(method) \(pattern): \(r.status)")
                }
            }
            // Each refusal is on the record, by source.
            env.f.cp.flushRefusalSummaries(all: true)
            await env.f.cp.audit.flush()
            let refused = try env.f.cp.audit.entries(after: 0, limit: 100_000).compactMap { try? JSONValue.parse($0.1) }
            let summaries = refused.filter { $0["action"]?.stringValue == "refusals.summary" }
            #expect(!summaries.isEmpty)
            // The real token still works: the middleware lets it through to the handler.
            var h = HTTPFields()
            h[.authorization] = "Bearer " + real
            let ok = try await env.client.execute(uri: "/v1/admin/agents", method: .get, headers: h, body: nil)
            #expect(ok.status == .ok)
        }
    }
}
