import Cedar
import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Synchronization
import Testing
import WardenAudit
import WardenCore
import WardenGateway
import WardenIdentity
import WardenTestSupport

@testable import WardenControlPlane
@testable import WardenServer

@Suite("Gateway end to end (live upstream on loopback)")
struct GatewayTests {
    @Test("request bodies: many POSTs on one connection, each forwarded whole (the upload ends before the answer)")
    func bodies() async throws {
        // Regression: the upstream client's last read of the agent's body raced Hummingbird's drain of it for the
        // next request on the connection (a trap in release builds under load).
        try await withGateway { env in
            let a = try env.f.agent("support-bot")
            for i in 0..<200 {
                let body = String(repeating: "x", count: 64 + i)
                let r = try await env.call(a, .post, "/r/tickets/v1/items", body: body)
                #expect(r.status == .ok)
                #expect(env.upstream.requests.last?.bodyBytes == body.utf8.count)
            }
        }
    }

    @Test("an allowed call reaches the upstream with the brokered credential, and nothing of the agent's own")
    func allowedCall() async throws {
        try await withGateway { env in
            let a = try env.f.agent("support-bot")
            var extra = HTTPFields()
            extra[HTTPField.Name("X-Forwarded-For")!] = "6.6.6.6"
            extra[HTTPField.Name("X-Warden-Agent")!] = "spiffe://warden.local/agent/admin"
            extra[HTTPField.Name("X-Keep")!] = "kept"
            let r = try await env.call(a, .get, "/r/tickets/v1/tickets/42?status=open&limit=5", headers: extra)
            #expect(r.status == .ok)
            #expect(r.json?["upstream"]?.stringValue == "ok")
            #expect(r.headers[HTTPField.Name("X-Upstream")!] == "yes")
            let seen = try #require(env.upstream.requests.last)
            #expect(seen.path == "/api/v1/tickets/42")
            #expect(seen.query == "status=open&limit=5")
            #expect(seen.headers("Authorization") == ["Bearer tk-s3cret-value"])
            #expect(seen.header("DPoP") == nil)
            #expect(seen.headers("X-Forwarded-For") == ["127.0.0.1"])
            #expect(seen.header("Forwarded")?.hasPrefix("for=127.0.0.1;proto=http") == true)
            #expect(seen.header("X-Warden-Agent") == a.id)
            #expect(seen.header("X-Keep") == "kept")
            let big = try await env.call(a, .get, "/r/tickets/big")
            #expect(big.status == .ok && big.body.readableBytes == 300_000)
            let entries = try await env.callEntries(a)
            let last = try #require(entries.first)
            #expect(last["decision"]?.stringValue == "allow")
            #expect(last["resource"]?.stringValue == #"Service::"tickets""#)
            #expect(last["policies"] == .array([.string("support-segment")]))
            // The secret never reaches the log.
            let all = try env.f.cp.audit.entries(after: 0, limit: 10_000).map(\.1).joined()
            #expect(!all.contains("tk-s3cret-value"))
        }
    }

    @Test("a call no policy permits, and one a forbid policy names, get 403 with the reason")
    func policyDenied() async throws {
        try await withGateway { env in
            let intern = try env.f.agent("intern-bot", roles: ["intern"])
            var r = try await env.call(intern, .get, "/r/tickets/x")
            #expect(r.status == .forbidden)
            #expect(r.json?["reason"]?.stringValue == "policy_denied")
            // A manifest that (wrongly) lists billing still cannot reach the finance segment.
            let broad = try env.f.agent("broad-bot", routes: ["tickets", "billing"])
            r = try await env.call(broad, .get, "/r/billing/invoices")
            #expect(r.status == .forbidden)
            #expect(r.json?["reason"]?.stringValue == "policy_denied")
            #expect(r.json?["policies"] == .array([.string("finance-is-finance-only")]))
            #expect(env.upstream.requests.isEmpty)
            let entries = try await env.callEntries(broad)
            #expect(entries.last?["decision"]?.stringValue == "deny")
            #expect(entries.last?["reason"]?.stringValue == "policy_denied")
            #expect(entries.last?["policies"] == .array([.string("finance-is-finance-only")]))
        }
    }

