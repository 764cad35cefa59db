import AsyncHTTPClient
import Cedar
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import Testing
import WardenClient
import WardenCore
import WardenIdentity
import WardenTestSupport

@testable import WardenControlPlane
@testable import WardenSidecar

/// `warden agent proxy`: plain HTTP in on loopback, the agent's token and a fresh proof per request out.
@Suite("Agent proxy (sidecar) in front of a live gateway")
struct AgentProxyTests {
    @Test(
        "relays with the agent's credentials: a revoked token renewed, bodies streamed both ways, other paths refused")
    func relays() async throws {
        try await withGateway { env in
            let a = try env.f.agent("support-bot")
            let base = "http://127.0.0.1:\(try #require(env.client.port))"
            let clock = env.f.clock
            let proxy = AgentProxy(
                client: AgentClient(server: base, key: a.key, issuer: env.f.cp.issuer, clock: { clock.now }),
                spiffeID: a.id,
                http: .shared, logger: Logger(label: "test"))
            try await Application(router: proxy.router()).test(.live) { client in
                // No credentials from the caller (a junk Authorization is dropped, not forwarded).
                let r = try await client.execute(
                    uri: "/r/tickets/v1/tickets?status=open", method: .get, headers: [.authorization: "Bearer junk"])
                #expect(r.status == .ok, "\(String(buffer: r.body))")
                let seen = try #require(env.upstream.requests.last)
                #expect(seen.path == "/api/v1/tickets" && seen.query == "status=open")
                #expect(seen.headers.first { $0.0.lowercased() == "authorization" }?.1 != "Bearer junk")
                #expect(!seen.headers.contains { $0.0.lowercased() == "dpop" })
                // A body, sent once.
                let posted = try await client.execute(
                    uri: "/r/tickets/v1/tickets", method: .post, headers: [.contentType: "application/json"],
                    body: ByteBuffer(string: #"{"title":"printer on fire"}"#))
                #expect(posted.status == .ok && env.upstream.requests.last?.bodyBytes == 27)
                // A revoked token: refused once, renewed, served.
                let first = try await proxy.tokens.token()
                let jti = try #require(
                    JSONValue.parse(Array(Base64URL.decode(String(first.value.split(separator: ".")[1])) ?? []))["jti"]?
                        .stringValue)
                try env.f.cp.revokeToken(jti: jti, reason: "test", agent: nil)
                #expect(try await client.execute(uri: "/r/tickets/v1/again", method: .get).status == .ok)
                #expect(try await proxy.tokens.token() != first)
                // A 5 MiB chunked download streams through.
                let big = try await client.execute(uri: "/r/tickets/stream?mib=5", method: .get)
                #expect(big.status == .ok && big.body.readableBytes == 5 << 20)
                // A path that would leave /r/ (dot segments, encoded slashes) never carries the credentials.
                // (The encoded ones reach the proxy's /r/** and /mcp/** routes and are refused there; a literal
                // `..` may already be refused by the router.)
                for escape in ["/r/%2e%2e/v1/svid", "/mcp/..%2fv1/whoami", "/r/tickets/a%2f..%2f..%2fx"] {
                    #expect(try await client.execute(uri: escape, method: .get).status == .badRequest, "\(escape)")
                }
                let literal = try await client.execute(uri: "/r/../v1/whoami", method: .get).status
                #expect(literal == .badRequest || literal == .notFound, "\(literal)")
                // Not a gateway path: 404 here, nothing sent.
                let count = env.upstream.requests.count
                #expect(try await client.execute(uri: "/v1/admin/agents", method: .get).status == .notFound)
                #expect(env.upstream.requests.count == count)
                // Warden's refusals come back as they are (a route the agent may not use).
                #expect(try await client.execute(uri: "/r/billing/v1/x", method: .get).status == .forbidden)
            }
        }
    }

    @Test("the stdio bridge's message framing: server-sent events, Mcp-Name encoding, errors with the request's id")
    func bridgeFraming() throws {
        let sse = ByteBuffer(
            string: "event: message\r\ndata: {\"jsonrpc\":\"2.0\",\r\ndata: \"id\":1}\r\n\r\n: keep\n\n")
        #expect(
            MCPStdioBridge.events(sse).map { String(decoding: $0, as: UTF8.self) } == [
                "{\"jsonrpc\":\"2.0\",\n\"id\":1}"
            ])
        let call = try JSONValue.parse(#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read"}}"#)
        #expect(MCPStdioBridge.name(of: call, method: "tools/call") == "read")
        let odd = try JSONValue.parse(#"{"method":"resources/read","params":{"uri":"file:///a b/é"}}"#)
        #expect(MCPStdioBridge.name(of: odd, method: "resources/read") == "=?base64?ZmlsZTovLy9hIGIvw6k=?=")
        #expect(MCPStdioBridge.name(of: call, method: "tools/list") == nil)
        let error = try JSONValue.parse(MCPStdioBridge.error(id: .number("7"), code: -32603, "refused"))
        #expect(error["id"] == .number("7") && error["error"]?["code"] == .number("-32603"))
    }
}
