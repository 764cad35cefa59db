import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing
import WardenCore
import WardenTestSupport

@testable import WardenControlPlane
@testable import WardenGateway
@testable import WardenRisk
@testable import WardenServer

@Suite("Risk signals inline in policy (context.risk)")
struct RiskSignalsTests {
    static let permitDocs = #"""
        @id("docs-open") permit (principal, action == Action::"call", resource == Service::"docs");
        """#
    static let hold =
        permitDocs + "\n"
            + #"""
            @id("hold-new-segments")
            forbid (principal, action == Action::"call", resource) when { context.risk.ready && context.risk.newSegment };
            """#

    /// Writes `text` as a policy file and reloads the set through the admin API.
    static func load(_ env: GatewayEnv, _ text: String) async throws {
        try text.write(toFile: env.f.dir + "/policies/zz-risk.cedar", atomically: true, encoding: .utf8)
        let admin: HTTPFields = [.authorization: "Bearer \(try adminToken(env.f))"]
        let r = try await env.client.execute(uri: "/v1/admin/policies/reload", method: .post, headers: admin, body: nil)
        #expect(r.status == .ok)
    }

    @Test(
        "a policy on context.risk.newSegment refuses the first call to a segment new to a warm agent, before it is served"
    )
    func holdsNewSegment() async throws {
        // A route in a segment the agent has never used, which the rest of the policy set allows.
        try await withGateway({ c in
            c.routes["docs"] = RouteConfig(name: "docs", upstream: c.routes["tickets"]!.upstream, segment: "documents")
        }) { env in
            let a = try env.f.agent("support-bot", routes: ["tickets", "docs"])
            try await Self.load(env, Self.hold)
            // No engine yet: `context.risk` is there (the policy does not err), and not ready, so nothing is held.
            #expect(try await env.call(a, .get, "/r/tickets/1").status == .ok)
            let first = try await env.call(a, .get, "/r/docs/1")
            #expect(first.status == .ok, "\(first.status) \(String(describing: first.json))")
            // An engine that knows the agent: a day of calls to tickets, in segment support.
            let engine = RiskEngine(actions: ControlPlaneRiskActions(cp: env.f.cp), clock: env.f.clock)
            env.f.cp.risk.attach(engine)
            let now = Double(env.f.cp.now())
            for i in 0..<300 {
                engine.process(
                    RiskEvent(
                        time: now - 86_400 + Double(i) * 120, agentID: a.id, roles: ["support"], kind: .call,
                        resource: #"Service::"tickets""#, segment: "support", allowed: true))
            }
            let before = env.upstream.requests.count
            let refused = try await env.call(a, .get, "/r/docs/2")
            #expect(refused.status == .forbidden)
            #expect(refused.json?["policies"] == .array([.string("hold-new-segments")]))
            #expect(env.upstream.requests.count == before)  // not served
            // Its own segment is not new: served.
            #expect(try await env.call(a, .get, "/r/tickets/2").status == .ok)
            // The operator sees which detectors can judge the agent yet, and why the others cannot.
            let admin: HTTPFields = [.authorization: "Bearer \(try adminToken(env.f))"]
            let view = try await env.client.execute(
                uri: "/v1/admin/risk/agents/support-bot", method: .get, headers: admin, body: nil)
            #expect(view.status == .ok)
            let detectors = view.json?["detectors"]?.arrayValue ?? []
            let byName = Dictionary(
                uniqueKeysWithValues: detectors.compactMap { d in d["name"]?.stringValue.map { ($0, d) } })
            #expect(byName["new_resource"]?["ready"] == .bool(true))
            #expect(byName["volume_spike"]?["ready"] == .bool(true))
            #expect(byName["slow_exfiltration"]?["ready"] == .bool(false))
            #expect(byName["slow_exfiltration"]?["why"]?.stringValue?.contains("whole days known") == true)
            // A policy on the volume ratio: a burst far above the agent's usual minute holds its next call.
            try await Self.load(
                env,
                Self.permitDocs + "\n"
                    + #"@id("hold-bursts") forbid (principal, action, resource) when { context.risk.volumeRatio.greaterThan(decimal("20.0")) };"#
            )
            #expect(try await env.call(a, .get, "/r/tickets/3").status == .ok)
            let t = env.f.clock.wallSeconds
            for i in 0..<100 {
                engine.process(
                    RiskEvent(
                        time: t - 10 + Double(i) * 0.1, agentID: a.id, roles: ["support"], kind: .call,
                        resource: #"Service::"tickets""#, segment: "support", allowed: true))
            }
            let burst = try await env.call(a, .get, "/r/tickets/4")
            #expect(burst.status == .forbidden)
            #expect(burst.json?["policies"] == .array([.string("hold-bursts")]))
            // Without the policy the same call is served, as before.
            try await Self.load(env, Self.permitDocs)
            #expect(try await env.call(a, .get, "/r/docs/3").status == .ok)
        }
    }

    @Test("the demo set: a known agent's first call to a tool its role never used waits for a human, then is learnt")
    func newToolNeedsApproval() async throws {
        try await withMCP { env in
            let a = try env.f.agent("file-bot", tools: ["files/read", "files/search"])
            let engine = RiskEngine(actions: ControlPlaneRiskActions(cp: env.f.cp), clock: env.f.clock)
            env.f.cp.risk.attach(engine)
            let consumer = Task { await env.f.cp.risk.run(engine, audit: env.f.cp.audit) }
            defer {
                engine.stop()
                consumer.cancel()
            }
            // A day of its role reading files: warm, and files/read is known; files/search never used.
            let now = env.f.clock.wallSeconds
            for i in 0..<300 {
                engine.process(
                    RiskEvent(
                        time: now - 86_400 + Double(i) * 120, agentID: a.id, roles: ["support"], kind: .tool,
                        resource: #"Tool::"files/read""#, allowed: true))
            }
            let s = try await env.session(a)
            let known = try await env.rpc(a, session: s, "tools/call", #"{"name":"read","arguments":{"path":"/a"}}"#)
            #expect(known["result"] != nil)  // not held
            let call = Task {
                try await env.rpc(a, session: s, "tools/call", #"{"name":"search","arguments":{"query":"q"}}"#)
            }
            let held = try #require(try await env.heldApproval())
            #expect(held.tool == "search" && env.upstream.calls.withLock { !$0.contains("search") })
            #expect(env.mcp.approvals.decide(held.id, approve: true, actor: "admin:alice") != nil)
            #expect(try await call.value["result"] != nil)
            // Served once approved, and learnt: the next call is not held.
            #expect(await env.f.cp.risk.settle(engine))
            let again = try await env.rpc(a, session: s, "tools/call", #"{"name":"search","arguments":{"query":"r"}}"#)
            #expect(again["result"] != nil)
            #expect(env.mcp.approvals.list().isEmpty)
        }
    }

    @Test("risk events carry the call's time to the microsecond, not the whole second")
    func subSecondEventTimes() async throws {
        try await withGateway { env in
            let a = try env.f.agent("support-bot")
            let engine = RiskEngine(actions: ControlPlaneRiskActions(cp: env.f.cp), clock: env.f.clock)
            env.f.cp.risk.attach(engine)
            let consumer = Task { await engine.run() }
            defer {
                engine.stop()
                consumer.cancel()
            }
            env.f.clock.advance(micros: 250_000)
            let t = Double(env.f.clock.wallMicros) / 1_000_000
            #expect(t != t.rounded(.down))
            #expect(try await env.call(a, .get, "/r/tickets/1").status == .ok)
            var seen: Double?
            for _ in 0..<500 {
                seen = engine.snapshot(agentID: a.id)?.baseline.lastSeen
                if seen != nil { break }
                try await Task.sleep(for: .milliseconds(2))
            }
            #expect(seen == t)
        }
    }

    @Test("the engine's signals: not ready without a reference, then new resource and segment against the history")
    func signals() {
        let engine = RiskEngine(actions: NoActions())
        var s = engine.signals(
            agentID: "a", roles: ["r"], resource: #"Service::"x""#, segment: "s1", time: 1_000_000)
        #expect(s == RiskEngine.Signals())
        for i in 0..<300 {
            engine.process(
                RiskEvent(
                    time: 1_000_000 + Double(i) * 60, agentID: "a", roles: ["r"], kind: .call,
                    resource: #"Service::"x""#, segment: "s1", allowed: true))
        }
        let t = 1_000_000 + 300 * 60.0
        s = engine.signals(agentID: "a", roles: ["r"], resource: #"Service::"x""#, segment: "s1", time: t)
        #expect(s == RiskEngine.Signals(ready: true))
        s = engine.signals(agentID: "a", roles: ["r"], resource: #"Service::"y""#, segment: "s2", time: t)
        #expect(s == RiskEngine.Signals(ready: true, newResource: true, newSegment: true))
        // A new agent of the role is judged by the role's history.
        s = engine.signals(agentID: "b", roles: ["r"], resource: #"Service::"x""#, segment: "s1", time: t)
        #expect(s == RiskEngine.Signals(ready: true))
        s = engine.signals(agentID: "b", roles: ["r"], resource: #"Service::"x""#, segment: "s9", time: t)
        #expect(s.newSegment && !s.newResource)
    }
}

/// Risk actions that do nothing (the signals need no responses).
final class NoActions: RiskActions {
    func setTrust(agentID: String, score: Int?) {}
    func baselineTrust(agentID: String) -> Int { 90 }
    func alert(_ alert: RiskAlert) {}
    func throttle(agentID: String, until: Double) {}
    func requireApproval(agentID: String, until: Double) {}
    func quarantine(agentID: String, reason: String) throws {}
    func revokeTokens(agentID: String, reason: String) throws {}
}