    @Test("agent-to-agent: a listed peer passes, an unapproved caller is denied and audited")
    func segmentation() async throws {
        try await withGateway { env in
            _ = try env.f.agent("kb-agent", routes: [])
            let caller = try env.f.agent("support-bot", peers: ["kb-agent"])
            var r = try await env.call(caller, .post, "/r/kb/ask", body: "{}")
            #expect(r.status == .ok)
            let rogue = try env.f.agent("rogue-bot")
            r = try await env.call(rogue, .post, "/r/kb/ask", body: "{}")
            #expect(r.status == .forbidden)
            #expect(r.json?["reason"]?.stringValue == "insufficient_scope")
            #expect(r.wwwAuthenticate.contains("insufficient_scope"))
            #expect(env.upstream.requests.count == 1)
            let denied = try #require(try await env.callEntries(rogue).last)
            #expect(denied["decision"]?.stringValue == "deny")
            #expect(denied["resource"]?.stringValue == #"Agent::"spiffe://warden.local/agent/kb-agent""#)
            // A peer that is quarantined cannot be reached either.
            _ = try env.f.cp.transition(agent: "kb-agent", to: .quarantined, reason: "test")
            r = try await env.call(caller, .post, "/r/kb/ask", body: "{}")
            #expect(r.status == .serviceUnavailable)
            #expect(r.json?["reason"]?.stringValue == "target_unavailable")
        }
    }

    @Test("the per agent and route bucket answers 429 with Retry-After, and refills")
    func rateLimit() async throws {
        try await withGateway { env in
            let a = try env.f.agent("support-bot", routes: ["limited"])
            let t = try env.token(a)
            #expect(try await env.call(a, .get, "/r/limited/a", token: t).status == .ok)
            #expect(try await env.call(a, .get, "/r/limited/a", token: t).status == .ok)
            let r = try await env.call(a, .get, "/r/limited/a", token: t)
            #expect(r.status == .tooManyRequests)
            #expect(r.headers[.retryAfter] == "1")
            #expect(r.json?["reason"]?.stringValue == "rate_limited")
            env.rateClock.advance(0.6)
            #expect(try await env.call(a, .get, "/r/limited/a", token: t).status == .ok)
            #expect(env.upstream.requests.count == 3)
            #expect(try await env.callEntries(a).filter { $0["reason"]?.stringValue == "rate_limited" }.count == 1)
        }
    }

    @Test("quarantined, revoked and token-revoked agents are denied on their next request")
    func revokedAndQuarantined() async throws {
        try await withGateway { env in
            let a = try env.f.agent("support-bot")
            let t = try env.token(a)
            #expect(try await env.call(a, .get, "/r/tickets/1", token: t).status == .ok)
            _ = try env.f.cp.transition(agent: "support-bot", to: .quarantined, reason: "anomaly")
            var r = try await env.call(a, .get, "/r/tickets/1", token: t)
            #expect(r.status == .forbidden)
            #expect(r.json?["reason"]?.stringValue == "quarantined")
            _ = try env.f.cp.transition(agent: "support-bot", to: .active, reason: "cleared")
            #expect(try await env.call(a, .get, "/r/tickets/1", token: t).status == .ok)
            let jti = try #require(try claims(t)["jti"]?.stringValue)
            try env.f.cp.revokeToken(jti: jti, reason: "leaked")
            r = try await env.call(a, .get, "/r/tickets/1", token: t)
            #expect(r.status == .unauthorized)
            #expect(r.json?["reason"]?.stringValue == "token_revoked")
            let t2 = try env.token(a)
            _ = try env.f.cp.transition(agent: "support-bot", to: .revoked, reason: "compromised")
            r = try await env.call(a, .get, "/r/tickets/1", token: t2)
            #expect(r.status == .unauthorized)
            #expect(r.json?["reason"]?.stringValue == "agent_revoked")
            #expect(env.upstream.requests.count == 2)
            let reasons = try await env.callEntries(a).compactMap { $0["reason"]?.stringValue }
            #expect(reasons == ["quarantined", "token_revoked", "agent_revoked"])
        }
    }

