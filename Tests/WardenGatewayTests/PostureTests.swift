import Cedar
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing
import WardenCore
import WardenTestSupport

@testable import WardenControlPlane
@testable import WardenGateway

/// `warden posture` (`GET /v1/admin/posture`) on a live deployment: what it reports follows from what was set up and
/// what happened, and the maturity level moves when the evidence does.
@Suite("Posture report")
struct PostureTests {
    @Test("inventory, join tokens, over-permissive and unused permits, activity, maturity from the evidence")
    func report() async throws {
        try await withGateway { env in
            let admin: HTTPFields = [.authorization: "Bearer \(try adminToken(env.f))"]
            let bot = try env.f.agent("posture-bot", routes: ["tickets", "small"], roles: ["support"])
            for i in 0..<3 { #expect(try await env.call(bot, .get, "/r/tickets/v1/\(i)").status == .ok) }
            #expect(try await env.call(bot, .get, "/r/billing/v1/x").status == .forbidden)
            // A registered agent that never enrolled: its join token is outstanding.
            _ = try env.f.cp.register(manifest: env.f.manifest("posture-pending"))
            // A wide-open permit.
            try #"@id("everyone") permit (principal, action, resource);"#.write(
                toFile: env.f.dir + "/policies/wide.cedar", atomically: true, encoding: .utf8)
            #expect(
                try await env.client.execute(uri: "/v1/admin/policies/reload", method: .post, headers: admin, body: nil)
                    .status == .ok)
            await env.f.cp.audit.flush()
            func posture() async throws -> JSONValue {
                let r = try await env.client.execute(uri: "/v1/admin/posture", method: .get, headers: admin, body: nil)
                #expect(r.status == .ok)
                return try #require(r.json)
            }
            let p = try await posture()
            #expect(p["inventory"]?["by_state"]?["pending"] == .number("1"))
            #expect(p["inventory"]?["active_by_attestation"]?["manifest only"] != nil)
            let row = try #require(
                p["inventory"]?["list"]?.arrayValue?.first { $0["name"]?.stringValue == "posture-bot" })
            #expect(row["last_seen_days_ago"] == .number("0") && row["attestation"]?.stringValue == "manifest only")
            let tokens = p["credentials"]?["join_tokens_outstanding"]?.arrayValue ?? []
            #expect(tokens.count == 1 && tokens.first?["agent"]?.stringValue == "posture-pending")
            let wide = (p["policies"]?["over_permissive"]?.arrayValue ?? []).first {
                $0["id"]?.stringValue == "everyone"
            }
            #expect(wide?["why"]?.stringValue?.contains("any principal; any resource") == true)
            let unusedScopes = (p["policies"]?["unused_scopes"]?.arrayValue ?? []).first {
                $0["agent"]?.stringValue == "posture-bot"
            }
            #expect(unusedScopes?["scopes"]?.arrayValue?.contains(.string("route:small")) == true)
            #expect(p["activity"]?["denied_by_reason"]?["insufficient_scope"] == .number("1"), "\(p["activity"]!)")
            #expect((p["activity"]?["decisions"]?.integerValue ?? 0) >= 4)
            let suggestions = (p["suggestions"]?.arrayValue ?? []).compactMap(\.stringValue)
            #expect(suggestions.contains { $0.contains("posture-bot: remove route:small") })
            #expect(suggestions.contains { $0.contains("everyone: any principal") })
            // Level 2 needs no outstanding join token: the pending agent's keeps the deployment at level 1.
            #expect(p["maturity"]?["level"] == .number("1"))
            let level2 = try #require(p["maturity"]?["levels"]?.arrayValue?[1])
            #expect(level2["met"] == .bool(false))
            #expect(
                level2["checks"]?.arrayValue?.contains {
                    $0["check"]?.stringValue?.hasPrefix("no join token outstanding") == true
                        && $0["passed"] == .bool(false)
                } == true)
            // Once the pending agent is gone, level 2 holds; level 3 does not (manifest-only attestation).
            _ = try env.f.cp.transition(agent: "posture-pending", to: .decommissioned, reason: "test", actor: "test")
            let after = try await posture()
            #expect(after["maturity"]?["level"] == .number("2"), "\(after["maturity"]!)")
            #expect(after["maturity"]?["levels"]?.arrayValue?[2]["met"] == .bool(false))
            #expect(
                try await env.client.execute(
                    uri: "/v1/admin/posture?window=1h", method: .get, headers: admin, body: nil
                )
                .status == .badRequest)
        }
    }

    @Test("over-permissive: unconstrained principal or resource, unconditional permits reaching a high-risk tool")
    func overPermissive() throws {
        let snapshot = try PolicyEngine.load(
            texts: [
                (
                    "p.cedar",
                    #"""
                    @id("any-principal") permit (principal, action == Action::"call", resource == Service::"tickets");
                    @id("any-resource") permit (principal == Agent::"a", action, resource);
                    @id("deploy-tool") permit (principal in Role::"ops", action == Action::"mcp:tools/call", resource == Tool::"infra/deploy");
                    @id("deploy-guarded") permit (principal in Role::"ops", action == Action::"mcp:tools/call", resource == Tool::"infra/deploy") when { context.trust >= 80 };
                    @id("infra-server") permit (principal in Role::"ops", action == Action::"mcp:tools/call", resource in ToolServer::"infra");
                    @id("scoped") permit (principal in Role::"support", action == Action::"call", resource == Service::"tickets");
                    @id("no") forbid (principal, action, resource);
                    """#
                )
            ], now: 0)
        let found = Dictionary(
            ControlPlane.overPermissive(snapshot.policies, highRiskTools: ["infra/deploy"]).map { ($0.id, $0.why) },
            uniquingKeysWith: { a, _ in a })
        #expect(found["any-principal"] == "any principal")
        #expect(found["any-resource"]?.contains("any resource") == true)
        #expect(found["deploy-tool"]?.contains("high-risk tool infra/deploy") == true)
        #expect(found["infra-server"]?.contains("high-risk tool infra/deploy") == true)
        #expect(found["deploy-guarded"] == nil && found["scoped"] == nil && found["no"] == nil)
    }
}
