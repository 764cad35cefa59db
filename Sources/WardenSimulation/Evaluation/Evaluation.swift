import Cedar
import Foundation
import Synchronization
import WardenCore
import WardenRisk

/// `warden simulate --workload irregular` (`docs/risk.md`): the risk engine judged on irregular traffic with known
/// attacks in it. Weeks of normal work by six agent families (log-normal think times, shifts that change, month-end
/// closes, nightly batches, roles spanning several segments, tools adopted over time, a customer pool that grows, an
/// agent that joins halfway) and eleven attacks — six from the independent evaluation, five shapes added afterwards
/// that the detectors were not tuned to — are fed to the real engine (its detectors, tunings and playbooks) as the
/// gateway would feed them, on a simulated clock, with the gateway's enforcement modelled: a quarantined agent is
/// refused, a revoked token stops a thief (not an agent that holds its own key and renews), a throttle allows one
/// request a second, and `hold-new-segments` (the documented policy on `context.risk`) refuses a warm agent's first
/// call to a segment new to it, from the engine's own signals. Every finding is scored against the labels: precision
/// and recall per detector, false findings per 10,000 normal requests, and the requests each attack had served
/// before it was contained.
///
/// What it cannot show: HTTP, tokens and Cedar are not exercised (the live tests and `warden simulate` do that);
/// the traffic is synthetic, shaped after real workloads but not recorded from them; and the attacks are the ones
/// written here.
public enum Evaluation {
    public struct Options: Sendable {
        public var days = 35
        public var seed: UInt64 = 1
        public var tunings = RiskTunings()
        /// Apply the documented `hold-new-segments` policy (on `context.risk.newSegment`).
        public var holdNewSegments = true

        public init() {}
    }

    public struct DetectorScore: Sendable {
        public let name: String
        public let truePositives: Int
        public let falsePositives: Int
        /// Attacks meant for it, and of those the ones it saw.
        public let attacksExpected: Int
        public let attacksCaught: Int

        public var precision: Double? {
            truePositives + falsePositives == 0 ? nil : Double(truePositives) / Double(truePositives + falsePositives)
        }
        public var recall: Double? { attacksExpected == 0 ? nil : Double(attacksCaught) / Double(attacksExpected) }
    }

    public struct AttackScore: Sendable {
        public let name: String
        public let origin: String
        public let expected: [String]
        public let detectedBy: [String]
        public let requests: Int
        public let served: Int
        /// Requests served before the attacker was contained (quarantine, or revocation for a thief's token); nil
        /// when it never was.
        public let servedBeforeContainment: Int?
        public let containment: String?
        public let note: String?

        public var detected: Bool { !detectedBy.isEmpty }
    }

    public struct Report: Sendable {
        public let days: Int
        public let seed: UInt64
        public let normalRequests: Int
        /// Normal requests of agents no attack used, refused by a containment or throttle of the engine; normal
        /// requests refused by `hold-new-segments`.
        public let normalRefusedByEngine: Int
        public let normalHeld: Int
        /// Findings on normal traffic, those of medium or high severity, and normal agents contained.
        public let falseFindings: Int
        public let falseAlerts: Int
        public let falseContainments: [String]
        public let detectors: [DetectorScore]
        public let attacks: [AttackScore]

        public var falseFindingsPer10k: Double {
            normalRequests == 0 ? 0 : Double(falseFindings) * 10_000 / Double(normalRequests)
        }
        public var falseAlertsPer10k: Double {
            normalRequests == 0 ? 0 : Double(falseAlerts) * 10_000 / Double(normalRequests)
        }
    }

    /// Monday 2026-10-12 00:00 UTC: a run of 35 days crosses the end of October.
    static let start = 1_760_227_200.0

    public static func run(_ options: Options) -> Report {
        var rng = SplitMix64(state: options.seed)
        let end = start + Double(max(options.days, 10)) * 86_400
        var sources: [any AttemptSource] = NormalTraffic.agents(start: start, end: end, rng: &rng)
        let scenarios = Attacks.all(end: end, rng: &rng)
        for (i, s) in scenarios.enumerated() {
            sources.append(
                Scripted(
                    attempts: s.attempts.map {
                        var a = $0; a.attack = i; return a
                    }))
        }
        let world = World()
        let engine = RiskEngine(actions: world, tunings: options.tunings, clock: ManualClock(wallSeconds: start))
        var pending: [Attempt?] = sources.indices.map { sources[$0].next(&rng) }
        var tally = Tally(scenarios: scenarios)
        while true {
            // The earliest next attempt of all sources.
            var best = -1
            for i in pending.indices {
                guard let a = pending[i] else { continue }
                if best < 0 || a.time < pending[best]!.time { best = i }
            }
            guard best >= 0, let attempt = pending[best] else { break }
            pending[best] = sources[best].next(&rng)
            judge(attempt, engine: engine, world: world, options: options, scenarios: scenarios, tally: &tally)
        }
        return tally.report(scenarios: scenarios, days: max(options.days, 10), seed: options.seed, world: world)
    }

