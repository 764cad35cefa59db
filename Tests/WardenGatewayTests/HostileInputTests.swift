import Cedar
import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing
import WardenAudit
import WardenCore
import WardenIdentity
import WardenRisk
import WardenTestSupport

@testable import WardenControlPlane
@testable import WardenGateway
@testable import WardenServer

/// The attack review's findings, each performed through a live gateway on loopback (`withGateway`).
@Suite("Hostile input: attack review regressions (live server)")
struct HostileInputTests {
    /// Writes `text` as an extra policy file and reloads.
    static func addPolicy(_ env: GatewayEnv, _ name: String, _ text: String) async throws {
        try text.write(toFile: env.f.dir + "/policies/\(name).cedar", atomically: true, encoding: .utf8)
        _ = try await env.f.cp.reloadPolicies(actor: "test")
    }

    @Test("route prefix escape: malformed or non-UTF-8 escapes are refused and never reach the upstream")
    func prefixEscape() async throws {
        try await withGateway { env in
            let a = try env.f.agent("support-bot")
            for path in [
                "/r/tickets/%ff", "/r/tickets/%c0%ae%c0%ae/secret", "/r/tickets/ok%ff/more", "/r/tickets/%e2%82",
                "/r/tickets/%zz", "/r/tickets/a%2", "/r/tickets/a%", "/r/tickets/%00", "/r/tickets/a%5cb",
                "/r/tickets/x?q=%zz",
            ] {
                let r = try await env.call(a, .get, path)
                #expect(r.status == .badRequest, "\(path)")
                #expect(r.json?["reason"]?.stringValue == "invalid_path", "\(path)")
            }
            #expect(env.upstream.requests.isEmpty)
            // What does go out is built by Warden and starts with the route's prefix, in canonical form.
            let r = try await env.call(a, .get, "/r/tickets/caf%c3%a9/%7Euser/%21x?q=a%20b")
            #expect(r.status == .ok)
            let seen = try #require(env.upstream.requests.last)
            #expect(seen.path.hasPrefix("/api/"))
            #expect(seen.path == "/api/caf%C3%A9/~user/!x")
            #expect(seen.query == "q=a%20b")
            let entry = try #require(try await env.callEntries(a).last)
            #expect(entry["details"]?["path"]?.stringValue == "/r/tickets/caf%C3%A9/~user/!x")
        }
    }

    @Test("path policies see the canonical path: encoded letters, doubled slashes, dot segments, path parameters")
    func canonicalPaths() async throws {
        try await withGateway { env in
            try await Self.addPolicy(
                env, "zz-admin",
                #"@id("no-admin") forbid (principal, action == Action::"call", resource) when { context.path like "/admin*" };"#
            )
            let a = try env.f.agent("support-bot")
            for path in [
                "/r/tickets/admin/users", "/r/tickets/%61dmin/users", "/r/tickets//admin/users",
                "/r/tickets/%61%64%6D%69%6E", "/r/tickets///admin",
            ] {
                let r = try await env.call(a, .get, path)
                #expect(r.status == .forbidden, "\(path)")
                #expect(r.json?["policies"] == .array([.string("no-admin")]), "\(path)")
            }
            for path in [
                "/r/tickets/./admin/users", "/r/tickets/;/admin/users", "/r/tickets/x/../admin", "/r/tickets/%2e/admin",
                "/r/tickets/x;a=1/admin", "/r/tickets/%3b/admin", "/r/tickets/a%2fb",
            ] {
                let r = try await env.call(a, .get, path)
                #expect(r.status == .badRequest, "\(path)")
            }
            #expect(env.upstream.requests.isEmpty)
            let denied = try await env.callEntries(a).filter { $0["reason"]?.stringValue == "policy_denied" }
            #expect(denied.count == 5)
            #expect(denied.allSatisfy { $0["details"]?["path"]?.stringValue?.hasPrefix("/r/tickets/admin") == true })
        }
    }