    @Test("a stolen token replayed with another key, or without a proof, is refused")
    func stolenToken() async throws {
        try await withGateway { env in
            let a = try env.f.agent("support-bot")
            let t = try env.token(a)
            var r = try await env.call(a, .get, "/r/tickets/1", token: t, proofKey: P256.Signing.PrivateKey())
            #expect(r.status == .unauthorized)
            #expect(r.wwwAuthenticate.contains("invalid_token") || r.wwwAuthenticate.contains("invalid_dpop_proof"))
            r = try await env.client.execute(
                uri: "/r/tickets/1", method: .get, headers: [.authorization: "Bearer \(t)"], body: nil)
            #expect(r.status == .unauthorized)
            r = try await env.client.execute(uri: "/r/tickets/1", method: .get, headers: [:], body: nil)
            #expect(r.status == .unauthorized)
            #expect(r.json?["reason"]?.stringValue == "unauthenticated")
            #expect(env.upstream.requests.isEmpty)
        }
    }

    @Test("oversize bodies, dot segments, unknown routes and a missing credential are refused before forwarding")
    func refusedBeforeForwarding() async throws {
        try await withGateway { env in
            let a = try env.f.agent("support-bot", routes: ["small", "keyed", "tickets"])
            var r = try await env.call(a, .post, "/r/small/upload", body: String(repeating: "x", count: 100))
            #expect(r.status == .contentTooLarge)
            #expect(r.json?["reason"]?.stringValue == "body_too_large")
            #expect(try await env.call(a, .post, "/r/small/upload", body: "tiny").status == .ok)
            for bad in ["/r/tickets/a/%2e%2e/admin", "/r/tickets/.%2E/admin", "/r/tickets/a%2Fb", "/r/tickets/%2e"] {
                r = try await env.call(a, .get, bad)
                #expect(r.status == .badRequest, "\(bad)")
                #expect(r.json?["reason"]?.stringValue == "invalid_path")
            }
            #expect(try await env.call(a, .get, "/r/tickets/v1..2/.well/x").status == .ok)
            r = try await env.call(a, .get, "/r/nowhere/x")
            #expect(r.status == .notFound)
            #expect(r.json?["reason"]?.stringValue == "unknown_route")
            r = try await env.call(a, .get, "/r/keyed/x")
            #expect(r.status == .serviceUnavailable)
            #expect(r.json?["reason"]?.stringValue == "credential_unavailable")
            #expect(env.upstream.requests.count == 2)
        }
    }