    /// What the gateway would do with `a`, what the engine is told and what it concludes; scored.
    static func judge(
        _ a: Attempt, engine: RiskEngine, world: World, options: Options, scenarios: [Scenario], tally: inout Tally
    ) {
        var findings: [Finding] = []
        if a.forged {
            findings += engine.process(
                RiskEvent(
                    time: a.time, agentID: "source:" + a.source, kind: .authFailure, resource: a.resource,
                    allowed: false, reason: "invalid_client"))
            tally.record(a, served: false, findings: findings, world: world, scenarios: scenarios)
            return
        }
        if a.stolenToken {
            // Refused: the proof's key is not the token's. The token's agent hears of it, the source is charged.
            let revoked = world.isRevoked(a.agentID)
            if !revoked {
                findings += engine.process(
                    RiskEvent(
                        time: a.time, agentID: a.agentID, roles: a.roles, kind: .tokenMisuse, resource: a.resource,
                        allowed: false, reason: "dpop_key_mismatch"))
            }
            findings += engine.process(
                RiskEvent(
                    time: a.time, agentID: "source:" + a.source, kind: .authFailure, resource: a.resource,
                    allowed: false, reason: revoked ? "token_revoked" : "dpop_key_mismatch"))
            tally.record(a, served: false, findings: findings, world: world, scenarios: scenarios)
            return
        }
        var refusal: String?
        if world.isQuarantined(a.agentID) {
            refusal = "quarantined"
        } else if !a.permitted {
            refusal = "policy_denied"
        } else if world.throttled(a.agentID, at: a.time) {
            refusal = "rate_limited"
        } else if options.holdNewSegments, let segment = a.segment {
            let s = engine.signals(
                agentID: a.agentID, roles: a.roles, resource: a.resource, segment: segment, time: a.time)
            if s.ready && s.newSegment {
                refusal = "policy_denied"
                if a.attack == nil { tally.normalHeld += 1 }
            }
        }
        if refusal != nil, a.attack == nil, refusal != "policy_denied", !tally.attacked.contains(a.agentID) {
            tally.normalRefused += 1
        }
        // As the gateway: a refusal that follows from the engine's own response (a quarantine, its throttle) is not
        // handed back to it as the agent's behaviour.
        if refusal == "quarantined" || refusal == "rate_limited" {
            tally.record(a, served: false, findings: [], world: world, scenarios: scenarios)
            return
        }
        findings += engine.process(
            RiskEvent(
                time: a.time, agentID: a.agentID, roles: a.roles, kind: a.kind, resource: a.resource,
                segment: a.segment,
                allowed: refusal == nil, reason: refusal, bytesOut: refusal == nil ? a.bytesOut : 0, subject: a.subject)
        )
        tally.record(a, served: refusal == nil, findings: findings, world: world, scenarios: scenarios)
    }

    /// The scores as they accumulate.
    struct Tally {
        var normalRequests = 0
        var normalRefused = 0
        var normalHeld = 0
        var falseFindings = 0
        var falseAlerts = 0
        var byDetector: [String: (tp: Int, fp: Int)] = [:]
        var caughtBy: [Set<String>]
        var requests: [Int]
        var served: [Int]
        var servedBeforeContainment: [Int?]

        /// While an attack uses an agent's identity (from its first request to ten minutes after its last), a finding
        /// on that agent's own requests is the attack's too: the detector judged the agent, attack included (the
        /// request that crosses a threshold may be a normal one).
        var windows: [(agent: String, from: Double, to: Double)]
        /// The agents whose identity an attack uses (their own traffic after a containment is refused, rightly).
        var attacked: Set<String>

        init(scenarios: [Scenario]) {
            caughtBy = Array(repeating: [], count: scenarios.count)
            requests = Array(repeating: 0, count: scenarios.count)
            served = Array(repeating: 0, count: scenarios.count)
            servedBeforeContainment = Array(repeating: nil, count: scenarios.count)
            attacked = Set(scenarios.compactMap(\.contains))
            windows = scenarios.map { s in
                (s.contains ?? "", s.attempts.first?.time ?? 0, (s.attempts.last?.time ?? 0) + 600)
            }
        }

