import Foundation
import Testing
import WardenCore

@testable import WardenRisk

/// Volume judged over a sliding window: whenever a burst comes, against the agent's mean and its usual peaks.
@Suite("Risk: sliding volume windows (test clock, no sleeps)")
struct VolumeWindowTests {
    /// The evaluation's settings: a one-minute warm-up of 50 events.
    static var shortWarmup: RiskSettings {
        var s = RiskSettings()
        s.warmupSeconds = 60
        s.warmupEvents = 50
        return s
    }

    /// An engine on the test clock with the short warm-up, adjusted by `adjust`, and what it asked for.
    static func engine(_ adjust: (inout RiskSettings) -> Void = { _ in }) -> (RiskEngine, RecordingActions) {
        var s = shortWarmup
        adjust(&s)
        let actions = RecordingActions()
        return (RiskEngine(actions: actions, settings: s, clock: ManualClock(wallSeconds: monday9)), actions)
    }

    /// Irregular normal traffic by `agent` from `start` for `seconds`: log-normal think times (median 2 s), bodies
    /// of log-normal size (median 4 KiB) and now and then a larger one (64–128 KiB, one call in 30). Returns the
    /// end time and the findings it raised.
    static func irregular(
        _ e: RiskEngine, _ agent: String, from start: Double, seconds: Double, rng: inout SplitMix64
    ) -> (end: Double, findings: [Finding]) {
        var t = start
        var found: [Finding] = []
        while t < start + seconds {
            let big = Int.random(in: 0..<30, using: &rng) == 0
            let bytes =
                big ? Int64.random(in: 65_536...131_072, using: &rng) : Int64(rng.logNormal(median: 4096, sigma: 0.8))
            found += e.process(
                RiskEvent(
                    time: t, agentID: agent, roles: ["reports"], kind: .call, resource: #"Service::"reports""#,
                    segment: "reports", allowed: true, bytesOut: bytes))
            t += min(rng.logNormal(median: 2, sigma: 0.9), 60)
        }
        return (t, found)
    }

    @Test("a 150-pull bulk exfiltration after five minutes of irregular history is caught within its first 30 pulls")
    func bulkPullCaught() {
        for seed in UInt64(1)...5 {
            var rng = SplitMix64(state: seed)
            let actions = RecordingActions()
            let e = RiskEngine(actions: actions, settings: Self.shortWarmup, clock: ManualClock(wallSeconds: monday9))
            let (end, normal) = Self.irregular(e, "puller", from: monday9, seconds: 300, rng: &rng)
            #expect(normal.isEmpty, "seed \(seed): normal traffic raised \(normal)")
            // 150 bodies of 256–512 KiB at about 9 a second, under any per-request rate limit.
            var t = end
            var caughtAt: Int?
            for pull in 1...150 {
                let found = e.process(
                    RiskEvent(
                        time: t, agentID: "puller", roles: ["reports"], kind: .call, resource: #"Service::"reports""#,
                        segment: "reports", allowed: true, bytesOut: Int64.random(in: 262_144...524_288, using: &rng)))
                if caughtAt == nil, found.contains(where: { $0.detector == "volume_spike" }) { caughtAt = pull }
                t += 1.0 / 9
            }
            let at = try? #require(caughtAt, "seed \(seed): the pull was not caught")
            #expect((at ?? .max) <= 30, "seed \(seed): caught at pull \(at ?? -1)")
            #expect(actions.snapshot.quarantined == ["puller"])
            // The alert says what was judged: the window, the bytes in it and the limit crossed.
            let evidence = actions.snapshot.alerts.first?.findings.first?.evidence ?? []
            let names = Set(evidence.map(\.name))
            #expect(names.isSuperset(of: ["window_seconds", "bytes_out", "limit_bytes_out", "mean_bytes_out"]))
        }
    }

