import AsyncHTTPClient
import Cedar
import Crypto
import Foundation
import HTTPTypes
import NIOCore
import Testing
import WardenCore
import WardenIdentity
import WardenTestSupport

@testable import WardenControlPlane
@testable import WardenGateway
@testable import WardenServer

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

/// Credential stuffing at the token endpoint is seen by the risk engine like stuffing at `/r/` (issue: detection that
/// holds on real traffic): by source address, without charging the agent a forged assertion names.
@Suite("Risk engine: refusals at the token endpoint (live listener)")
struct TokenEndpointStuffingTests {
    @Test(
        "forty forged client assertions raise a denial-burst alert for the source, and the named agent keeps its trust")
    func stuffing() async throws {
        try await withGateway { env in
            try await RiskContainmentTests.withEngine(env) { engine in
                let victim = try env.f.agent("support-bot")
                let attacker = P256.Signing.PrivateKey()
                for _ in 0..<40 {
                    // Signed with the attacker's key in the victim's name, with a proof of the attacker's key.
                    let assertion = try ClientAssertion.sign(
                        clientID: victim.id, audience: env.f.cp.tokenEndpoint, key: attacker, now: env.f.clock.now)
                    let form = formBody([
                        "grant_type": "client_credentials", "client_assertion_type": ClientAssertion.type,
                        "client_assertion": assertion,
                    ])
                    var h = HTTPFields()
                    h[.contentType] = "application/x-www-form-urlencoded"
                    h[HTTPField.Name("DPoP")!] = try DPoPProofSigner(key: attacker).proof(
                        method: "POST", url: env.f.cp.tokenEndpoint, now: env.f.clock.now)
                    let r = try await env.client.execute(
                        uri: "/v1/token", method: .post, headers: h, body: ByteBuffer(string: form))
                    #expect(r.status == .unauthorized || r.status == .badRequest)
                }
                try await RiskContainmentTests.drain(engine, env)
                await env.f.cp.audit.flush()
                let alerts = try env.f.cp.audit.entries(after: 0, limit: 10_000).compactMap {
                    try? JSONValue.parse($0.1)
                }
                .filter { $0["action"]?.stringValue == "risk.alert" }
                #expect(
                    alerts.contains {
                        $0["reason"]?.stringValue == "denial_burst" && $0["source"]?.stringValue == "127.0.0.1"
                            && $0["agent"] == nil
                    })
                #expect(engine.snapshot(agentID: "source:127.0.0.1") != nil)
                // The agent the forgeries named is not charged with them.
                #expect(engine.snapshot(agentID: victim.id) == nil)
                #expect(env.f.cp.trust.score(try env.f.cp.agent(victim.id)) == 70)
                #expect(env.f.cp.agents.entry(victim.id)?.record.state == .active)
            }
        }
    }
}

/// The bytes an `/r/` call moves reach the risk engine as counted while they stream (issue: detection that holds on
/// real traffic): a chunked response or upload is no longer 0 bytes to the volume detectors.
@Suite("Risk engine: bytes counted as they stream (live gateway)")
struct StreamedBytesTests {
    /// `GET /r/tickets/stream?mib=N` as `a`, its body left to read as a stream.
    static func download(_ env: GatewayEnv, _ a: TestAgent, mib: Int) async throws -> HTTPClientResponse {
        let token = try env.token(a)
        var request = HTTPClientRequest(
            url: "http://127.0.0.1:\(try #require(env.client.port))/r/tickets/stream?mib=\(mib)")
        request.headers.add(name: "Authorization", value: "DPoP \(token)")
        request.headers.add(
            name: "DPoP",
            value: try DPoPProofSigner(key: a.key).proof(
                method: "GET", url: env.f.cp.url(path: "/r/tickets/stream"), accessToken: token, now: env.f.clock.now))
        return try await HTTPClient.shared.execute(request, timeout: .seconds(60))
    }

    @Test("a chunked 300 kB response is counted in full, as is a small one read whole")
    func streamedBytes() async throws {
        try await withGateway { env in
            try await RiskContainmentTests.withEngine(env) { engine in
                let a = try env.f.agent("support-bot")
                // The upstream answers /stream with six 50,000-byte chunks and no Content-Length.
                let big = try await env.call(a, .get, "/r/tickets/stream")
                #expect(big.status == .ok && big.body.readableBytes == 300_000)
                #expect(big.headers[.contentLength] == nil)
                // Small, known-length answers are counted too (read whole).
                let small = try await env.call(a, .get, "/r/tickets/small")
                #expect(small.status == .ok)
                // The stream's end is reported when the response body has gone out; wait for the engine (bounded).
                var counted: Int64 = 0
                for _ in 0..<500 {
                    try await RiskContainmentTests.drain(engine, env)
                    counted = engine.snapshot(agentID: a.id)?.baseline.bytesLast24h(now: Double(env.f.clock.now)) ?? 0
                    if counted >= 300_000 + Int64(small.body.readableBytes) { break }
                    try await Task.sleep(for: .milliseconds(2))
                }
                #expect(counted == 300_000 + Int64(small.body.readableBytes))
            }
        }
    }

    @Test("a 50 MiB chunked download is counted as 50 MiB")
    func fiftyMiB() async throws {
        try await withGateway { env in
            try await RiskContainmentTests.withEngine(env) { engine in
                let a = try env.f.agent("support-bot")
                // Read as a stream (the test client would gather it whole).
                let response = try await Self.download(env, a, mib: 50)
                #expect(response.status == .ok && response.headers["Content-Length"].isEmpty)
                var received = 0
                for try await chunk in response.body { received += chunk.readableBytes }
                #expect(received == 50 << 20)
                var counted: Int64 = 0
                for _ in 0..<500 {
                    try await RiskContainmentTests.drain(engine, env)
                    counted = engine.snapshot(agentID: a.id)?.baseline.bytesLast24h(now: Double(env.f.clock.now)) ?? 0
                    if counted >= 50 << 20 { break }
                    try await Task.sleep(for: .milliseconds(2))
                }
                #expect(counted == 50 << 20)
            }
        }
    }

    @Test("a long download is counted while it streams (every 8 MiB), and is still one request")
    func countedWhileStreaming() async throws {
        try await withGateway { env in
            try await RiskContainmentTests.withEngine(env) { engine in
                let a = try env.f.agent("support-bot")
                let response = try await Self.download(env, a, mib: 40)
                func counted() -> Int64 {
                    engine.snapshot(agentID: a.id)?.baseline.bytesLast24h(now: Double(env.f.clock.now)) ?? 0
                }
                var received = 0
                var seenMidway: Int64 = 0
                for try await chunk in response.body {
                    received += chunk.readableBytes
                    // Halfway through, the engine already has most of what passed (bounded wait).
                    if received >= 20 << 20, seenMidway == 0 {
                        for _ in 0..<500 {
                            seenMidway = counted()
                            if seenMidway >= 8 << 20 { break }
                            try await Task.sleep(for: .milliseconds(2))
                        }
                    }
                }
                #expect(seenMidway >= 8 << 20, "\(seenMidway) bytes seen while streaming")
                #expect(received == 40 << 20)
                for _ in 0..<500 where counted() < 40 << 20 {
                    try await RiskContainmentTests.drain(engine, env)
                    try await Task.sleep(for: .milliseconds(2))
                }
                #expect(counted() == 40 << 20)
                // The interim reports are bytes, not requests: the call is one event.
                #expect(engine.snapshot(agentID: a.id)?.baseline.events == 1)
            }
        }
    }
}
