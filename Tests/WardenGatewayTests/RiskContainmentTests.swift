import AsyncHTTPClient
import Cedar
import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import Synchronization
import Testing
import WardenCore
import WardenIdentity
import WardenTestSupport

@testable import WardenControlPlane
@testable import WardenGateway
@testable import WardenRisk
@testable import WardenServer

@Suite("Risk engine in the gateway: containment and a saturated queue")
struct RiskContainmentTests {
    /// Waits (bounded) until the engine has taken every event handed over and its alerts are written.
    static func drain(_ engine: RiskEngine, _ env: GatewayEnv) async throws {
        #expect(await env.f.cp.risk.settle(engine))
    }

    /// Runs `body` with a risk engine on the fixture's clock, attached and consuming, with its alert recorder.
    static func withEngine(_ env: GatewayEnv, _ body: (RiskEngine) async throws -> Void) async throws {
        let (engine, consumer) = Self.engine(env)
        defer {
            engine.stop()
            consumer.cancel()
        }
        try await body(engine)
    }

    /// A risk engine on the fixture's clock, attached and consuming, with its alert recorder.
    static func engine(_ env: GatewayEnv) -> (RiskEngine, Task<Void, Never>) {
        let engine = RiskEngine(actions: ControlPlaneRiskActions(cp: env.f.cp), clock: env.f.clock)
        env.f.cp.risk.attach(engine)
        return (engine, Task { await env.f.cp.risk.run(engine, audit: env.f.cp.audit) })
    }

    @Test("probing is contained on the agent's very next request, within 100 ms of the triggering event")
    func containment() async throws {
        try await withGateway { env in
            try await Self.withEngine(env) { engine in
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
                try await Self.drain(engine, env)
                await env.f.cp.audit.flush()
                let alerts = try env.f.cp.audit.entries(after: 0, limit: 10_000).compactMap {
                    try? JSONValue.parse($0.1)
                }
                .filter { $0["action"]?.stringValue == "risk.alert" }
                // At five refusals a medium alert (throttle), at twenty a high one (quarantine and revocation).
                #expect(alerts.first?["details"]?["actions"]?.stringValue == "alert,throttle")
                let alert = try #require(alerts.first { $0["details"]?["severity"]?.stringValue == "high" })
                #expect(alert["reason"]?.stringValue == "denial_burst")
                #expect(alert["details"]?["actions"]?.stringValue == "alert,quarantine,revoke")
                let ms = try #require(alert["details"]?["containment_ms"]?.stringValue.flatMap(Double.init))
                #expect(ms < 100)
                let score = env.f.cp.trust.score(try env.f.cp.agent(a.id))
                #expect(score < 70)
                // The lowered score is in the metrics, by SPIFFE ID, for an authenticated scraper only.
                let metrics = Metrics.render(env.f.cp, agentSeries: true)
                #expect(metrics.contains("warden_trust_lowered_agents 1\n"))
                #expect(metrics.contains("warden_agent_trust{agent=\"\(a.id)\"} \(score)\n"), "\(metrics)")
                #expect(!Metrics.render(env.f.cp).contains(a.id))
            }
        }
    }