    @Test("seeded attack paths: whatever reaches the upstream is under the prefix and exactly what Cedar decided on")
    func pathFuzz() async throws {
        try await withGateway { env in
            try await Self.addPolicy(
                env, "zz-admin",
                #"@id("no-admin") forbid (principal, action == Action::"call", resource) when { context.path like "/admin*" };"#
            )
            let a = try env.f.agent("support-bot")
            var rng = SplitMix64(state: 0x5EED_1515)
            let pieces = [
                "admin", "%61dmin", "ADMIN", "%41dmin", "/", "//", ".", "..", "%2e", "%2E%2e", ";", "%3b", "%2f",
                "%5c", "\\", "%ff", "%c0%ae", "%e2%82", "%e2%82%ac", "%", "%0", "%00", "%20", "~", "%7e", "a", "x",
                "?", "&", "=", "@", ":", "!", "é", "%u0061",
            ]
            let count = Int(ProcessInfo.processInfo.environment["WARDEN_FUZZ_SCALE"] ?? "1").map { 150 * max(1, $0) }
            for _ in 0..<(count ?? 150) {
                var path = "/r/tickets/"
                for _ in 0..<Int(rng.next() % 6 + 1) { path += pieces[Int(rng.next() % UInt64(pieces.count))] }
                let encoded = path.addingPercentEncoding(withAllowedCharacters: .urlFragmentAllowed) ?? path
                let before = env.upstream.requests.count
                let r = try await env.call(a, .get, encoded)
                #expect([200, 400, 403].contains(r.status.code), "\(encoded): \(r.status)")
                let after = env.upstream.requests
                guard after.count > before, let seen = after.last else { continue }
                #expect(r.status == .ok)
                #expect(seen.path.hasPrefix("/api/"), "\(encoded) reached \(seen.path)")
                #expect(!seen.path.hasPrefix("/api/admin"), "\(encoded) reached \(seen.path)")
                // The audit entry's path is what went out, under the route's prefix.
                let entry = try #require(try await env.callEntries(a).last)
                let decided = entry["details"]?["path"]?.stringValue ?? ""
                #expect("/api" + decided.dropFirst("/r/tickets".count) == seen.path, "\(encoded)")
            }
        }
    }

    @Test("identity and rewrite headers never reach the upstream; method overrides are refused; the host is Warden's")
    func headerFiltering() async throws {
        try await withGateway { env in
            let a = try env.f.agent("support-bot")
            var extra = HTTPFields()
            for name in [
                "X-Forwarded-Prefix", "X-Forwarded-Server", "X-Forwarded-Uri", "X-Forwarded-Host", "X-Warden-Trust",
                "X-Original-URL", "X-Rewrite-URL", "True-Client-IP", "CF-Connecting-IP", "X-Real-IP", "X-Client-IP",
                "X-Envoy-Original-Path",
            ] {
                extra[HTTPField.Name(name)!] = "/admin"
            }
            extra[HTTPField.Name("X-Keep")!] = "kept"
            var r = try await env.call(a, .get, "/r/tickets/v1", headers: extra)
            #expect(r.status == .ok)
            let seen = try #require(env.upstream.requests.last)
            #expect(seen.header("X-Keep") == "kept")
            for (name, value) in seen.headers {
                #expect(value != "/admin", "\(name) reached the upstream")
            }
            let warden = String(env.f.cp.issuer.dropFirst("http://".count))
            #expect(seen.headers("X-Forwarded-Host") == [warden])
            #expect(seen.header("Forwarded")?.hasSuffix(";host=\"\(warden)\"") == true)
            for header in ["X-HTTP-Method-Override", "X-HTTP-Method", "X-Method-Override"] {
                var h = HTTPFields()
                h[HTTPField.Name(header)!] = "DELETE"
                r = try await env.call(a, .post, "/r/tickets/v1", headers: h, body: "{}")
                #expect(r.status == .badRequest)
                #expect(r.json?["reason"]?.stringValue == "method_override")
            }
            r = try await env.call(a, .post, "/r/tickets/v1?_method=DELETE", body: "{}")
            #expect(r.json?["reason"]?.stringValue == "method_override")
            #expect(env.upstream.requests.count == 1)
        }
    }

