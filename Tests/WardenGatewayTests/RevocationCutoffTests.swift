import Foundation
import HTTPTypes
import Testing
import WardenCore

@testable import WardenGateway

/// The risk engine's "revoke every token issued so far" orders tokens by issuance, not by whole seconds: a victim that
/// renews in the same second as its containment gets a working token (issue: detection that holds on real traffic).
@Suite("Risk engine token cut-offs (test clock, live gateway)")
struct RevocationCutoffTests {
    @Test("a token issued before the cut-off is refused, one issued after it in the same second works")
    func sameSecondRenewal() async throws {
        try await withGateway { env in
            let a = try env.f.agent("support-bot")
            let before = try env.token(a)
            #expect(try await env.call(a, .get, "/r/tickets/x", token: before).status == .ok)
            // The containment, in the same second as the token and the renewal (the test clock does not move).
            try ControlPlaneRiskActions(cp: env.f.cp).revokeTokens(agentID: a.id, reason: "test")
            let refused = try await env.call(a, .get, "/r/tickets/x", token: before)
            #expect(refused.status == .unauthorized)
            #expect(refused.json?["reason"]?.stringValue == "token_revoked")
            let renewed = try env.token(a)
            #expect(try await env.call(a, .get, "/r/tickets/x", token: renewed).status == .ok)
            // A second later, still: everything issued before the cut-off stays revoked.
            env.f.clock.advance(1)
            #expect(try await env.call(a, .get, "/r/tickets/x", token: before).status == .unauthorized)
            #expect(try await env.call(a, .get, "/r/tickets/x", token: renewed).status == .ok)
        }
    }

    @Test("more tokens in one second than are remembered: the cut-off takes that whole second (fails closed)")
    func overflowFailsClosed() throws {
        let hub = RiskHub()
        let agent = "spiffe://warden.local/agent/busy"
        for i in 0...RiskHub.maxIssuedPerSecond { hub.noteIssued(agent: agent, issuedAt: 100, jti: "t\(i)") }
        hub.cutOff(agent: agent, now: 100)
        #expect(hub.isCutOff(agent: agent, issuedAt: 100, jti: "t0"))
        #expect(hub.isCutOff(agent: agent, issuedAt: 100, jti: "unknown"))
        #expect(hub.isCutOff(agent: agent, issuedAt: 99, jti: "older"))
        #expect(!hub.isCutOff(agent: agent, issuedAt: 101, jti: "later"))
        // Without overflow, only the remembered ids of that second are taken.
        let other = "spiffe://warden.local/agent/calm"
        hub.noteIssued(agent: other, issuedAt: 100, jti: "a")
        hub.cutOff(agent: other, now: 100)
        #expect(hub.isCutOff(agent: other, issuedAt: 100, jti: "a"))
        #expect(!hub.isCutOff(agent: other, issuedAt: 100, jti: "b"))
        // A later cut-off in the same second adds to the earlier one; an earlier second never moves it back.
        hub.noteIssued(agent: other, issuedAt: 100, jti: "b")
        hub.cutOff(agent: other, now: 100)
        #expect(
            hub.isCutOff(agent: other, issuedAt: 100, jti: "a") && hub.isCutOff(agent: other, issuedAt: 100, jti: "b"))
        hub.cutOff(agent: other, now: 90)
        #expect(hub.isCutOff(agent: other, issuedAt: 99, jti: "c"))
    }
}
