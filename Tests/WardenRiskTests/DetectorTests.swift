import Foundation
import Synchronization
import Testing
import WardenCore

@testable import WardenRisk

/// Records what the engine asked for.
final class RecordingActions: RiskActions {
    struct Log {
        var trust: [String: Int?] = [:]
        var alerts: [RiskAlert] = []
        var throttled: [String] = []
        var approvals: [String] = []
        var quarantined: [String] = []
        var revoked: [String] = []
    }

    let log = Mutex(Log())
    func setTrust(agentID: String, score: Int?) { log.withLock { $0.trust[agentID] = score } }
    func baselineTrust(agentID: String) -> Int { 90 }
    func alert(_ alert: RiskAlert) { log.withLock { $0.alerts.append(alert) } }
    func throttle(agentID: String, until: Double) { log.withLock { $0.throttled.append(agentID) } }
    func requireApproval(agentID: String, until: Double) { log.withLock { $0.approvals.append(agentID) } }
    func quarantine(agentID: String, reason: String) throws { log.withLock { $0.quarantined.append(agentID) } }
    func revokeTokens(agentID: String, reason: String) throws { log.withLock { $0.revoked.append(agentID) } }
    var snapshot: Log { log.withLock { $0 } }
}

/// 2025-11-23 09:00 UTC, a Sunday (the tests' reference time; the engine's weeks start on Monday).
let monday9 = 1_763_888_400.0