    @Test("a body on GET or HEAD is refused before it can reach the upstream (an upstream ignoring it desyncs: CL.0)")
    func bodyOnGet() async throws {
        try await withGateway { env in
            let a = try env.f.agent("support-bot")
            // The body is a second request: an upstream that ignores Content-Length on GET would run it, undecided.
            let smuggled = "GET /api/admin/export HTTP/1.1\r\nHost: upstream\r\n\r\n"
            for method in [HTTPRequest.Method.get, .head] {
                let r = try await env.call(a, method, "/r/tickets/v1", body: smuggled)
                #expect(r.status == .badRequest, "\(method)")
                if method == .get { #expect(r.json?["reason"]?.stringValue == "body_not_allowed") }
            }
            #expect(env.upstream.requests.isEmpty)
            // Without a body, and with bodies where they have a meaning, calls go through.
            var r = try await env.call(a, .get, "/r/tickets/v1")
            #expect(r.status == .ok)
            r = try await env.call(a, .post, "/r/tickets/v1", body: "{}")
            #expect(r.status == .ok)
            #expect(env.upstream.requests.map(\.method) == ["GET", "POST"])
            #expect(env.upstream.requests.last?.bodyBytes == 2)
        }
    }

    @Test("garbage tokens: refusals naming no agent are summarised and limited per source, and all counted")
    func refusalFlood() async throws {
        try await withGateway { env in
            let entriesBefore = try await env.callEntries().count
            var limited = 0
            for i in 0..<300 {
                var h = HTTPFields()
                h[.authorization] = "DPoP garbage-\(i)"
                h[HTTPField.Name("DPoP")!] = "garbage"
                let r = try await env.client.execute(uri: "/r/tickets/x", method: .get, headers: h, body: nil)
                #expect(r.status == .unauthorized || r.status == .tooManyRequests)
                if r.status == .tooManyRequests {
                    limited += 1
                    #expect(r.headers[.retryAfter] != nil)
                }
            }
            #expect(limited >= 200)
            // None of them is a durable entry of its own; the summary is written when its window ends.
            #expect(try await env.callEntries().count == entriesBefore)
            env.f.cp.flushRefusalSummaries(all: true)
            await env.f.cp.audit.flush()
            let summaries = try env.f.cp.audit.entries(after: 0, limit: 10_000).compactMap {
                try? JSONValue.parse($0.1)
            }.filter { $0["action"]?.stringValue == "refusals.summary" }
            #expect(summaries.count == 1)
            #expect(summaries.first?["details"]?["count"]?.stringValue == "300")
            #expect(summaries.first?["source"]?.stringValue == "127.0.0.1")
            let metrics = try await env.client.execute(uri: "/metrics", method: .get)
            #expect(String(buffer: metrics.body).contains("warden_unauthenticated_refusals_total 300\n"))
            // Join-token guessing and assertion stuffing meet their own per-source limits.
            var enrollLimited = 0
            for _ in 0..<40 {
                let r = try await env.client.execute(
                    uri: "/v1/enroll", method: .post, headers: [.contentType: "application/json"],
                    body: ByteBuffer(string: #"{"join_token":"guess"}"#))
                if r.status == .tooManyRequests { enrollLimited += 1 }
            }
            #expect(enrollLimited > 0)
        }
    }

    @Test("what could slip past a policy is refused: over 64 query parameters, PHP spellings of _method, %25")
    func reviewFindings() async throws {
        try await withGateway { env in
            let a = try env.f.agent("support-bot")
            let many = (0..<64).map { "a\($0)=1" }.joined(separator: "&") + "&debug=1"
            var r = try await env.call(a, .get, "/r/tickets/x?" + many)
            #expect(r.status == .badRequest && r.json?["reason"]?.stringValue == "invalid_path")
            r = try await env.call(a, .get, "/r/tickets/x?" + (0..<63).map { "a\($0)=1" }.joined(separator: "&"))
            #expect(r.status == .ok)
            for spelling in ["_method", ".method", "%2Emethod", "%5Bmethod", "%20method", "+method"] {
                r = try await env.call(a, .post, "/r/tickets/x?\(spelling)=DELETE", body: "{}")
                #expect(r.json?["reason"]?.stringValue == "method_override", "\(spelling)")
            }
            r = try await env.call(a, .get, "/r/tickets/%2561dmin")
            #expect(r.status == .badRequest)
            // Header names with underscores never go upstream (CGI-style servers read them as dashes).
            var h = HTTPFields()
            h[HTTPField.Name("X_Forwarded_Host")!] = "evil.example"
            h[HTTPField.Name("X_HTTP_Method_Override")!] = "DELETE"
            r = try await env.call(a, .get, "/r/tickets/y", headers: h)
            #expect(r.status == .ok)
            let seen = try #require(env.upstream.requests.last)
            #expect(!seen.headers.contains { $0.0.contains("_") || $0.1 == "evil.example" || $0.1 == "DELETE" })
            #expect(env.upstream.requests.count == 2)
        }
    }

    @Test("a refusal after the agent's credentials verified is recorded as the agent's, not summarised")
    func attributedEndpointRefusals() async throws {
        try await withGateway { env in
            let a = try env.f.agent("support-bot")
            try env.f.cp.transition(agent: a.id, to: .quarantined, reason: "test")
            let body = formBody(try env.f.form(a))
            var h = HTTPFields()
            h[.contentType] = "application/x-www-form-urlencoded"
            h[HTTPField.Name("DPoP")!] = try env.f.tokenProof(a)
            let r = try await env.client.execute(
                uri: "/v1/token", method: .post, headers: h, body: ByteBuffer(string: body))
            #expect(r.status == .badRequest)
            #expect(r.json?["error"]?.stringValue == "unauthorized_client")
            await env.f.cp.audit.flush()
            let entries = try env.f.cp.audit.entries(after: 0, limit: 10_000).compactMap { try? JSONValue.parse($0.1) }
            let refusal = try #require(entries.last { $0["action"]?.stringValue == "token.request" })
            #expect(refusal["agent"]?.stringValue == a.id)
            #expect(refusal["decision"]?.stringValue == "deny")
            #expect(env.f.cp.sources.refusalCount == 0)
        }
    }

    @Test("an agent's own refusals are still recorded one by one")
    func attributedRefusalsRecorded() async throws {
        try await withGateway { env in
            let a = try env.f.agent("support-bot")
            for _ in 0..<3 { _ = try await env.call(a, .get, "/r/billing/x") }
            let entries = try await env.callEntries(a).filter { $0["decision"]?.stringValue == "deny" }
            #expect(entries.count == 3)
        }
    }

    @Test("/metrics names agents only for the metrics or admin token")
    func metricsAuthentication() async throws {
        try await withGateway { env in
            let a = try env.f.agent("support-bot")
            env.f.cp.trust.set(a.record.id, 20)
            let anonymous = String(buffer: try await env.client.execute(uri: "/metrics", method: .get).body)
            #expect(anonymous.contains("warden_trust_lowered_agents 1\n"))
            #expect(!anonymous.contains(a.id))
            let token = try String(contentsOfFile: env.f.dir + "/metrics.token", encoding: .utf8)
                .trimmingCharacters(in: .whitespacesAndNewlines)
            let scraped = String(
                buffer: try await env.client.execute(
                    uri: "/metrics", method: .get, headers: [.authorization: "Bearer \(token)"]
                ).body)
            #expect(scraped.contains("warden_agent_trust{agent=\"\(a.id)\"} 20\n"))
            let wrong = String(
                buffer: try await env.client.execute(
                    uri: "/metrics", method: .get, headers: [.authorization: "Bearer \(token)x"]
                ).body)
            #expect(!wrong.contains(a.id))
            let mode = try FileManager.default.attributesOfItem(atPath: env.f.dir + "/metrics.token")[.posixPermissions]
            #expect((mode as? NSNumber)?.intValue == 0o600)
        }
    }
}

@Suite("Hostile input: restarts (live server)")
struct RestartTests {
    @Test("a gateway request and a token request captured before a restart are refused after it")
    func replayAfterRestart() async throws {
        let upstream = Upstream()
        try await upstream.app.test(.live) { upClient in
            let port = try #require(upClient.port)
            let f = try Fixture { c in
                c.routes = [
                    "tickets": RouteConfig(name: "tickets", upstream: "http://127.0.0.1:\(port)", segment: "support")
                ]
            }
            let a = try f.agent("support-bot")
            // The first process: guarded too (so it keeps assertion ids), past its own start window.
            let first = try ControlPlane(config: f.config, clock: f.clock, guardRestart: true)
            f.clock.advance(6)
            let form = try f.form(a)
            let tokenProof = try a.signer.proof(method: "POST", url: first.tokenEndpoint, now: f.clock.now)
            let token = try first.token(form: form, dpop: tokenProof).accessToken
            var captured = HTTPFields()
            captured[.authorization] = "DPoP \(token)"
            captured[HTTPField.Name("DPoP")!] = try a.signer.proof(
                method: "GET", url: first.url(path: "/r/tickets/x"), accessToken: token, now: f.clock.now)
            let h = captured
            let g1 = try Gateway(cp: first)
            try await Application(router: WardenRouter.build(first, gateway: g1)).test(.live) { client in
                let r = try await client.execute(uri: "/r/tickets/x", method: .get, headers: h)
                #expect(r.status == .ok)
            }
            await g1.shutdown()
            #expect(upstream.requests.count == 1)
            // The restart, a second later: the same request, and the same token request, replayed.
            f.clock.advance(1)
            let second = try ControlPlane(config: f.config, clock: f.clock, guardRestart: true)
            let g2 = try Gateway(cp: second)
            try await Application(router: WardenRouter.build(second, gateway: g2)).test(.live) { client in
                let r = try await client.execute(uri: "/r/tickets/x", method: .get, headers: h)
                #expect(r.status == .unauthorized)
                #expect(r.json?["error"]?.stringValue == "use_dpop_nonce")
                let nonce = try #require(r.headers[HTTPField.Name("DPoP-Nonce")!])
                // The agent itself gets through with the nonce (one round trip).
                var fresh = h
                fresh[HTTPField.Name("DPoP")!] = try a.signer.proof(
                    method: "GET", url: second.url(path: "/r/tickets/x"), accessToken: token, nonce: nonce,
                    now: f.clock.now)
                #expect(try await client.execute(uri: "/r/tickets/x", method: .get, headers: fresh).status == .ok)
            }
            await g2.shutdown()
            #expect(upstream.requests.count == 2)
            // A captured proof with a new assertion: the proof may predate the start.
            #expect(throws: WardenError(.useDPoPNonce, "")) { try second.token(form: try f.form(a), dpop: tokenProof) }
            // The assertion is the first thing checked: it was used before the restart.
            #expect(throws: WardenError(.invalidClient, "")) { try second.token(form: form, dpop: tokenProof) }
            // Even with a fresh proof (nonce and all), the captured assertion is not accepted twice.
            let nonce = try #require(second.currentNonce())
            let proof = try a.signer.proof(method: "POST", url: second.tokenEndpoint, nonce: nonce, now: f.clock.now)
            #expect(throws: WardenError(.invalidClient, "")) { try second.token(form: form, dpop: proof) }
            // A new assertion is fine.
            #expect(
                try second.token(
                    form: try f.form(a),
                    dpop: try a.signer.proof(
                        method: "POST", url: second.tokenEndpoint, nonce: nonce, now: f.clock.now)
                ).accessToken.isEmpty == false)
        }
    }

    @Test(
        "a clock stepped back across a restart does not reopen the replay window: it starts after the log's newest entry"
    )
    func clockSteppedBack() async throws {
        let f = try Fixture()
        let a = try f.agent("support-bot")
        let token = try f.token(a)
        // The previous process's clock was an hour ahead: its audit entries say so.
        let ahead = f.clock.now + 3600
        let before = try ControlPlane(config: f.config, clock: ManualClock(seconds: ahead))
        try before.audit.submit(AuditEvent(kind: .system, action: "test.mark", actor: "system"))
        await before.audit.flush()
        let after = try ControlPlane(config: f.config, clock: f.clock, guardRestart: true)
        #expect(after.inStartWindow)
        let proof = try a.signer.proof(
            method: "GET", url: after.url(path: "/v1/whoami"), accessToken: token, now: f.clock.now)
        #expect(throws: WardenError(.useDPoPNonce, "")) {
            try after.authenticate(authorization: "DPoP \(token)", dpop: proof, method: "GET", path: "/v1/whoami")
        }
        // With this process's nonce the agent gets through.
        let nonce = try #require(after.currentNonce())
        let withNonce = try a.signer.proof(
            method: "GET", url: after.url(path: "/v1/whoami"), accessToken: token, nonce: nonce, now: f.clock.now)
        #expect(
            try after.authenticate(authorization: "DPoP \(token)", dpop: withNonce, method: "GET", path: "/v1/whoami")
                .agent.id == a.record.id)
    }