    @Test("an upstream that is down gives 502 and says nothing about it")
    func upstreamDown() async throws {
        try await withGateway { env in
            let a = try env.f.agent("support-bot", routes: ["down"])
            let r = try await env.call(a, .get, "/r/down/x")
            #expect(r.status == .badGateway)
            #expect(r.json?["error"]?.stringValue == "upstream_unavailable")
            let text = String(buffer: r.body)
            #expect(!text.contains("127.0.0.1") && !text.contains(":1") && !text.lowercased().contains("refused"))
            let metrics = try await env.client.execute(uri: "/metrics", method: .get, headers: [:], body: nil)
            #expect(
                String(buffer: metrics.body).contains(
                    #"warden_gateway_upstream_errors_total{route="down",kind="unavailable"} 1"#))
        }
    }

    /// A raw agent socket that has sent `POST /r/<route>/<path>` through a gateway with one more route, to a
    /// scripted upstream, with its DPoP credentials and the head of a chunked body, then `firstChunk`; what it reads
    /// accumulates in ``seen``.
    final class RawUpload: @unchecked Sendable {
        let socket: RawSocket
        var seen = ""

        init(socket: RawSocket) { self.socket = socket }

        /// Reads until `part` has arrived, the gateway closed the connection, or 20 s passed (bounded waits).
        func read(until part: String) async {
            for _ in 0..<100 where !seen.contains(part) {
                guard let more = await socket.reaction(within: 0.2) else { continue }
                if more.isEmpty { return }
                seen += more
            }
        }
    }

    func withRawUpload(
        to behaviour: ScriptedUpstream.Behaviour, route: String, firstChunk: String,
        _ body: @escaping @Sendable (GatewayEnv, TestAgent, ScriptedUpstream, RawUpload) async throws -> Void
    ) async throws {
        let upstream = ScriptedUpstream(behaviour)
        try await upstream.start()
        let port = upstream.port
        try await withGateway({ c in
            c.routes[route] = RouteConfig(name: route, upstream: "http://127.0.0.1:\(port)", segment: "support")
        }) { env in
            let a = try env.f.agent("support-bot", routes: [route])
            let token = try env.token(a)
            let path = "/r/\(route)/upload"
            let proof = try DPoPProofSigner(key: a.key).proof(
                method: "POST", url: env.f.cp.url(path: path), accessToken: token, now: env.f.clock.now)
            let agent = RawUpload(socket: try RawSocket(from: "127.0.0.1", to: try #require(env.client.port)))
            agent.socket.send(
                "POST \(path) HTTP/1.1\r\nHost: warden\r\nAuthorization: DPoP \(token)\r\nDPoP: \(proof)\r\n"
                    + "Transfer-Encoding: chunked\r\n\r\n\(String(firstChunk.utf8.count, radix: 16))\r\n\(firstChunk)\r\n"
            )
            try await body(env, a, upstream, agent)
        }
        await upstream.stop()
    }

    // Before: the gateway handed the answer over only once the agent's whole body had gone upstream, so an exchange
    // where the agent sends its next part after it has read the echo of the last one never ended.
    @Test(
        "full duplex through a route: the upstream's answer reaches the agent while its body still uploads",
        .timeLimit(.minutes(3)))
    func fullDuplex() async throws {
        // The upstream echoes the bytes it reads (the agent's chunk framing included) in one chunk of its own, which
        // the gateway passes on as one of its own.
        try await withRawUpload(to: .echo, route: "duplex", firstChunk: "first") { _, _, echo, agent in
            await agent.read(until: "first")
            #expect(agent.seen.hasPrefix("HTTP/1.1 200"), "\(agent.seen)")
            #expect(agent.seen.contains("first"), "the answer did not stream before the body ended: \(agent.seen)")
            agent.socket.send("6\r\nsecond\r\n")
            await agent.read(until: "second")
            #expect(agent.seen.contains("second"))
            agent.socket.send("0\r\n\r\n")
            // The agent's last chunk reached the upstream, which then ended its answer (and the gateway its own).
            await agent.read(until: "0\r\n\r\n\r\n0\r\n\r\n")
            #expect(agent.seen.hasSuffix("0\r\n\r\n\r\n0\r\n\r\n"), "\(agent.seen)")
            #expect(echo.received.withLock { $0 } == "5\r\nfirst\r\n6\r\nsecond\r\n0\r\n\r\n")
        }
    }

    // Before: the answer waited for the agent's whole body, which a stalled agent never sends.
    @Test(
        "an upstream's early answer reaches an agent whose upload stalls, and the upstream never sees the body end",
        .timeLimit(.minutes(3)))
    func earlyAnswer() async throws {
        // One chunk, then nothing: the agent stalls mid-body.
        try await withRawUpload(to: .refuseEarly("too large"), route: "early", firstChunk: "part one") {
            env, a, refusing, agent in
            await agent.read(until: "too large")
            #expect(agent.seen.hasPrefix("HTTP/1.1 413"), "\(agent.seen)")
            #expect(agent.seen.contains("too large"))
            // What is left of the agent's body is not forwarded: the upload stopped with the answer. (The agent's
            // connection is then closed, or drained of the rest of the body until `body_timeout`, as Hummingbird does
            // after a response, depending on whether the upload was waiting for the agent when it stopped.)
            // The upstream was never told that the cut-off body ended.
            #expect(!refusing.received.withLock { $0 }.contains("0\r\n\r\n"))
            // The gateway still serves (this upstream refuses everything at once).
            let again = try await env.call(a, .get, "/r/early/again")
            #expect(again.status.code == 413)
        }
    }

    @Test("policies reload through the admin API; a broken set is refused and the last good one stays")
    func hotReload() async throws {
        try await withGateway { env in
            let a = try env.f.agent("support-bot")
            let admin: HTTPFields = [.authorization: "Bearer \(try adminToken(env.f))"]
            #expect(try await env.call(a, .get, "/r/tickets/1").status == .ok)
            let file = env.f.dir + "/policies/zz-freeze.cedar"
            try #"@id("freeze-tickets") forbid (principal, action, resource == Service::"tickets");"#.write(
                toFile: file, atomically: true, encoding: .utf8)
            var r = try await env.client.execute(
                uri: "/v1/admin/policies/reload", method: .post, headers: admin, body: nil)
            #expect(r.status == .ok)
            var denied = try await env.call(a, .get, "/r/tickets/1")
            #expect(denied.json?["policies"] == .array([.string("freeze-tickets")]))
            try "permit (principal, action, resource) when { nonsense".write(
                toFile: env.f.dir + "/policies/zz-broken.cedar", atomically: true, encoding: .utf8)
            r = try await env.client.execute(
                uri: "/v1/admin/policies/reload", method: .post, headers: admin, body: nil)
            #expect(r.status == .badRequest)
            #expect(r.json?["error_description"]?.stringValue?.contains("zz-broken.cedar") == true)
            denied = try await env.call(a, .get, "/r/tickets/1")
            #expect(denied.json?["policies"] == .array([.string("freeze-tickets")]))
            try FileManager.default.removeItem(atPath: env.f.dir + "/policies/zz-broken.cedar")
            try FileManager.default.removeItem(atPath: file)
            _ = try await env.client.execute(uri: "/v1/admin/policies/reload", method: .post, headers: admin, body: nil)
            #expect(try await env.call(a, .get, "/r/tickets/1").status == .ok)
            await env.f.cp.audit.flush()
            let changes = try env.f.cp.audit.entries(after: 0, limit: 10_000).map(\.1).filter {
                $0.contains(#""action":"policy.change""#) || $0.contains(#""action":"policy.reload""#)
            }
            #expect(changes.count == 3)
        }
    }

    @Test("metrics count requests by route, decision and reason, with latency histograms")
    func metrics() async throws {
        try await withGateway { env in
            let a = try env.f.agent("support-bot")
            _ = try await env.call(a, .get, "/r/tickets/1")
            _ = try await env.call(a, .get, "/r/billing/1")
            let text = String(
                buffer: try await env.client.execute(uri: "/metrics", method: .get, headers: [:], body: nil).body)
            #expect(text.contains(#"warden_gateway_requests_total{route="tickets",decision="allow",reason=""} 1"#))
            #expect(
                text.contains(
                    #"warden_gateway_requests_total{route="billing",decision="deny",reason="insufficient_scope"} 1"#))
            #expect(text.contains("warden_gateway_decision_seconds_count 2"))
            #expect(text.contains(#"warden_gateway_request_seconds_bucket{le="+Inf"} 2"#))
        }
    }
}

@Suite("Gateway header rules")
struct GatewayHeaderTests {
    @Test("hop-by-hop headers, those Connection names, the agent's credentials and forwarding claims stay behind")
    func passedHeaders() {
        var h = HTTPFields()
        h[.connection] = "keep-alive, X-Drop-Me"
        h[HTTPField.Name("X-Drop-Me")!] = "1"
        h[.authorization] = "DPoP abc"
        h[HTTPField.Name("DPoP")!] = "proof"
        h[.transferEncoding] = "chunked"
        h[HTTPField.Name("Keep-Alive")!] = "timeout=5"
        h[HTTPField.Name("X-Forwarded-For")!] = "6.6.6.6"
        h[HTTPField.Name("Forwarded")!] = "for=6.6.6.6"
        h[HTTPField.Name("X-Warden-Agent")!] = "spiffe://warden.local/agent/admin"
        h[HTTPField.Name("X-Api-Key")!] = "agent-supplied"
        h[HTTPField.Name("X-Keep")!] = "kept"
        h[.contentType] = "application/json"
        let passed = Gateway.passedHeaders(h, injected: HTTPField.Name("x-api-key"))
        #expect(passed.map(\.0) == ["X-Keep", "Content-Type"])
    }

    @Test("only a plain authority is quoted into Forwarded: no quotes, semicolons or spaces from the agent")
    func forwardedHost() {
        #expect(Gateway.isPlainAuthority("warden.example.com:8443"))
        #expect(Gateway.isPlainAuthority("[::1]:8443"))
        #expect(!Gateway.isPlainAuthority("evil\";for=1.2.3.4"))
        #expect(!Gateway.isPlainAuthority("a b"))
        #expect(!Gateway.isPlainAuthority(String(repeating: "a", count: 300)))
        // The authority of Warden's own base URL, as forwarded in `X-Forwarded-Host` and `Forwarded`.
        #expect(Gateway.authority(of: "https://warden.example.com:8443") == "warden.example.com:8443")
        #expect(Gateway.authority(of: "http://127.0.0.1:18443/") == "127.0.0.1:18443")
        #expect(Gateway.authority(of: "https://[::1]:8443/base/path") == "[::1]:8443")
        #expect(Gateway.authority(of: "https://") == "")
        #expect(Gateway.authority(of: "no scheme here") == "")
        #expect(Gateway.authority(of: "https:/one-slash") == "")
        #expect(Gateway.authority(of: "https://evil\";for=1.2.3.4/") == "")
    }
}

@Suite("Scenario: the compromised support bot")
struct CompromisedSupportBotScenario {
    /// SCENARIOS.md: a prompt-injected support bot, allowed to read tickets, uses its valid credentials to reach the
    /// billing API. Its own manifest does not list billing (scope), and a manifest that did would still meet the
    /// finance segment's forbid policy; both attempts are refused before the upstream and are in the audit log.
    @Test("reads tickets, is denied billing, and the attempt is in the audit log")
    func scenario() async throws {
        try await withGateway { env in
            let bot = try env.f.agent("support-bot")
            let t = try env.token(bot)
            #expect(try await env.call(bot, .get, "/r/tickets/v1/tickets/7", token: t).status == .ok)
            let r = try await env.call(bot, .get, "/r/billing/v1/invoices?customer=all", token: t)
            #expect(r.status == .forbidden)
            // Even asking the token endpoint for the billing scope fails: it is not in the manifest.
            #expect(throws: WardenError.self) { _ = try env.token(bot, scope: "route:billing") }
            // A bot whose manifest was widened by mistake meets the forbid policy.
            let widened = try env.f.agent("support-bot-2", routes: ["tickets", "billing"])
            let r2 = try await env.call(widened, .post, "/r/billing/v1/refunds", body: #"{"amount":9999}"#)
            #expect(r2.status == .forbidden)
            #expect(r2.json?["policies"] == .array([.string("finance-is-finance-only")]))
            #expect(env.upstream.requests.map(\.path) == ["/api/v1/tickets/7"])
            let attempts = try await env.callEntries().filter {
                $0["resource"]?.stringValue == #"Service::"billing""#
            }
            #expect(attempts.count == 2)
            #expect(attempts.allSatisfy { $0["decision"]?.stringValue == "deny" })
            #expect(attempts.map { $0["agent"]?.stringValue } == [bot.id, widened.id])
            #expect(attempts.map { $0["reason"]?.stringValue } == ["insufficient_scope", "policy_denied"])
            // The log still verifies with the attempts in it.
            await env.f.cp.audit.flush()
            _ = try env.f.cp.audit.checkpoint()
            let report = try AuditVerifier.verify(
                databasePath: env.f.dir + "/warden.sqlite", keys: try DataDirectory.checkpointKeys(path: env.f.dir))
            #expect(report.ok)
        }
    }
}