    @Test("a burst straddling a clock minute is judged whole: each minute's half alone stays under the limit")
    func straddlingBurst() {
        var rng = SplitMix64(state: 7)
        let e = RiskEngine(
            actions: RecordingActions(), settings: Self.shortWarmup, clock: ManualClock(wallSeconds: monday9))
        var (t, _) = Self.irregular(e, "a", from: monday9, seconds: 600, rng: &rng)
        // Start 30 s before the next minute: 12 MiB over 60 s, 6 MiB in each clock minute (the floor is 8 MiB).
        t = (floor(t / 60) + 1) * 60 - 30
        var found: [Finding] = []
        for i in 0..<48 {
            found += e.process(
                RiskEvent(
                    time: t + Double(i) * 1.25, agentID: "a", roles: ["reports"], kind: .call,
                    resource: #"Service::"reports""#, segment: "reports", allowed: true, bytesOut: 262_144))
        }
        #expect(found.map(\.detector) == ["volume_spike"])
    }

    @Test("a regular nightly batch is not a spike once a day with it is known; one report per window")
    func usualPeaksAreNotSpikes() {
        let (e, _) = Self.engine { $0.spikeMinMinutes = 10 }
        var reports: [Int: Int] = [:]
        for day in 0..<6 {
            let dayStart = monday9 + Double(day) * 86_400
            // An hour of light daytime traffic every minute, then at night 240 MiB in 4 minutes.
            for m in 0..<60 {
                _ = e.process(
                    RiskEvent(
                        time: dayStart + Double(m) * 60, agentID: "batch", kind: .call, resource: #"Service::"docs""#,
                        segment: "docs", allowed: true, bytesOut: 2048))
            }
            for i in 0..<240 {
                let found = e.process(
                    RiskEvent(
                        time: dayStart + 12 * 3600 + Double(i), agentID: "batch", kind: .call,
                        resource: #"Service::"docs""#, segment: "docs", allowed: true, bytesOut: 1 << 20))
                reports[day, default: 0] += found.filter { $0.detector == "volume_spike" }.count
            }
        }
        // The first night is unusual (nothing like it known): reported, at most once per window (four minutes of
        // batch: at most four reports, not one per event).
        #expect((1...4).contains(reports[0] ?? 0), "\(reports)")
        // From the second night on, the agent's own peaks say it is normal.
        #expect((1..<6).allSatisfy { reports[$0] == 0 }, "\(reports)")
    }

    @Test("the sliding window: totals of the last window only, exact at slot boundaries, bounded")
    func windowTotals() {
        var w = SlidingWindow(seconds: 60)
        for i in 0..<120 { w.add(at: 1000 + Double(i), bytes: 10) }
        #expect(w.totals(at: 1119).requests == 60 && w.totals(at: 1119).bytes == 600)
        #expect(w.totals(at: 1150).requests == 29)
        #expect(w.totals(at: 1200).requests == 0)
        // A late event whose slot was already reused is outside the window: not counted in the new one.
        w.add(at: 1000, bytes: 99)
        #expect(w.totals(at: 1119).bytes == 600)
    }

    @Test("context.risk.volumeRatio: 0 while volume cannot be judged, then the window against the mean")
    func volumeRatio() {
        var rng = SplitMix64(state: 3)
        let e = RiskEngine(
            actions: RecordingActions(), settings: Self.shortWarmup, clock: ManualClock(wallSeconds: monday9))
        #expect(e.signals(agentID: "r", roles: [], resource: "x", segment: nil, time: monday9).volumeRatio == 0)
        let (t, _) = Self.irregular(e, "r", from: monday9, seconds: 600, rng: &rng)
        let usual = e.signals(agentID: "r", roles: [], resource: "x", segment: nil, time: t).volumeRatio
        #expect(usual > 0.1 && usual < 5, "\(usual)")
        for i in 0..<20 {
            _ = e.process(
                RiskEvent(
                    time: t + Double(i) * 0.5, agentID: "r", roles: ["reports"], kind: .call,
                    resource: #"Service::"reports""#, segment: "reports", allowed: true, bytesOut: 300_000))
        }
        let burst = e.signals(agentID: "r", roles: [], resource: "x", segment: nil, time: t + 10).volumeRatio
        #expect(burst > 10, "\(burst)")
    }
}

@Suite("Risk: thresholds and playbooks per role and per agent")
struct RiskTuningTests {
    @Test("a role's own factor keeps its bursts quiet; an agent's own playbook alerts without quarantine")
    func perRoleAndAgent() {
        var batch = RiskTuning()
        batch.settings.spikeFactor = 1000
        batch.settings.spikeMinBytes = 1_073_741_824
        var watched = RiskTuning()
        watched.playbooks.high = [.alert]
        let tunings = RiskTunings(roles: ["batch": batch], agents: ["watched": watched])
        let actions = RecordingActions()
        let e = RiskEngine(actions: actions, tunings: tunings, clock: ManualClock(wallSeconds: monday9))
        let agents = [
            ("spiffe://example.org/agent/cruncher", ["batch"]), ("spiffe://example.org/agent/watched", ["batch"]),
            ("spiffe://example.org/agent/plain", ["support"]),
        ]
        // Two working days of a call a minute each, then 12 MiB in ten seconds each.
        for (agent, roles) in agents {
            let t = history(e, agent: agent, roles: roles, days: 2, start: monday9)
            for i in 0..<12 {
                _ = e.process(
                    RiskEvent(
                        time: t + Double(i), agentID: agent, roles: roles, kind: .call,
                        resource: #"Service::"tickets""#,
                        segment: "support", allowed: true, bytesOut: 1 << 20))
            }
        }
        let alerted = Set(actions.snapshot.alerts.map(\.agentID))
        // The batch role's factor: no spike. The agent's own tuning is its whole tuning (not the role's): judged,
        // alerted, not contained. The plain agent: the global playbook.
        #expect(!alerted.contains("spiffe://example.org/agent/cruncher"))
        #expect(alerted.contains("spiffe://example.org/agent/watched"))
        #expect(actions.snapshot.quarantined == ["spiffe://example.org/agent/plain"])
    }
}

@Suite("Risk: bytes reported while a call streams")
struct ContinuationTests {
    @Test("interim bytes count toward volume at once, not as requests; only the volume detectors see them")
    func interimBytes() {
        let (e, _) = VolumeWindowTests.engine { $0.spikeMinBytes = 4_194_304 }
        var rng = SplitMix64(state: 11)
        let (t, _) = VolumeWindowTests.irregular(e, "dl", from: monday9, seconds: 600, rng: &rng)
        let before = e.snapshot(agentID: "dl")!.baseline
        // A download to a segment the agent never used, reported every 8 MiB while it streams.
        var found: [Finding] = []
        for i in 0..<3 {
            var part = RiskEvent(
                time: t + Double(i), agentID: "dl", roles: ["reports"], kind: .call, resource: #"Service::"vault""#,
                segment: "vault", allowed: true, bytesOut: 8 << 20)
            part.continuation = true
            found += e.process(part)
        }
        let after = e.snapshot(agentID: "dl")!.baseline
        #expect(after.events == before.events)  // no request counted
        #expect(after.bytesLast24h(now: t + 3) - before.bytesLast24h(now: t + 3) == 24 << 20)
        // The volume spike fires on the interim bytes; lateral movement and new resource wait for the call itself.
        #expect(found.map(\.detector) == ["volume_spike"])
        let end = e.process(
            RiskEvent(
                time: t + 4, agentID: "dl", roles: ["reports"], kind: .call, resource: #"Service::"vault""#,
                segment: "vault", allowed: true, bytesOut: 1 << 20))
        #expect(Set(end.map(\.detector)).isSuperset(of: ["lateral_movement", "new_resource"]))
        #expect(e.snapshot(agentID: "dl")!.baseline.events == before.events + 1)
    }
}
