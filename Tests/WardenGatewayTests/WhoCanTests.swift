import Cedar
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing
import WardenClient
import WardenCore
import WardenTestSupport

@testable import WardenControlPlane
@testable import WardenGateway

/// `warden policy who-can --route R`, checked against brute force: every agent of a generated deployment calls the
/// route for real, with several methods and paths, and what was served must agree with always / never / conditional.
@Suite("Policy analysis: who can reach a route (against brute force)")
struct WhoCanTests {
    /// The deployment's whole policy set (the demo set removed): an unconditional permit for support and ops, a
    /// method-conditioned one for finance, and a forbid on admin paths that ops is exempt from.
    static let generated = #"""
        @id("support-any") permit (principal in Role::"support", action == Action::"call", resource == Service::"tickets");
        @id("ops-all") permit (principal in Role::"ops", action == Action::"call", resource == Service::"tickets");
        @id("finance-posts") permit (principal in Role::"finance", action == Action::"call", resource == Service::"tickets")
        when { context.method == "POST" };
        @id("no-admin-paths") forbid (principal, action, resource == Service::"tickets")
        when { context.path like "*admin*" } unless { principal in Role::"ops" };
        """#

    /// Writes `text` to the policy file `file` and reloads: the status and the body.
    static func reload(_ env: GatewayEnv, _ admin: HTTPFields, file: String, _ text: String) async throws -> (
        HTTPResponse.Status, String
    ) {
        try text.write(toFile: env.f.dir + "/policies/" + file, atomically: true, encoding: .utf8)
        let r = try await env.client.execute(uri: "/v1/admin/policies/reload", method: .post, headers: admin, body: nil)
        return (r.status, String(buffer: r.body))
    }

    /// Replaces the demo set with ``generated`` and reloads it; the admin headers.
    static func useGenerated(_ env: GatewayEnv) async throws -> HTTPFields {
        try FileManager.default.removeItem(atPath: env.f.dir + "/policies/demo.cedar")
        try generated.write(toFile: env.f.dir + "/policies/generated.cedar", atomically: true, encoding: .utf8)
        let admin: HTTPFields = [.authorization: "Bearer \(try adminToken(env.f))"]
        let r = try await env.client.execute(uri: "/v1/admin/policies/reload", method: .post, headers: admin, body: nil)
        #expect(r.status == .ok)
        return admin
    }

    @Test("every agent × the route: always served, never served, conditional consistent; reasons name the layer")
    func bruteForce() async throws {
        try await withGateway { env in
            var rng = SplitMix64(state: 42)
            let admin = try await Self.useGenerated(env)
            // Twelve agents: random roles, the route in the manifest or not, two quarantined (with a token in hand).
            var agents: [(TestAgent, String)] = []
            let roleChoices = [["support"], ["finance"], ["ops"], ["support", "ops"], ["marketing"]]
            for i in 0..<12 {
                let roles = roleChoices[Int.random(in: 0..<roleChoices.count, using: &rng)]
                let routes = Int.random(in: 0..<10, using: &rng) < 8 ? ["tickets"] : ["kb"]
                let a = try env.f.agent("gen-\(i)", routes: routes, roles: roles)
                agents.append((a, try env.token(a)))
            }
            // And one of each shape the random draw may miss: a role no policy names, a manifest without the route.
            for (name, roles, routes) in [
                ("fixed-marketing", ["marketing"], ["tickets"]), ("fixed-kb", ["support"], ["kb"]),
            ] {
                let a = try env.f.agent(name, routes: routes, roles: roles)
                agents.insert((a, try env.token(a)), at: 0)
            }
            for (a, _) in agents.suffix(2) {
                _ = try env.f.cp.transition(agent: a.record.id, to: .quarantined, reason: "test", actor: "test")
            }
            let r = try await env.client.execute(
                uri: "/v1/admin/policies/who-can?route=tickets", method: .get, headers: admin, body: nil)
            #expect(r.status == .ok)
            let answers = Dictionary(
                uniqueKeysWithValues: (r.json?["agents"]?.arrayValue ?? []).compactMap { a in
                    a["spiffe_id"]?.stringValue.map { ($0, a) }
                })
            #expect(answers.count >= 14)
            var kinds: [String: Int] = [:]
            for (a, token) in agents {
                let answer = try #require(answers[a.id])
                let access = try #require(answer["access"]?.stringValue)
                kinds[access, default: 0] += 1
                // Decided one by one: the route called for real, with methods and paths the policies look at.
                var served = 0
                var refused = 0
                for (method, path) in [
                    (HTTPRequest.Method.get, "/r/tickets/v1/open"), (.post, "/r/tickets/v1/new"),
                    (.get, "/r/tickets/admin/users"), (.delete, "/r/tickets/v1/7"),
                ] {
                    let status = try await env.call(a, method, path, token: token).status
                    if status == .ok { served += 1 } else { refused += 1 }
                    #expect(status == .ok || status == .forbidden || status == .unauthorized, "\(status)")
                }
                switch access {
                case "always": #expect(refused == 0, "\(a.record.manifest.name): always, but \(refused) refused")
                case "never": #expect(served == 0, "\(a.record.manifest.name): never, but \(served) served")
                default:
                    #expect(access == "conditional")
                    let conditions = answer["conditions"]?.arrayValue ?? []
                    #expect(conditions.count > 0)
                }
            }
            // The generated deployment has all three answers, and the layers say why.
            #expect(
                kinds["always", default: 0] >= 1 && kinds["never", default: 0] >= 3
                    && kinds["conditional", default: 0] >= 3, "\(kinds)")
            let reasons = answers.values.compactMap { $0["reason"]?.stringValue }
            #expect(reasons.contains { $0.contains("quarantined") })
            #expect(reasons.contains { $0.contains("does not name route:tickets") })
            #expect(reasons.contains { $0.contains("no permit applies") })
            // Unknown route, no route: clear errors.
            #expect(
                try await env.client.execute(
                    uri: "/v1/admin/policies/who-can?route=nope", method: .get, headers: admin, body: nil
                ).status == .notFound)
            #expect(
                try await env.client.execute(uri: "/v1/admin/policies/who-can", method: .get, headers: admin, body: nil)
                    .status == .badRequest)
        }
    }

    @Test("who can call a tool: the manifest's tool scopes, then the policies; an @approval forbid means held")
    func tools() async throws {
        try await withMCP { env in
            let reader = try env.f.agent("reader-bot", tools: ["files/read"])
            let admin = try env.f.agent("admin-bot", tools: ["files/*"])
            let headers: HTTPFields = [.authorization: "Bearer \(try adminToken(env.f))"]
            func ask(_ tool: String) async throws -> [String: JSONValue] {
                let r = try await env.client.execute(
                    uri: "/v1/admin/policies/who-can?tool=\(tool)", method: .get, headers: headers, body: nil)
                #expect(r.status == .ok)
                return Dictionary(
                    uniqueKeysWithValues: (r.json?["agents"]?.arrayValue ?? []).compactMap { a in
                        a["name"]?.stringValue.map { ($0, a) }
                    })
            }
            let delete = try await ask("files/delete")
            #expect(delete["reader-bot"]?["access"]?.stringValue == "never")
            #expect(delete["reader-bot"]?["reason"]?.stringValue?.contains("tool:files/delete") == true)
            // The demo's high-risk-needs-approval (delete is risk: high) holds the call for a human.
            #expect(delete["admin-bot"]?["access"]?.stringValue == "conditional")
            #expect(delete["admin-bot"]?["reason"]?.stringValue?.contains("held for a human's approval") == true)
            #expect(
                delete["admin-bot"]?["policies"]?.arrayValue?.contains(.string("high-risk-needs-approval")) == true)
            // Decided for real: the reader's delete is refused; the admin bot's is held (then denied by a human).
            let s = try await env.session(reader)
            let refused = try await env.rpc(
                reader, session: s, "tools/call", #"{"name":"delete","arguments":{"path":"/x"}}"#)
            #expect(refused["error"]?["code"] == .number("-32003"))
            let sa = try await env.session(admin)
            let held = Task {
                try await env.rpc(admin, session: sa, "tools/call", #"{"name":"delete","arguments":{"path":"/x"}}"#)
            }
            let item = try #require(try await env.heldApproval())
            #expect(env.mcp.approvals.decide(item.id, approve: false, actor: "admin:test") != nil)
            #expect(try await held.value["error"]?["code"] == .number("-32010"))
            // explain --tool agrees: the reader is refused before the policy, the admin bot's call is held by the
            // @approval forbid (it determines the deny), and a read is allowed.
            func explain(_ agent: String, _ tool: String, _ arguments: String = "{}") async throws -> JSONValue {
                let q = "agent=\(agent)&tool=\(tool)&arguments=" + WardenHTTP.percentEncode(arguments)
                let r = try await env.client.execute(
                    uri: "/v1/admin/policies/explain?" + q, method: .get, headers: headers, body: nil)
                #expect(r.status == .ok)
                return try #require(r.json)
            }
            let readerDelete = try await explain("reader-bot", "files/delete")
            #expect(readerDelete["refused_before_policy"]?.stringValue?.contains("tool:files/delete") == true)
            let adminDelete = try await explain("admin-bot", "files/delete", #"{"path": "/x"}"#)
            #expect(adminDelete["policy_decision"]?.stringValue == "deny")
            #expect(adminDelete["determining"]?.arrayValue?.contains(.string("high-risk-needs-approval")) == true)
            let adminRead = try await explain("admin-bot", "files/read", #"{"path": "/x"}"#)
            #expect(adminRead["decision"]?.stringValue == "allow", "\(adminRead)")
            #expect(
                try await env.client.execute(
                    uri: "/v1/admin/policies/explain?agent=admin-bot&tool=files/read&arguments=%5B1%5D", method: .get,
                    headers: headers, body: nil
                ).status == .badRequest)
            // Unknown server, malformed tool: clear errors.
            for (uri, status) in [
                ("/v1/admin/policies/who-can?tool=nope/x", HTTPResponse.Status.notFound),
                ("/v1/admin/policies/who-can?tool=files", .badRequest),
                ("/v1/admin/policies/who-can?route=tickets&tool=files/read", .badRequest),
            ] {
                #expect(
                    try await env.client.execute(uri: uri, method: .get, headers: headers, body: nil).status == status)
            }
        }
    }

    @Test("explain: the decision the gateway makes, the determining policies, the closest permits and why not")
    func explain() async throws {
        try await withGateway { env in
            let admin = try await Self.useGenerated(env)
            let support = try env.f.agent("ex-support", roles: ["support"])
            let finance = try env.f.agent("ex-finance", roles: ["finance"])
            let marketing = try env.f.agent("ex-marketing", roles: ["marketing"])
            func explain(_ a: TestAgent, _ method: String, _ path: String) async throws -> JSONValue {
                let name = a.record.manifest.name
                let r = try await env.client.execute(
                    uri: "/v1/admin/policies/explain?agent=\(name)&route=tickets&method=\(method)&path=\(path)",
                    method: .get, headers: admin, body: nil)
                #expect(r.status == .ok)
                return try #require(r.json)
            }
            // Each answer agrees with what the gateway does with the same call.
            let cases: [(TestAgent, HTTPRequest.Method, String)] = [
                (support, .get, "/admin/x"), (finance, .get, "/v1/x"), (finance, .post, "/v1/x"),
                (marketing, .get, "/v1/x"),
                (support, .get, "/v1/x"),
            ]
            for (a, method, path) in cases {
                let e = try await explain(a, method.rawValue, path)
                let real = try await env.call(a, method, "/r/tickets" + path).status
                #expect(
                    (e["decision"]?.stringValue == "allow") == (real == .ok),
                    "\(a.record.manifest.name) \(method) \(path)")
            }
            let admins = try await explain(support, "GET", "/admin/x")
            #expect(admins["determining"] == .array([.string("no-admin-paths")]))
            let get = try await explain(finance, "GET", "/v1/x")
            let closest = try #require(get["closest_permits"]?.arrayValue?.first)
            #expect(
                closest["id"]?.stringValue == "finance-posts" && closest["outcome"]?.stringValue == "condition_false")
            #expect(closest["detail"]?.stringValue?.contains("context.method == \"POST\"") == true)
            let post = try await explain(finance, "POST", "/v1/x")
            #expect(
                post["decision"]?.stringValue == "allow" && post["determining"] == .array([.string("finance-posts")]))
            let none = try await explain(marketing, "GET", "/v1/x")
            #expect(none["determining"] == .array([]))
            #expect(
                none["closest_permits"]?.arrayValue?.first?["detail"]?.stringValue?.contains("principal in Role::")
                    == true)
            // A quarantined agent: refused before the policy says anything.
            _ = try env.f.cp.transition(agent: support.record.id, to: .quarantined, reason: "test", actor: "test")
            let q = try await explain(support, "GET", "/v1/x")
            #expect(
                q["decision"]?.stringValue == "deny"
                    && q["refused_before_policy"]?.stringValue?.contains("quarantined") == true)
        }
    }

    @Test(
        "diff --replay: a widened permit shows exactly the recorded calls it newly allows; a new forbid, those it denies"
    )
    func diffReplay() async throws {
        try await withGateway { env in
            let admin = try await Self.useGenerated(env)
            let finance = try env.f.agent("diff-finance", roles: ["finance"])
            let support = try env.f.agent("diff-support", roles: ["support"])
            // Recorded: finance's GETs are refused (no permit), its POST allowed; support's GETs allowed but admin
            // paths; a call outside the manifest's routes is refused before the policy.
            #expect(try await env.call(finance, .get, "/r/tickets/v1/a?x=1").status == .forbidden)
            #expect(try await env.call(finance, .post, "/r/tickets/v1/b", body: "{}").status == .ok)
            #expect(try await env.call(finance, .get, "/r/tickets/admin/x").status == .forbidden)
            #expect(try await env.call(support, .get, "/r/tickets/v1/c").status == .ok)
            #expect(try await env.call(support, .get, "/r/tickets/v1/d").status == .ok)
            #expect(try await env.call(support, .get, "/r/billing/v1/e").status == .forbidden)
            let entries = try await env.callEntries()
            let financeGet = try #require(
                entries.first {
                    $0["agent"]?.stringValue == finance.id && $0["details"]?["path"]?.stringValue == "/r/tickets/v1/a"
                })
            let supportC = try #require(
                entries.first {
                    $0["agent"]?.stringValue == support.id && $0["details"]?["path"]?.stringValue == "/r/tickets/v1/c"
                })
            // The change: finance-posts widened to every method; a new forbid on /v1/c.
            let widened = Self.generated.replacingOccurrences(
                of: "resource == Service::\"tickets\")\nwhen { context.method == \"POST\" };",
                with: "resource == Service::\"tickets\");")
            #expect(widened != Self.generated)
            let new =
                widened + #"""