    @Test("a trust score lowered before a restart is in force before the first request after it")
    func trustSurvivesRestart() async throws {
        try await withGateway { env in
            let a = try env.f.agent("support-bot")
            // The first process's engine: enough refusals to lower the agent's trust, then saved.
            let actions = ControlPlaneRiskActions(cp: env.f.cp)
            var alertOnly = Playbooks()
            alertOnly.medium = [.log]
            alertOnly.high = [.log]
            let engine = RiskEngine(actions: actions, playbooks: alertOnly)
            for i in 0..<30 {
                _ = engine.process(
                    RiskEvent(
                        time: Double(env.f.clock.now + Int64(i)), agentID: a.id, roles: ["support"], kind: .call,
                        resource: "Service::\"billing\"", segment: "finance", allowed: false, reason: "policy_denied"))
            }
            let lowered = env.f.cp.trust.score(try env.f.cp.agent(a.id))
            #expect(lowered < 50)
            try env.f.cp.store.saveRiskBaselines(
                engine.takeChanges().map { (key: $0.key, isRole: $0.isRole, json: $0.json) }, now: env.f.clock.now)
            // The restart: a new control plane starts at the baseline score until the engine's state is restored.
            let second = try env.f.reopened()
            #expect(second.trust.score(try second.agent(a.id)) == 70)
            let engine2 = RiskEngine(actions: ControlPlaneRiskActions(cp: second))
            second.risk.attach(engine2)
            RiskService.restore(engine2, cp: second, logger: .init(label: "test"))
            #expect(second.trust.score(try second.agent(a.id)) == lowered)
            // And a write is refused by writes-need-trust on the very first request.
            let g = try Gateway(cp: second)
            try await Application(router: WardenRouter.build(second, gateway: g)).test(.live) { client in
                let token = try second.token(
                    form: try env.f.form(a),
                    dpop: try a.signer.proof(method: "POST", url: second.tokenEndpoint, now: env.f.clock.now)
                ).accessToken
                var h = HTTPFields()
                h[.authorization] = "DPoP \(token)"
                h[HTTPField.Name("DPoP")!] = try a.signer.proof(
                    method: "POST", url: second.url(path: "/r/tickets/x"), accessToken: token, now: env.f.clock.now)
                let r = try await client.execute(
                    uri: "/r/tickets/x", method: .post, headers: h, body: ByteBuffer(string: "{}"))
                #expect(r.status == .forbidden)
                #expect(r.json?["policies"] == .array([.string("writes-need-trust")]))
            }
            await g.shutdown()
        }
    }
}