    @Test("a stolen token used with another key: the victim's tokens are revoked, the victim is not quarantined")
    func stolenToken() async throws {
        try await withGateway { env in
            try await Self.withEngine(env) { engine in
                let victim = try env.f.agent("support-bot")
                let token = try env.token(victim)
                #expect(try await env.call(victim, .get, "/r/tickets/v1/ok", token: token).status == .ok)
                // The thief has the token, not the key: refused at the door, every time.
                let thief = P256.Signing.PrivateKey()
                for _ in 0..<3 {
                    let r = try await env.call(victim, .get, "/r/tickets/v1/ok", token: token, proofKey: thief)
                    #expect(r.status == .unauthorized)
                }
                // The engine revokes every token the victim held (bounded wait for the consumer).
                var revoked = false
                for _ in 0..<400 {
                    if env.f.cp.risk.cutOffSecond(victim.id) != nil {
                        revoked = true
                        break
                    }
                    try await Task.sleep(for: .milliseconds(5))
                }
                #expect(revoked)
                // The stolen token is now dead even with the right key; the agent itself is not quarantined and gets a
                // new token (issued after the cut-off) that works.
                let old = try await env.call(victim, .get, "/r/tickets/v1/ok", token: token)
                #expect(old.status == .unauthorized)
                #expect(old.json?["reason"]?.stringValue == "token_revoked")
                #expect(env.f.cp.agents.entry(victim.id)?.record.state == .active)
                // The revocation is a consequence, not the victim's behaviour: its client catching up (twenty calls with
                // the old token) neither throttles nor quarantines it.
                for _ in 0..<20 {
                    #expect(try await env.call(victim, .get, "/r/tickets/v1/ok", token: token).status == .unauthorized)
                }
                try await Self.drain(engine, env)
                #expect(!env.f.cp.risk.isThrottled(victim.id, now: Double(env.f.clock.now)))
                #expect(env.f.cp.agents.entry(victim.id)?.record.state == .active)
                // Presentations that prove nothing name nobody: a forged token, and (below) an expired one.
                let other = try env.f.agent("finance-bot")
                let otherToken = try env.token(other)
                let parts = otherToken.split(separator: ".")
                let forged = "\(parts[0]).\(parts[1]).\(String(parts[2].reversed()))"
                #expect(
                    try await env.call(other, .get, "/r/tickets/v1/ok", token: forged, proofKey: thief).status
                        == .unauthorized)
                env.f.clock.advance(2)
                #expect(
                    try await env.call(victim, .get, "/r/tickets/v1/ok", token: try env.token(victim)).status == .ok)
                // One alert for the victim, with the stolen-token playbook; the probing source is seen separately.
                await env.f.cp.audit.flush()
                let alerts = try env.f.cp.audit.entries(after: 0, limit: 10_000).compactMap {
                    try? JSONValue.parse($0.1)
                }
                .filter { $0["action"]?.stringValue == "risk.alert" }
                let alert = try #require(alerts.first { $0["reason"]?.stringValue == "stolen_token" })
                #expect(alert["details"]?["actions"]?.stringValue == "alert,revoke")
                #expect(alerts.filter { $0["reason"]?.stringValue == "stolen_token" }.count == 1)
                #expect(env.f.cp.risk.cutOffSecond(other.id) == nil)
                // Expired: past its lifetime, the other agent's genuine token with the thief's proof names nobody either.
                env.f.clock.advance(3600)
                #expect(
                    try await env.call(other, .get, "/r/tickets/v1/ok", token: otherToken, proofKey: thief).status
                        == .unauthorized)
                try await Self.drain(engine, env)
                #expect(env.f.cp.risk.cutOffSecond(other.id) == nil)
                #expect(alert["details"]?["containment_ms"]?.stringValue.flatMap(Double.init).map { $0 < 100 } == true)
            }
        }
    }

    @Test("refusals by the engine's own throttle are not handed back as the agent's: a throttle does not escalate")
    func throttleDoesNotEscalate() async throws {
        try await withGateway { env in
            try await Self.withEngine(env) { engine in
                let a = try env.f.agent("support-bot")
                let token = try env.token(a)
                env.f.cp.risk.throttled.withLock { $0[a.id] = env.f.clock.wallSeconds + 600 }
                var limited = 0
                for _ in 0..<30
                where try await env.call(a, .get, "/r/tickets/v1/ok", token: token).status == .tooManyRequests {
                    limited += 1
                }
                #expect(limited >= 20)
                try await Self.drain(engine, env)
                // The served calls were seen; the 429s of the engine's throttle were not counted as refusals, so no
                // denial burst (which would quarantine the agent on its own retries).
                let b = try #require(engine.snapshot(agentID: a.id)).baseline
                #expect(b.recentDenials.isEmpty && b.events == Int64(30 - limited))
                #expect(env.f.cp.agents.entry(a.id)?.record.state == .active)
            }
        }
    }

    @Test("the alert stream: keep-alive comments while quiet, then the alert, over HTTP")
    func alertStream() async throws {
        try await withGateway { env in
            env.f.cp.risk.heartbeatMillis.store(50, ordering: .relaxed)
            try await Self.withEngine(env) { engine in
                var request = HTTPClientRequest(
                    url: "http://127.0.0.1:\(try #require(env.client.port))/v1/admin/risk/alerts")
                request.headers.add(name: "Authorization", value: "Bearer \(try adminToken(env.f))")
                let response = try await HTTPClient.shared.execute(request, timeout: .seconds(5))
                #expect(response.status == .ok)
                var text = ""
                var published = false
                // Bounded: at most 200 chunks, and the stream is cancelled when the test ends.
                for try await chunk in response.body.prefix(200) {
                    text += String(buffer: chunk)
                    if !published, text.contains(": keep-alive") {
                        published = true
                        _ = engine.process(
                            RiskEvent(
                                time: Double(env.f.clock.now), agentID: "spiffe://warden.local/agent/x",
                                kind: .tokenMisuse,
                                resource: "/r/x", allowed: false))
                    }
                    if text.contains("event: alert") { break }
                }
                #expect(published)
                // Each alert carries its id (its audit entry's sequence number) for Last-Event-ID.
                #expect(text.contains("\nevent: alert\ndata: {\"id\":"), "\(text)")
                #expect(text.contains("\"agent\":\"spiffe://warden.local/agent/x\""), "\(text)")
                #expect(text.contains("id: "), "\(text)")
            }
        }
    }

    @Test("the webhook: alerts posted to a receiver on loopback; a full queue keeps the newest without waiting")
    func webhook() async throws {
        // Bounded: a sender nobody runs keeps the newest 4 of 10.
        let idle = WebhookSender(url: "http://127.0.0.1:1/", logger: Logger(label: "test"), capacity: 4)
        for i in 0..<10 { idle.send("{\"n\":\(i)}") }
        #expect(idle.dropped.load(ordering: .relaxed) == 6)
        idle.stop()

        let received = Mutex<[String]>([])
        let router = Router()
        router.post("/hook") { request, _ -> HTTPResponse.Status in
            let body = try await request.body.collect(upTo: 1 << 16)
            received.withLock { $0.append(String(buffer: body)) }
            return .noContent
        }
        try await Application(router: router).test(.live) { client in
            let f = try Fixture()
            let sender = WebhookSender(
                url: "http://127.0.0.1:\(try #require(client.port))/hook", logger: Logger(label: "test"))
            let running = Task { await sender.run() }
            defer {
                sender.stop()
                running.cancel()
            }
            let recorder = Task { await f.cp.risk.recordAlerts(f.cp.audit, logger: Logger(label: "test")) }
            defer {
                f.cp.risk.finishAlerts()
                recorder.cancel()
            }
            let actions = ControlPlaneRiskActions(cp: f.cp, notify: { sender.send($0) })
            actions.alert(
                RiskAlert(
                    agentID: "spiffe://warden.local/agent/w",
                    findings: [
                        Finding(detector: "lateral_movement", severity: .high, summary: "reached finance")
                    ], severity: .high, actions: [.alert], trust: 30, eventTime: 1, containmentMillis: nil,
                    resource: "Service::\"billing\""))
            // Bounded wait: the receiver has the body and the sender has its answer.
            for _ in 0..<500
            where received.withLock({ $0.isEmpty }) || sender.delivered.load(ordering: .relaxed) != 1 {
                try await Task.sleep(for: .milliseconds(10))
            }
            let bodies = received.withLock { $0 }
            #expect(bodies.count == 1)
            let alert = try JSONValue.parse(Array((bodies.first ?? "").utf8))
            #expect(alert["agent"]?.stringValue == "spiffe://warden.local/agent/w")
            #expect(alert["findings"]?.arrayValue?.first?["detector"]?.stringValue == "lateral_movement")
            #expect(alert["id"]?.integerValue != nil)  // written to the audit log first
            #expect(sender.delivered.load(ordering: .relaxed) == 1)
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