                    @id("no-v1-c") forbid (principal, action, resource == Service::"tickets") when { context.path == "/v1/c" };
                    """#
            func files(_ text: String) -> JSONValue {
                .array([.object([("name", .string("generated.cedar")), ("text", .string(text))])])
            }
            let body = JSONValue.object([("old", files(Self.generated)), ("new", files(new)), ("since", .string("1d"))])
            let r = try await env.client.execute(
                uri: "/v1/admin/policies/diff", method: .post, headers: admin,
                body: ByteBuffer(string: body.serialized))
            #expect(r.status == .ok)
            let j = try #require(r.json)
            #expect(j["policies"]?["added"] == .array([.string("no-v1-c")]))
            #expect(j["policies"]?["changed"] == .array([.string("finance-posts")]))
            #expect(j["policies"]?["removed"] == .array([]))
            let replay = try #require(j["replay"])
            // Exactly finance's GET of /v1/a is newly allowed (its admin path stays forbidden by no-admin-paths).
            #expect(replay["newly_allowed_count"] == .number("1"), "\(replay)")
            let allowed = try #require(replay["newly_allowed"]?.arrayValue?.first)
            #expect(allowed["seq"] == financeGet["seq"])
            #expect(allowed["agent"]?.stringValue == "diff-finance" && allowed["method"]?.stringValue == "GET")
            #expect(allowed["path"]?.stringValue == "/v1/a" && allowed["old"]?.stringValue == "deny")
            #expect(allowed["new_policies"] == .array([.string("finance-posts")]))
            // Exactly support's GET of /v1/c is newly denied.
            #expect(replay["newly_denied_count"] == .number("1"), "\(replay)")
            let denied = try #require(replay["newly_denied"]?.arrayValue?.first)
            #expect(denied["seq"] == supportC["seq"] && denied["new_policies"] == .array([.string("no-v1-c")]))
            #expect(replay["replayed"] == .number("5"), "\(replay)")
            #expect(replay["not_replayed"]?["refused_before_policy"] == .number("1"), "\(replay)")
            // The same set on both sides changes nothing.
            let same = JSONValue.object([("old", files(new)), ("new", files(new)), ("since", .string("1d"))])
            let r2 = try await env.client.execute(
                uri: "/v1/admin/policies/diff", method: .post, headers: admin,
                body: ByteBuffer(string: same.serialized))
            let j2 = try #require(r2.json)
            #expect(
                j2["replay"]?["newly_allowed_count"] == .number("0")
                    && j2["replay"]?["newly_denied_count"] == .number("0"))
            // A set that does not parse is a clear 400 naming the side.
            let bad = JSONValue.object([
                ("old", files(Self.generated)), ("new", files("permit (")), ("since", .string("1d")),
            ])
            let r3 = try await env.client.execute(
                uri: "/v1/admin/policies/diff", method: .post, headers: admin, body: ByteBuffer(string: bad.serialized))
            #expect(r3.status == .badRequest && String(buffer: r3.body).contains("new:"))
        }
    }

    @Test("unused grants from the audit log: permits that allowed nothing, manifest scopes never used")
    func unused() async throws {
        try await withGateway { env in
            let admin: HTTPFields = [.authorization: "Bearer \(try adminToken(env.f))"]
            let a = try env.f.agent("usage-bot", routes: ["tickets", "small"], roles: ["support"])
            for i in 0..<3 { #expect(try await env.call(a, .get, "/r/tickets/v1/\(i)").status == .ok) }
            #expect(try await env.call(a, .get, "/r/billing/v1/x").status == .forbidden)  // refused: not a use
            await env.f.cp.audit.flush()
            let r = try await env.client.execute(
                uri: "/v1/admin/policies/unused?since=1d", method: .get, headers: admin, body: nil)
            #expect(r.status == .ok)
            let j = try #require(r.json)
            let unusedPermits = (j["unused_permits"]?.arrayValue ?? []).compactMap(\.stringValue)
            #expect(!unusedPermits.contains("support-segment"))  // it allowed the three calls
            #expect(unusedPermits.contains("finance-segment"))
            #expect(j["uses"]?["support-segment"] == .number("3"))
            let mine = (j["unused_scopes"]?.arrayValue ?? []).first { $0["agent"]?.stringValue == "usage-bot" }
            let scopes = (mine?["scopes"]?.arrayValue ?? []).compactMap(\.stringValue)
            #expect(scopes.contains("route:small") && !scopes.contains("route:tickets"), "\(scopes)")
            #expect(scopes.contains("tool:tickets/read"))
            #expect(
                try await env.client.execute(
                    uri: "/v1/admin/policies/unused?since=soon", method: .get, headers: admin, body: nil
                ).status == .badRequest)
        }
    }

    @Test(
        "a policy reading a context key no call has (context.metod) is refused by the reload, named; the last set stays"
    )
    func contextTypos() async throws {
        try await withGateway { env in
            let admin: HTTPFields = [.authorization: "Bearer \(try adminToken(env.f))"]
            let a = try env.f.agent("typo-bot")
            func reload(_ text: String) async throws -> (HTTPResponse.Status, String) {
                try await Self.reload(env, admin, file: "zz-typo.cedar", text)
            }
            let refused = [
                #"@id("typo") forbid (principal, action == Action::"call", resource) when { context.metod == "DELETE" };"#,
                #"@id("risky") forbid (principal, action, resource) when { context.risk.newSegmnt };"#,
                #"@id("wrong-front") permit (principal, action == Action::"mcp:tools/call", resource) when { context.method == "GET" };"#,
                #"@id("has-typo") permit (principal, action, resource) when { context has aproved };"#,
            ]
            for text in refused {
                let (status, body) = try await reload(text)
                #expect(status != .ok, "\(text)")
                let id = try #require(text.split(separator: "\"").dropFirst().first)
                #expect(body.contains("@id(\\\"\(id)\\\")") || body.contains("@id(\"\(id)\")"), "\(body)")
                #expect(body.contains("zz-typo.cedar"), "\(body)")
                // The last good set stays: the bot's calls are served as before.
                #expect(try await env.call(a, .get, "/r/tickets/v1/ok").status == .ok)
            }
            // Known keys load.
            let (ok, body) = try await reload(
                #"@id("fine") forbid (principal, action == Action::"call", resource) when { context.method == "DELETE" && context.risk.newSegment && context.trust < 10 };"#
            )
            #expect(ok == .ok, "\(body)")
        }
    }

    @Test(
        "reload validates against Warden's schema: type errors refused with every error, tool arguments are any value")
    func schemaValidation() async throws {
        try await withGateway { env in
            let admin: HTTPFields = [.authorization: "Bearer \(try adminToken(env.f))"]
            let a = try env.f.agent("schema-bot")
            func reload(_ text: String) async throws -> (HTTPResponse.Status, String) {
                try await Self.reload(env, admin, file: "zz-schema.cedar", text)
            }
            let refused: [(String, String)] = [
                // No such attribute on an agent; a route's Service has no risk.
                (
                    #"@id("no-attr") forbid (principal, action == Action::"call", resource) when { principal.clearance > 3 };"#,
                    "clearance"
                ),
                (
                    #"@id("svc-risk") forbid (principal, action == Action::"call", resource) when { resource.risk == "high" };"#,
                    "risk"
                ),
                // An optional attribute (an agent's team, the source address) read without `has`.
                (
                    #"@id("no-has") permit (principal, action == Action::"call", resource) when { principal.team == "ops" };"#,
                    "team"
                ),
                (
                    #"@id("src") forbid (principal, action == Action::"call", resource) when { !context.source.isInRange(ip("10.0.0.0/8")) };"#,
                    "source"
                ),
                // Wrong types.
                (
                    #"@id("types") forbid (principal, action == Action::"call", resource) when { context.trust == "high" };"#,
                    "compatible"
                ),
                (
                    #"@id("bad-ip") forbid (principal, action == Action::"call", resource) when { ip("10.0.0.300") == ip("10.0.0.1") };"#,
                    "failed to parse"
                ),
            ]
            for (text, word) in refused {
                let (status, body) = try await reload(text)
                #expect(status != .ok, "\(text)")
                let id = try #require(text.split(separator: "\"").dropFirst().first)
                #expect(
                    body.contains("\(id)") && body.contains(word) && body.contains("zz-schema.cedar:1:1"), "\(body)")
                #expect(try await env.call(a, .get, "/r/tickets/v1/ok").status == .ok)  // the last good set stays
            }
            let accepted = [
                #"@id("guarded") forbid (principal, action == Action::"call", resource) when { context has source && !context.source.isInRange(ip("10.0.0.0/8")) };"#,
                #"@id("args") forbid (principal, action == Action::"mcp:tools/call", resource) when { context.arguments.path like "/etc/*" && resource.risk == "high" };"#,
                #"@id("team") permit (principal, action == Action::"call", resource) when { principal has team && principal.team == "ops" && context.risk.volumeRatio.lessThan(decimal("2.0")) };"#,
            ]
            for text in accepted {
                let (status, body) = try await reload(text)
                #expect(status == .ok, "\(text): \(body)")
            }
        }
    }

    @Test("the demo policy set and Warden's schema: the demo validates, the schema parses in the human syntax")
    func demoValidates() throws {
        let snapshot = try PolicyEngine.load(texts: [("demo.cedar", PolicyEngine.demoPolicies)], now: 0)
        #expect(Validator(schema: WardenSchema.schema).validate(snapshot.policies).isEmpty)
        let plain = try Schema(text: WardenSchema.text)
        #expect(plain.actions.count == 5 && plain.entityTypes.count == 9)
        #expect(WardenSchema.schema.actions[EntityUID("Action", "mcp:tools/call")]?.context["arguments"] != nil)
    }

    @Test("the one list of context keys is what the request builder and the front ends really put in the context")
    func contextKeysMatchTheBuilders() async throws {
        try await withGateway { env in
            let a = try env.f.agent("keys-bot")
            let who = Decide.Principal(
                entity: AgentDirectory.entity(a.record), spiffeID: a.id, roles: ["support"], trust: 70, delegation: [],
                delegated: false, subject: a.id)
            let decide = Decide(cp: env.f.cp)
            let call = try #require(
                decide.request(
                    who, source: "127.0.0.1", action: "call", resource: EntityUID("Service", "tickets"), entities: [],
                    context: Gateway.callContext(method: "GET", path: "/", route: "tickets", query: [], length: nil)))
            #expect(Set(call.0.context.keys) == PolicyContextCheck.call)
            let risk = try #require(call.0.context["risk"])
            guard case .record(let fields) = risk else { Issue.record("risk is not a record"); return }
            #expect(Set(fields.keys) == PolicyContextCheck.risk)
            let mcp = try #require(
                decide.request(
                    who, source: "127.0.0.1", action: "mcp:tools/call", resource: EntityUID("Tool", "files/read"),
                    entities: [],
                    context: MCPGateway.context(era: "2025-11-25", server: "files").merging(
                        ["arguments": .record([:])], uniquingKeysWith: { a, _ in a })))
            #expect(Set(mcp.0.context.keys) == PolicyContextCheck.mcp)
        }
    }
}