        mutating func record(_ a: Attempt, served ok: Bool, findings: [Finding], world: World, scenarios: [Scenario]) {
            guard let i = a.attack else {
                normalRequests += 1
                if let j = windows.firstIndex(where: { $0.agent == a.agentID && a.time >= $0.from && a.time <= $0.to })
                {
                    for f in findings {
                        byDetector[f.detector, default: (0, 0)].tp += 1
                        caughtBy[j].insert(f.detector)
                    }
                    return
                }
                falseFindings += findings.count
                falseAlerts += findings.filter { $0.severity >= .medium }.count
                for f in findings { byDetector[f.detector, default: (0, 0)].fp += 1 }
                return
            }
            requests[i] += 1
            if ok { served[i] += 1 }
            for f in findings {
                byDetector[f.detector, default: (0, 0)].tp += 1
                caughtBy[i].insert(f.detector)
            }
            // Contained once the identity the attack uses is stopped.
            if servedBeforeContainment[i] == nil, let who = scenarios[i].contains,
                world.contained(who, stolen: a.stolenToken)
            {
                servedBeforeContainment[i] = served[i]
            }
        }

        func report(scenarios: [Scenario], days: Int, seed: UInt64, world: World) -> Report {
            let names = defaultDetectors.map(\.name)
            let detectors = names.map { name in
                let expecting = scenarios.indices.filter { scenarios[$0].expected.contains(name) }
                return DetectorScore(
                    name: name, truePositives: byDetector[name]?.tp ?? 0, falsePositives: byDetector[name]?.fp ?? 0,
                    attacksExpected: expecting.count,
                    attacksCaught: expecting.filter { caughtBy[$0].contains(name) }.count)
            }
            let attackAgents = Set(scenarios.compactMap(\.contains))
            let attacks = scenarios.indices.map { i in
                let s = scenarios[i]
                return AttackScore(
                    name: s.name, origin: s.origin.rawValue, expected: s.expected, detectedBy: caughtBy[i].sorted(),
                    requests: requests[i], served: served[i], servedBeforeContainment: servedBeforeContainment[i],
                    containment: s.contains.flatMap { world.containment($0) }, note: s.note)
            }
            return Report(
                days: days, seed: seed, normalRequests: normalRequests, normalRefusedByEngine: normalRefused,
                normalHeld: normalHeld, falseFindings: falseFindings, falseAlerts: falseAlerts,
                falseContainments: world.containedAgents().filter { !attackAgents.contains($0) }.sorted(),
                detectors: detectors, attacks: attacks)
        }
    }
}

/// The gateway's side of the engine's responses, as the evaluation models them.
final class World: RiskActions {
    struct State {
        var quarantined: Set<String> = []
        var revoked: Set<String> = []
        var throttled: [String: (until: Double, tokens: Double, at: Double)] = [:]
        var approvals: Set<String> = []
    }

    let state = Mutex(State())

    func setTrust(agentID: String, score: Int?) {}
    func baselineTrust(agentID: String) -> Int { 90 }
    func alert(_ alert: RiskAlert) {}

    func throttle(agentID: String, until: Double) {
        state.withLock { $0.throttled[agentID] = (until, 5, 0) }
    }

    func requireApproval(agentID: String, until: Double) { state.withLock { _ = $0.approvals.insert(agentID) } }

    func quarantine(agentID: String, reason: String) throws {
        guard agentID.hasPrefix("spiffe://") else { throw WardenError(.notFound, "nothing to contain") }
        state.withLock { _ = $0.quarantined.insert(agentID) }
    }

    func revokeTokens(agentID: String, reason: String) throws {
        guard agentID.hasPrefix("spiffe://") else { throw WardenError(.notFound, "nothing to contain") }
        // Revoked as of the engine's latest event; the evaluation's clock is the events' times.
        state.withLock { _ = $0.revoked.insert(agentID) }
    }

    func isQuarantined(_ agent: String) -> Bool { state.withLock { $0.quarantined.contains(agent) } }

    /// Whether the agent's tokens were revoked: a thief's copy stops working (the agent itself renews with its key).
    func isRevoked(_ agent: String) -> Bool { state.withLock { $0.revoked.contains(agent) } }

    /// One request a second, bursts of five, while throttled.
    func throttled(_ agent: String, at t: Double) -> Bool {
        state.withLock { s in
            guard var b = s.throttled[agent] else { return false }
            if t >= b.until {
                s.throttled[agent] = nil
                return false
            }
            b.tokens = min(5, b.tokens + max(0, t - b.at))
            b.at = t
            let refused = b.tokens < 1
            if !refused { b.tokens -= 1 }
            s.throttled[agent] = b
            return refused
        }
    }

    func contained(_ agent: String, stolen: Bool) -> Bool {
        state.withLock { s in s.quarantined.contains(agent) || (stolen && s.revoked.contains(agent)) }
    }

    func containment(_ agent: String) -> String? {
        state.withLock { s in
            var parts: [String] = []
            if s.quarantined.contains(agent) { parts.append("quarantine") }
            if s.revoked.contains(agent) { parts.append("revoke") }
            if s.throttled[agent] != nil { parts.append("throttle") }
            return parts.isEmpty ? nil : parts.joined(separator: ", ")
        }
    }

    func containedAgents() -> [String] { state.withLock { Array($0.quarantined) } }
}
