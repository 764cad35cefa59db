import Foundation
import WardenCore
import WardenRisk

/// One request of the evaluation's traffic, as the gateway would see it before deciding: who, what, when, how many
/// bytes the upstream would send, whether the policy set allows it, and which attack (if any) it belongs to.
struct Attempt {
    var time: Double
    var agentID: String
    var roles: [String]
    var kind: RiskEvent.Kind = .call
    var resource: String
    var segment: String?
    var bytesOut: Int64 = 0
    var subject: String?
    /// Allowed by the policy set (a refused probe is not).
    var permitted = true
    /// A thief's presentation of the agent's token with another key, from `source`.
    var stolenToken = false
    /// Forged credentials from `source`, naming no agent (credential stuffing).
    var forged = false
    var source = "10.1.0.1"
    /// The attack it belongs to; nil for normal traffic.
    var attack: Int?
}

/// A stream of attempts in time order (one agent's work, or one attack).
protocol AttemptSource {
    /// The next attempt, nil when done; times never go back.
    mutating func next(_ rng: inout SplitMix64) -> Attempt?
}

/// One service call of a workload's mix.
struct Call {
    var resource: String
    var segment: String?
    var weight: Double
    /// Body sizes: log-normal around the median.
    var bodyMedian: Double
    var kind: RiskEvent.Kind = .call
}

/// An agent's normal work: log-normal think times scaled by an activity curve (shifts, nights, weekends, month-end
/// closes), a weighted mix of calls with log-normal bodies and now and then a large one, and optionally the users it
/// acts for (a pool that grows: new customers appear) and tools adopted over time.
struct Workload: AttemptSource {
    let agentID: String
    let roles: [String]
    let calls: [Call]
    /// Median seconds between calls at activity 1, and the spread of their logarithm.
    let think: Double
    let thinkSigma: Double
    /// Requests-rate multiplier at a time (0: inactive).
    let activity: @Sendable (Double) -> Double
    /// Chance that a call has a large body, and its range.
    var bigChance = 0.0
    var bigBytes: ClosedRange<Int64> = 102_400...409_600
    /// Delegated calls: the share acting for a user, and the pool (first users, new ones per day).
    var delegated = 0.0
    var users = 0
    var newUsersPerDay = 0.0
    /// Tools adopted over time: one more of `tools` every `adoptEvery` seconds from `start`.
    var tools: [String] = []
    var adoptEvery = 0.0
    let start: Double
    let end: Double
    var t: Double

    init(
        agentID: String, roles: [String], calls: [Call], think: Double, thinkSigma: Double = 1.0, start: Double,
        end: Double, activity: @escaping @Sendable (Double) -> Double
    ) {
        self.agentID = agentID
        self.roles = roles
        self.calls = calls
        self.think = think
        self.thinkSigma = thinkSigma
        self.activity = activity
        self.start = start
        self.end = end
        self.t = start
    }

    mutating func next(_ rng: inout SplitMix64) -> Attempt? {
        // The next moment the agent is active, then a think time at that activity.
        while t < end {
            let a = activity(t)
            if a <= 0 {
                t += 60
                continue
            }
            t += min(rng.logNormal(median: think, sigma: thinkSigma) / a, 3600)
            if activity(t) > 0 { break }
        }
        guard t < end else { return nil }
        var pick = Double.random(in: 0..<calls.reduce(0) { $0 + $1.weight }, using: &rng)
        var call = calls[0]
        for c in calls {
            pick -= c.weight
            if pick < 0 {
                call = c
                break
            }
        }
        var attempt = Attempt(
            time: t, agentID: agentID, roles: roles, kind: call.kind, resource: call.resource, segment: call.segment)
        if !tools.isEmpty, adoptEvery > 0, call.kind == .tool {
            let known = min(tools.count, 1 + Int((t - start) / adoptEvery))
            // Newer tools are used less at first: a tool's share grows with its age.
            let index = Int(Double(known) * pow(Double.random(in: 0..<1, using: &rng), 0.7))
            attempt.resource = "Tool::\"lab/\(tools[min(index, known - 1)])\""
        }
        attempt.bytesOut =
            Double.random(in: 0..<1, using: &rng) < bigChance
            ? Int64.random(in: bigBytes, using: &rng)
            : Int64(rng.logNormal(median: call.bodyMedian, sigma: 0.8))
        if delegated > 0, Double.random(in: 0..<1, using: &rng) < delegated {
            let pool = users + Int((t - start) / 86_400 * newUsersPerDay)
            // Mostly the established customers, sometimes the newest.
            let recent = Double.random(in: 0..<1, using: &rng) < 0.1
            let index =
                recent ? Int.random(in: max(0, pool - 20)..<pool, using: &rng) : Int.random(in: 0..<users, using: &rng)
            attempt.subject = "user:customer-\(index)"
        }
        return attempt
    }
}

/// Calendar helpers for activity curves (UTC).
enum SimCalendar {
    static func hour(_ t: Double) -> Double { (t.truncatingRemainder(dividingBy: 86_400)) / 3600 }
    /// 0 = Monday.
    static func weekday(_ t: Double) -> Int { Baseline.hourOfWeek(t) / 24 }
    static func week(_ t: Double) -> Int { Int(floor((t / 86_400 + 3) / 7)) }
    /// Whether `t` falls in the last `days` days of its month.
    static func monthEnd(_ t: Double, days: Int = 2) -> Bool {
        let date = Date(timeIntervalSince1970: t)
        var c = Foundation.Calendar(identifier: .gregorian)
        c.timeZone = TimeZone(identifier: "UTC")!
        guard let range = c.range(of: .day, in: .month, for: date) else { return false }
        return c.component(.day, from: date) > range.count - days
    }
}

