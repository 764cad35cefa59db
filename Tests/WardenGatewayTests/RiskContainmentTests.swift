import Cedar
import Foundation
import HTTPTypes
import Testing
import WardenCore
import WardenRisk

@testable import WardenGateway

@Suite("Risk engine in the gateway: containment and a saturated queue")
struct RiskContainmentTests {
    @Test("probing is contained on the agent's very next request, within 100 ms of the triggering event")
    func containment() async throws {
        try await withGateway { env in
            let engine = RiskEngine(actions: ControlPlaneRiskActions(cp: env.f.cp), clock: { Double(env.f.clock.now) })
            env.f.cp.risk.attach(engine)
            let consumer = Task { await engine.run() }
            defer {
                engine.stop()
                consumer.cancel()
            }
            let a = try env.f.agent("support-bot")
            let token = try env.token(a)
            #expect(try await env.call(a, .get, "/r/tickets/v1/ok", token: token).status == .ok)
            // Twenty refusals in a minute: the denial-burst detector's high threshold.
            for _ in 0..<20 {
                #expect(try await env.call(a, .get, "/r/billing/v1/invoices", token: token).status == .forbidden)
            }
            let triggered = ContinuousClock.now
            var quarantined = false
            for _ in 0..<400 {
                if env.f.cp.agents.entry(a.id)?.record.state == .quarantined {
                    quarantined = true
                    break
                }
                try await Task.sleep(for: .milliseconds(5))
            }
            let elapsed = ContinuousClock.now - triggered
            #expect(quarantined)
            #expect(elapsed < .milliseconds(100), "containment took \(elapsed)")
            // The very next request, at any route, is refused.
            let next = try await env.call(a, .get, "/r/tickets/v1/ok", token: token)
            #expect(next.status == .forbidden || next.status == .unauthorized)
            #expect(["quarantined", "token_revoked"].contains(next.json?["reason"]?.stringValue ?? ""))
            // The alert: audit entry with detector, actions and the containment time the engine measured.
            await env.f.cp.audit.flush()
            let alerts = try env.f.cp.audit.entries(after: 0, limit: 10_000).compactMap { try? JSONValue.parse($0.1) }
                .filter { $0["action"]?.stringValue == "risk.alert" }
            // At five refusals a medium alert (throttle), at twenty a high one (quarantine and revocation).
            #expect(alerts.first?["details"]?["actions"]?.stringValue == "alert,throttle")
            let alert = try #require(alerts.first { $0["details"]?["severity"]?.stringValue == "high" })
            #expect(alert["reason"]?.stringValue == "denial_burst")
            #expect(alert["details"]?["actions"]?.stringValue == "alert,quarantine,revoke")
            let ms = try #require(alert["details"]?["containment_ms"]?.stringValue.flatMap(Double.init))
            #expect(ms < 100)
            #expect(env.f.cp.trust.score(try env.f.cp.agent(a.id)) < 70)
        }
    }

    @Test("a saturated risk engine does not slow the gateway: events are dropped and counted")
    func saturated() async throws {
        try await withGateway { env in
            let a = try env.f.agent("support-bot")
            let token = try env.token(a)
            func median(_ n: Int) async throws -> Duration {
                var samples: [Duration] = []
                for _ in 0..<n {
                    let start = ContinuousClock.now
                    _ = try await env.call(a, .get, "/r/tickets/v1/ok", token: token)
                    samples.append(ContinuousClock.now - start)
                }
                return samples.sorted()[n / 2]
            }
            _ = try await median(20)
            let without = try await median(100)
            // An engine whose queue holds 8 events and that nobody consumes: full after the first calls.
            let engine = RiskEngine(actions: ControlPlaneRiskActions(cp: env.f.cp), queueCapacity: 8)
            env.f.cp.risk.attach(engine)
            let with = try await median(100)
            #expect(engine.dropped.load(ordering: .relaxed) >= 90)
            #expect(with < without * 2 + .milliseconds(2), "median \(with) with a full queue, \(without) without")
        }
    }
}