/// Drives an engine with a normal history: `days` days of an agent calling `resources` every `every` seconds during
/// working hours (09:00–17:00 UTC, Monday to Friday), `bytes` out per call.
func history(
    _ engine: RiskEngine, agent: String = "a1", roles: [String] = ["support"], days: Int,
    resources: [String] = [#"Service::"tickets""#], segment: String = "support", every: Double = 60,
    bytes: Int64 = 1000, subject: String? = nil, start: Double = monday9 - 7 * 86_400
) -> Double {
    var t = start
    for day in 0..<days {
        let dayStart = start + Double(day) * 86_400
        let weekday = Baseline.hourOfWeek(dayStart) / 24
        guard weekday < 5 else { continue }
        t = dayStart
        var i = 0
        while t < dayStart + 8 * 3600 {
            let e = RiskEvent(
                time: t, agentID: agent, roles: roles, kind: .call, resource: resources[i % resources.count],
                segment: segment, allowed: true, bytesOut: bytes, subject: subject)
            let found = engine.process(e)
            #expect(found.isEmpty, "normal history raised \(found) at \(t)")
            t += every
            i += 1
        }
    }
    return t
}

/// An allowed call by `agent` (in `roles`) to `resource` (the `Service` named after the segment by default) in
/// `segment` at `time`; what the engine found.
func call(
    _ engine: RiskEngine, _ agent: String, roles: [String] = [], segment: String, resource: String? = nil,
    subject: String? = nil, at time: Double
) -> [Finding] {
    engine.process(
        RiskEvent(
            time: time, agentID: agent, roles: roles, kind: .call, resource: resource ?? "Service::\"\(segment)\"",
            segment: segment, allowed: true, subject: subject))
}

@Suite("Risk detectors (test clock, no sleeps)")
struct DetectorTests {
    func engine(_ actions: RecordingActions = RecordingActions(), playbooks: Playbooks = Playbooks()) -> RiskEngine {
        RiskEngine(actions: actions, playbooks: playbooks, clock: ManualClock(wallSeconds: monday9 + 7 * 86_400))
    }

    @Test("two normal weeks raise nothing")
    func normalWeeks() {
        let a = RecordingActions()
        let e = engine(a)
        _ = history(e, days: 14, resources: (0..<5).map { #"Service::"r\#($0)""# })
        #expect(a.snapshot.alerts.isEmpty)
    }

    @Test("the baseline stays bounded whatever the traffic")
    func bounded() throws {
        let e = engine()
        for i in 0..<5000 {
            _ = e.process(
                RiskEvent(
                    time: monday9 + Double(i) * 400, agentID: "a1", kind: .call, resource: #"Service::"r\#(i)""#,
                    segment: "s\(i)", allowed: i % 3 != 0, bytesOut: 10, subject: "u\(i)"))
        }
        let b = try #require(e.snapshot(agentID: "a1")).baseline
        #expect(b.resources.members.count == Baseline.maxResources)
        #expect(b.segments.members.count == Baseline.maxSegments)
        #expect(b.subjects.members.count == Baseline.maxSubjects)
        #expect(b.recentDenials.count <= 64 && b.recentSegments.count <= 16 && b.dailyBytes.count <= 35)
    }

    @Test("at most maxAgents are tracked: a scan from many sources evicts the least recently seen in batches")
    func agentTableBounded() {
        let e = RiskEngine(actions: RecordingActions(), maxAgents: 200, clock: ManualClock(wallSeconds: monday9))
        for i in 0..<1000 {
            _ = e.process(
                RiskEvent(
                    time: monday9 + Double(i), agentID: "source:10.0.\(i / 256).\(i % 256)", kind: .authFailure,
                    resource: "route:x", allowed: false))
        }
        #expect(e.trackedAgents <= 200)
        #expect(e.snapshot(agentID: "source:10.0.3.231") != nil)  // the last one
        #expect(e.snapshot(agentID: "source:10.0.0.0") == nil)  // long gone
    }

    @Test("volume spike: 20x the usual minute")
    func volumeSpike() {
        let a = RecordingActions()
        let e = engine(a)
        var t = history(e, days: 3)
        var found: [Finding] = []
        for _ in 0..<200 {
            found += e.process(
                RiskEvent(
                    time: t, agentID: "a1", roles: ["support"], kind: .call, resource: #"Service::"tickets""#,
                    segment: "support", allowed: true, bytesOut: 1000))
            t += 0.1
        }
        #expect(found.map(\.detector) == ["volume_spike"])
        #expect(a.snapshot.quarantined == ["a1"] && a.snapshot.revoked == ["a1"])
        #expect(a.snapshot.alerts.first?.containmentMillis != nil)
    }

    @Test("new resource: low; a new segment: lateral movement, high; unknown before warm-up: nothing")
    func newResourceAndSegment() {
        let e = engine()
        let t = history(e, days: 2)
        let tool = e.process(
            RiskEvent(
                time: t, agentID: "a1", roles: ["support"], kind: .tool, resource: #"Tool::"docs/read""#,
                allowed: true))
        #expect(tool.map(\.detector) == ["new_resource"] && tool.first?.severity == .low)
        let billing = e.process(
            RiskEvent(
                time: t + 1, agentID: "a1", roles: ["support"], kind: .call, resource: #"Service::"billing""#,
                segment: "finance", allowed: false, reason: "insufficient_scope"))
        #expect(billing.map(\.detector) == ["lateral_movement"] && billing.first?.severity == .high)
        // A brand-new agent of another role, with no reference yet: nothing.
        let fresh = e.process(
            RiskEvent(
                time: t, agentID: "b1", roles: ["fresh"], kind: .call, resource: #"Service::"x""#,
                segment: "x", allowed: true))
        #expect(fresh.isEmpty)
    }

    @Test("a new agent is compared with its role's baseline")
    func roleBaseline() {
        let e = engine()
        let t = history(e, days: 2)
        let known = e.process(
            RiskEvent(
                time: t, agentID: "a2", roles: ["support"], kind: .call, resource: #"Service::"tickets""#,
                segment: "support", allowed: true))
        #expect(known.isEmpty)
        let unknown = call(
            e, "a2", roles: ["support"], segment: "finance", resource: #"Service::"payments""#, at: t + 1)
        #expect(unknown.map(\.detector).contains("lateral_movement"))
    }

    @Test("denial burst: medium at 5 refusals a minute, high at 20; each threshold once")
    func denialBurst() {
        let e = engine()
        var found: [Finding] = []
        for i in 0..<25 {
            found += e.process(
                RiskEvent(
                    time: monday9 + Double(i), agentID: "p1", kind: .authFailure, resource: "token",
                    allowed: false, reason: "invalid_dpop_proof"))
        }
        #expect(found.map(\.severity) == [.medium, .high])
    }

    @Test("a chain across three segments within seconds")
    func chain() {
        let e = engine()
        var found: [Finding] = []
        for (i, s) in ["documents", "finance", "payments"].enumerated() {
            found += e.process(
                RiskEvent(
                    time: monday9 + Double(i), agentID: "d1", kind: .call, resource: "Agent::\"x\(i)\"",
                    segment: s, allowed: true))
        }
        #expect(found.map(\.detector) == ["lateral_movement"])
    }

    @Test("a role whose normal work spans three segments is never flagged for moving between them quickly")
    func threeSegmentRole() {
        let e = engine()
        let segments = ["tickets", "billing", "reports"]
        // Two working days of the role's first agent, a call every 20 s across the three segments.
        var t = monday9 - 7 * 86_400
        for i in 0..<2_880 {
            let s = segments[i % 3]
            _ = call(e, "ops-1", roles: ["ops"], segment: s, at: t)
            t += 20
        }
        t = monday9
        // Its normal traffic, then a new agent of the role, both hopping across the three segments within seconds.
        var found: [Finding] = []
        for agent in ["ops-1", "ops-2"] {
            for i in 0..<30 {
                let s = segments[i % 3]
                found += call(e, agent, roles: ["ops"], segment: s, at: t)
                t += 1
            }
        }
        #expect(found.isEmpty, "\(found)")
        // A segment new to the role is still lateral movement, at once.
        let outside = call(e, "ops-2", roles: ["ops"], segment: "payroll", at: t)
        #expect(outside.map(\.detector).contains("lateral_movement"))
    }

    @Test("a chain counts only segments new to the agent: known ones in between do not complete it")
    func chainCountsOnlyNewSegments() {
        let e = engine()
        var found: [Finding] = []
        // A new agent (no role history) learns two segments, then, minutes later, hops between them and one new
        // segment within seconds: one new segment is no chain.
        for (i, s) in ["documents", "finance"].enumerated() {
            found += call(e, "d2", segment: s, at: monday9 + Double(i) * 30)
        }
        for (i, s) in ["documents", "finance", "payments", "documents"].enumerated() {
            found += call(e, "d2", segment: s, at: monday9 + 300 + Double(i))
        }
        #expect(found.isEmpty, "\(found)")
        // Two more new segments within the window complete a chain of three new ones.
        for (i, s) in ["hr", "legal"].enumerated() {
            found += call(e, "d2", segment: s, at: monday9 + 305 + Double(i))
        }
        #expect(found.map(\.detector) == ["lateral_movement"])
    }

    @Test("readiness: each detector says whether it can judge the agent yet, and by which documented setting not")
    func readiness() {
        let e = engine()
        func why(_ agent: String, roles: [String] = ["support"], at t: Double) -> [String: String?] {
            Dictionary(uniqueKeysWithValues: e.readiness(agentID: agent, roles: roles, time: t).map { ($0.0, $0.1) })
        }
        // Unknown: the history detectors wait, with the warm-up in the settings' names; the others judge now.
        let fresh = why("a1", at: monday9)
        #expect(fresh["volume_spike"]??.contains("risk.warmup_events") == true)
        #expect(fresh["new_resource"]??.contains("0 of 200 events") == true)
        #expect(fresh["lateral_movement"]??.contains("the chain rule judges now") == true)
        #expect(fresh["slow_exfiltration"]??.contains("0 of 3 whole days") == true)
        #expect(fresh["off_hours"] != nil && fresh["off_hours"]! != nil)
        for d in ["denial_burst", "stolen_token", "attestation_mismatch"] { #expect(fresh[d] == .some(nil), "\(d)") }
        // Two working days of history (every minute, 8 h a day): warm, volume ready; not yet three days of bytes.
        let t = history(e, days: 2)
        let warm = why("a1", at: t)
        #expect(warm["volume_spike"] == .some(nil))
        #expect(warm["new_resource"] == .some(nil) && warm["lateral_movement"] == .some(nil))
        #expect(warm["slow_exfiltration"]??.contains("of 3 whole days") == true)
        // A new agent of the warm role is judged by the role at once, except where only its own history counts.
        let newcomer = why("a2", at: t)
        #expect(newcomer["new_resource"] == .some(nil))
        #expect(newcomer["volume_spike"]??.contains("warming up") == true)
    }

    @Test("slow exfiltration: a day's bytes 3x the usual, spread evenly under any rate limit")
    func slowExfiltration() {
        let e = engine()
        // 5 working days of 480 calls x 100 KB = 48 MB a day.
        var t = history(e, days: 7, bytes: 100_000)
        t = max(t, monday9 + 86_400)
        var found: [Finding] = []
        // The next day: the same call rate but 400 KB per call (no minute looks unusual).
        for _ in 0..<480 {
            found += e.process(
                RiskEvent(
                    time: t, agentID: "a1", roles: ["support"], kind: .call, resource: #"Service::"tickets""#,
                    segment: "support", allowed: true, bytesOut: 400_000))
            t += 60
        }
        #expect(found.map(\.detector) == ["slow_exfiltration"])
    }

    @Test("off hours: an hour of the week never seen, after a week of history")
    func offHours() {
        let e = engine()
        let t = history(e, days: 14)
        // Sunday 03:00 UTC.
        let sunday3 = monday9 + 6 * 86_400 + 18 * 3600 + 7 * 86_400 * Double(Int((t - monday9) / (7 * 86_400)))
        let found = e.process(
            RiskEvent(
                time: sunday3, agentID: "a1", roles: ["support"], kind: .call, resource: #"Service::"tickets""#,
                segment: "support", allowed: true))
        #expect(found.map(\.detector) == ["off_hours"])
    }

    @Test("off hours: a shift another member of the role works, or the hour next to one's own, is not off-hours")
    func offHoursShiftChange() {
        let e = engine()
        // Two weeks: a1 works 09-17, a2 (same role) 17-01 (its history is a1's shifted by eight hours).
        _ = history(e, agent: "a2", days: 14, start: monday9 - 7 * 86_400 + 8 * 3600)
        let t = history(e, days: 14)
        // The first Monday (by the engine's week) after the history, at midnight.
        var monday = (floor(t / 86_400) + 1) * 86_400
        while Baseline.hourOfWeek(monday) / 24 != 0 { monday += 86_400 }
        // a1 takes the late shift on Monday: 18:00 (a2's hours), then 17:00 (next to its own): nothing.
        for hour in [18.0, 17.0] {
            #expect(
                call(e, "a1", roles: ["support"], segment: "support", resource: Self.tickets, at: monday + hour * 3600)
                    .isEmpty, "\(hour)")
        }
        // 04:00 on Tuesday: nobody in the role ever works then.
        let found = call(
            e, "a1", roles: ["support"], segment: "support", resource: Self.tickets, at: monday + 28 * 3600)
        #expect(found.map(\.detector) == ["off_hours"])
    }

    static let tickets = #"Service::"tickets""#

    @Test("impossible delegation: one new user is growth, a spree of them in ten minutes is impersonation")
    func delegation() {
        let e = engine()
        var t = history(e, days: 2, subject: "alice@example.com")
        // A new customer now and then: not a finding.
        for i in 0..<5 {
            #expect(
                call(
                    e, "a1", roles: ["support"], segment: "support", resource: Self.tickets,
                    subject: "new-\(i)@example.com", at: t
                ).isEmpty)
            t += 3600
        }
        // Ten never-served users within ten minutes: medium, once.
        var found: [Finding] = []
        for i in 0..<15 {
            found += call(
                e, "a1", roles: ["support"], segment: "support", resource: Self.tickets,
                subject: "vip-\(i)@example.com", at: t)
            t += 30
        }
        #expect(found.map(\.detector) == ["impossible_delegation"])
        #expect(found.first?.evidence.contains(Evidence("new_users", 10)) == true)
        // A user its role served (another agent of the role) is not new to it.
        #expect(
            call(
                e, "a2", roles: ["support"], segment: "support", resource: Self.tickets, subject: "vip-3@example.com",
                at: t
            ).isEmpty)
    }

    @Test("attestation mismatch at enrollment: high at once")
    func attestation() {
        let a = RecordingActions()
        let found = engine(a).process(
            RiskEvent(time: monday9, agentID: "m1", kind: .attestationFailure, resource: "enroll", allowed: false))
        #expect(found.map(\.severity) == [.high])
        #expect(a.snapshot.quarantined == ["m1"])
    }

    @Test("a stolen token: high once a minute, revokes the tokens without quarantine, teaches nothing, no probing")
    func stolenToken() {
        let a = RecordingActions()
        let e = engine(a)
        let t = history(e, agent: "v1", days: 3)
        let before = e.snapshot(agentID: "v1")?.baseline
        var found: [[String]] = []
        // 60 presentations in 30 s by the thief (more than the denial-burst and volume thresholds).
        for i in 0..<60 {
            found.append(
                e.process(
                    RiskEvent(
                        time: t + Double(i) / 2, agentID: "v1", roles: ["support"], kind: .tokenMisuse,
                        resource: "/r/tickets/x", allowed: false, reason: "invalid_dpop_proof")
                ).map(\.detector))
        }
        #expect(found.first == ["stolen_token"])
        #expect(found.dropFirst().allSatisfy { $0.isEmpty }, "\(found)")
        let s = a.snapshot
        #expect(s.revoked == ["v1"])
        #expect(s.quarantined.isEmpty)
        #expect(s.alerts.map(\.actions) == [[.alert, .revoke]])
        #expect(s.trust["v1"] == .some(75))
        // Not the agent's behaviour: its baseline is unchanged but for the time of the report.
        var after = e.snapshot(agentID: "v1")?.baseline
        #expect(after?.lastTokenMisuse == t)
        after?.lastTokenMisuse = nil
        #expect(after == before)
        // A steady stream (one presentation every 20 s) is reported once a minute, not silenced.
        var reports: [Double] = []
        for i in 2...9 {
            let time = t + Double(i) * 20
            if !e.process(
                RiskEvent(
                    time: time, agentID: "v1", roles: ["support"], kind: .tokenMisuse, resource: "/r/tickets/x",
                    allowed: false)
            ).isEmpty {
                reports.append(time - t)
            }
        }
        #expect(reports == [60, 120, 180])
        // The agent's own refusals still count as usual.
        var own: [String] = []
        for i in 0..<5 {
            own += e.process(
                RiskEvent(
                    time: t + 200 + Double(i), agentID: "v1", roles: ["support"], kind: .call,
                    resource: #"Service::"tickets""#, segment: "support", allowed: false)
            ).map(\.detector)
        }
        #expect(own == ["denial_burst"])
    }

    @Test("playbooks: per-detector lists replace the severity's; the union, in a fixed order")
    func playbookUnion() {
        var p = Playbooks()
        p.byDetector["new_resource"] = [.throttle]
        let findings = [
            Finding(detector: "new_resource", severity: .low, summary: ""),
            Finding(detector: "lateral_movement", severity: .high, summary: ""),
        ]
        #expect(p.actions(for: findings) == [.alert, .throttle, .quarantine, .revoke])
        #expect(p.actions(for: [findings[0]]) == [.throttle])
        #expect(p.actions(for: [Finding(detector: "stolen_token", severity: .high, summary: "")]) == [.alert, .revoke])
    }

    @Test("trust drops with findings and recovers over clean time")
    func trustRecovery() {
        let a = RecordingActions()
        let e = engine(
            a,
            playbooks: {
                var p = Playbooks(); p.high = [.alert]; return p
            }())
        _ = e.process(RiskEvent(time: monday9, agentID: "t1", kind: .attestationFailure, resource: "x", allowed: false))
        #expect(a.snapshot.trust["t1"] == .some(50))
        // Four clean hours later: +20.
        _ = e.process(
            RiskEvent(time: monday9 + 4 * 3600, agentID: "t1", kind: .call, resource: "Service::\"s\"", allowed: true))
        #expect(a.snapshot.trust["t1"] == .some(70))
        // Eight more: back to the baseline (nil).
        _ = e.process(
            RiskEvent(time: monday9 + 12 * 3600, agentID: "t1", kind: .call, resource: "Service::\"s\"", allowed: true))
        #expect(a.snapshot.trust["t1"] == .some(nil))
    }

    @Test("baselines survive a restart: saved, restored, and the detectors see the same history")
    func persistence() throws {
        let first = engine()
        let t = history(first, days: 2)
        let saved = first.takeChanges()
        #expect(saved.contains { $0.key == "a1" && !$0.isRole } && saved.contains { $0.key == "support" && $0.isRole })
        #expect(first.takeChanges().isEmpty)
        // A failed store write puts them back for the next save.
        first.requeue(saved)
        #expect(first.takeChanges().count == saved.count)
        let second = engine()
        #expect(second.restore(saved) == saved.count)
        #expect(second.snapshot(agentID: "a1")?.baseline == first.snapshot(agentID: "a1")?.baseline)
        let found = second.process(
            RiskEvent(
                time: t, agentID: "a1", roles: ["support"], kind: .call, resource: #"Service::"billing""#,
                segment: "finance", allowed: false))
        #expect(found.map(\.detector) == ["lateral_movement"])
        // Garbage is skipped, not trusted.
        #expect(second.restore([RiskEngine.Saved(key: "x", isRole: false, json: Array("nope".utf8))]) == 0)
    }

    @Test("a full queue drops and counts, never blocks")
    func boundedQueue() {
        let e = RiskEngine(actions: RecordingActions(), queueCapacity: 10)
        var accepted = 0
        let start = ContinuousClock.now
        for i in 0..<10_000 {
            if e.submit(RiskEvent(time: monday9 + Double(i), agentID: "q", kind: .call, resource: "r", allowed: true)) {
                accepted += 1
            }
        }
        #expect(accepted == 10)
        #expect(e.dropped.load(ordering: .relaxed) == 9_990)
        #expect(e.takeOverflow() && !e.takeOverflow())
        #expect(ContinuousClock.now - start < .seconds(2))
    }
}