/// The evaluation's normal traffic: six agent families whose work is irregular in the ways real traffic is.
enum NormalTraffic {
    static func id(_ name: String) -> String { "spiffe://eval.local/agent/\(name)" }

    /// `count` agents `<name>-1`… of one role doing the same kind of work, each on its own activity curve
    /// (`activity(index, time)`).
    static func family(
        _ name: String, _ count: Int, calls: [Call], think: Double, sigma: Double = 1.0, start: Double, end: Double,
        activity: @escaping @Sendable (Int, Double) -> Double
    ) -> [Workload] {
        (0..<count).map { i in
            Workload(
                agentID: id("\(name)-\(i + 1)"), roles: [name], calls: calls, think: think, thinkSigma: sigma,
                start: start, end: end
            ) { t in activity(i, t) }
        }
    }

    static func agents(start: Double, end: Double, rng: inout SplitMix64) -> [Workload] {
        var out: [Workload] = []
        // Support bots: two shifts that swap every Monday, Saturdays at a third, customers they act for (a pool
        // that grows), now and then an attachment. The seventh joins halfway: judged by its role's history at first.
        let support = [
            Call(resource: #"Service::"tickets""#, segment: "support", weight: 70, bodyMedian: 8192),
            Call(resource: #"Service::"kb""#, segment: "support", weight: 25, bodyMedian: 4096),
            Call(resource: #"Service::"crm""#, segment: "customers", weight: 5, bodyMedian: 16_384),
        ]
        for var w in family(
            "support", 7, calls: support, think: 15, start: start, end: end,
            activity: { i, t in
                let d = SimCalendar.weekday(t)
                guard d < 6 else { return 0 }
                let onEarly = (SimCalendar.week(t) % 2 == 0) == (i % 2 == 0)
                let h = SimCalendar.hour(t)
                let inShift = onEarly ? (h >= 6 && h < 14) : (h >= 14 && h < 22)
                return inShift ? (d == 5 ? 0.3 : 1) : 0
            })
        {
            if w.agentID.hasSuffix("-7") { w.t = start + (end - start) / 2 }
            w.bigChance = 0.02
            w.delegated = 0.8
            w.users = 300
            w.newUsersPerDay = 3
            out.append(w)
        }
        // Finance reconcilers: a job every hour on weekdays (a few minutes of calls), eight times the work in the
        // month-end close, a report each morning.
        let finance = [
            Call(resource: #"Service::"ledger""#, segment: "finance", weight: 60, bodyMedian: 32_768),
            Call(resource: #"Service::"payments""#, segment: "finance", weight: 35, bodyMedian: 8192),
            Call(resource: #"Service::"reports""#, segment: "reporting", weight: 5, bodyMedian: 65_536),
        ]
        out += family("finance", 2, calls: finance, think: 4, start: start, end: end) { _, t in
            guard SimCalendar.weekday(t) < 5 else { return 0 }
            let minute = (t.truncatingRemainder(dividingBy: 3600)) / 60
            let h = SimCalendar.hour(t)
            guard h >= 6, h < 20 else { return 0 }
            if SimCalendar.monthEnd(t) { return minute < 20 ? 2 : 0 }
            return minute >= 5 && minute < 9 ? 1 : 0
        }
        // Document processors: a nightly batch of large bodies, a daytime trickle.
        let documents = [Call(resource: #"Service::"documents""#, segment: "documents", weight: 1, bodyMedian: 131_072)]
        out += family("docs", 3, calls: documents, think: 240, sigma: 0.6, start: start, end: end) { _, t in
            let h = SimCalendar.hour(t)
            return h >= 1 && h < 2 ? 30 : (h >= 8 && h < 18 ? 1 : 0)
        }
        // Operations agents: incidents at any hour; each touches support, finance and infrastructure within seconds.
        let ops = [
            Call(resource: #"Service::"tickets""#, segment: "support", weight: 1, bodyMedian: 4096),
            Call(resource: #"Service::"ledger""#, segment: "finance", weight: 1, bodyMedian: 4096),
            Call(resource: #"Service::"metrics""#, segment: "infra", weight: 1, bodyMedian: 16_384),
        ]
        out += family("ops", 3, calls: ops, think: 3, sigma: 1.4, start: start, end: end) { _, t in
            // Bursts: active two minutes in every twenty, a third as often at night.
            let slot = Int(t / 1200)
            let h = SimCalendar.hour(t)
            let on = (t.truncatingRemainder(dividingBy: 1200)) < 120
            return on && (h >= 7 && h < 21 || slot % 3 == 0) ? 1 : 0
        }
        // Research agents: MCP tools, a new one adopted every three days.
        let tools = [Call(resource: "", segment: nil, weight: 1, bodyMedian: 2048, kind: .tool)]
        for var w in family(
            "research", 4, calls: tools, think: 90, start: start, end: end,
            activity: { _, t in
                let h = SimCalendar.hour(t)
                return SimCalendar.weekday(t) < 5 && h >= 8 && h < 19 ? 1 : 0
            })
        {
            w.tools = (1...16).map { "tool-\($0)" }
            w.adoptEvery = 3 * 86_400
            out.append(w)
        }
        // A fraud detector: a steady stream around the clock.
        let transactions = [
            Call(resource: #"Service::"transactions""#, segment: "transactions", weight: 1, bodyMedian: 65_536)
        ]
        out += family("fraud", 1, calls: transactions, think: 30, sigma: 0.3, start: start, end: end) { _, _ in 1 }
        return out
    }
}
