import Foundation
import WardenCore
import WardenRisk

/// An attack of the evaluation: what it is, where its shape comes from, which detectors are meant to see it, and
/// its requests.
struct Scenario {
    enum Origin: String {
        /// From the independent evaluation that drove a live server with irregular traffic (issue 19).
        case evaluation
        /// Shapes added afterwards, that the detectors were not tuned to.
        case own
    }

    let name: String
    let origin: Origin
    /// The detectors meant to see it (its recall counts for them).
    let expected: [String]
    /// The identity a containment must stop (the agent's SPIFFE ID), nil when there is none to contain (forged
    /// credentials from an address).
    let contains: String?
    var attempts: [Attempt]
    var note: String?
}

/// Replays a scenario's attempts.
struct Scripted: AttemptSource {
    var attempts: [Attempt]
    var index = 0

    mutating func next(_ rng: inout SplitMix64) -> Attempt? {
        guard index < attempts.count else { return nil }
        defer { index += 1 }
        return attempts[index]
    }
}

enum Attacks {
    static func id(_ name: String) -> String { "spiffe://eval.local/agent/\(name)" }

    /// `count` requests by `agent` (in `roles`) to `resource` in `segment`, one every `every` seconds from `from`,
    /// each then shaped by `shape` (its index given).
    static func series(
        _ count: Int, agent: String, roles: [String], from: Double, every: Double, kind: RiskEvent.Kind = .call,
        resource: String, segment: String? = nil, bytes: Int64 = 0, shape: (inout Attempt, Int) -> Void = { _, _ in }
    ) -> [Attempt] {
        (0..<count).map { i in
            var a = Attempt(
                time: from + Double(i) * every, agentID: agent, roles: roles, kind: kind, resource: resource,
                segment: segment, bytesOut: bytes)
            shape(&a, i)
            return a
        }
    }

    /// The attacks, in the last days of a run that ends at `end` (each on its own agent, hours apart).
    static func all(end: Double, rng: inout SplitMix64) -> [Scenario] {
        // Day -3 at midnight UTC.
        let day = floor(end / 86_400) * 86_400 - 3 * 86_400
        var out: [Scenario] = []

        // The evaluation's attacks.
        // 1. Bulk exfiltration: 150 bodies of 256–512 KiB from its own route at about 9 a second, under any
        //    per-request rate limit, in its shift.
        let puller = id("support-3")
        out.append(
            Scenario(
                name: "bulk exfiltration: 150 pulls of 256-512 KiB at 9/s", origin: .evaluation,
                expected: ["volume_spike"], contains: puller,
                attempts: series(
                    150, agent: puller, roles: ["support"], from: day + 10 * 3600 + 17, every: 1.0 / 9,
                    resource: #"Service::"tickets""#, segment: "support"
                ) { a, _ in a.bytesOut = Int64.random(in: 262_144...524_288, using: &rng) }))
        // 2. Credential stuffing at the token endpoint: 40 forged client assertions from one address.
        out.append(
            Scenario(
                name: "credential stuffing at the token endpoint: 40 forged assertions", origin: .evaluation,
                expected: ["denial_burst"], contains: nil,
                attempts: series(
                    40, agent: "", roles: [], from: day + 11 * 3600, every: 0.5, kind: .authFailure, resource: "token"
                ) { a, _ in
                    a.permitted = false
                    a.forged = true
                    a.source = "198.51.100.23"
                }))
        // 3. Scope probing: 28 routes it may not call, over two minutes.
        let prober = id("docs-1")
        let targets = ["billing", "ledger", "payments", "hr", "payroll", "vault", "admin"]
        out.append(
            Scenario(
                name: "scope probing: 28 refused probes", origin: .evaluation,
                expected: ["denial_burst", "lateral_movement"], contains: prober,
                attempts: series(28, agent: prober, roles: ["docs"], from: day + 14 * 3600, every: 4.3, resource: "") {
                    a, i in
                    let target = targets[i % targets.count]
                    a.resource = "Service::\"\(target)\""
                    a.segment = target == "ledger" || target == "payments" ? "finance" : target
                    a.permitted = false
                }))
        // 4. A stolen token presented with the thief's key: 20 tries in a minute from the thief's address.
        let victim = id("research-2")
        out.append(
            Scenario(
                name: "stolen token used with the thief's key", origin: .evaluation, expected: ["stolen_token"],
                contains: victim,
                attempts: series(
                    20, agent: victim, roles: ["research"], from: day + 15 * 3600, every: 3, kind: .tool,
                    resource: #"Tool::"lab/tool-1""#
                ) { a, _ in
                    a.stolenToken = true
                    a.source = "203.0.113.50"
                }))
        // 5. Allowed lateral movement: a support bot reaching a permitted segment it never used.
        let pivot = id("support-1")
        out.append(
            Scenario(
                name: "lateral movement to a permitted, never-used segment", origin: .evaluation,
                expected: ["lateral_movement"], contains: pivot,
                attempts: series(
                    10, agent: pivot, roles: ["support"], from: day + 86_400 + 9 * 3600, every: 3,
                    resource: #"Service::"billing""#, segment: "billing", bytes: 20_000)))
        // 6. Slow exfiltration: the fraud detector pulls 512 KiB more every minute for a day, under every limit.
        let slow = id("fraud-1")
        out.append(
            Scenario(
                name: "slow exfiltration: 512 KiB a minute for a day", origin: .evaluation,
                expected: ["slow_exfiltration"], contains: slow,
                attempts: series(
                    1440, agent: slow, roles: ["fraud"], from: day + 86_400 + 12 * 3600 + 7, every: 60,
                    resource: #"Service::"transactions""#, segment: "transactions", bytes: 524_288)))

        // Shapes of our own, not tuned for.
        // 7. Low-and-slow probing: four refusals a minute for half an hour, under the burst threshold.
        let patient = id("ops-2")
        out.append(
            Scenario(
                name: "low-and-slow probing: 4 refusals a minute for 30 minutes", origin: .own,
                expected: ["denial_burst", "lateral_movement"], contains: patient,
                attempts: series(
                    120, agent: patient, roles: ["ops"], from: day + 2 * 86_400 + 3 * 3600, every: 15,
                    resource: #"Service::"tickets""#, segment: "support"
                ) { a, _ in a.permitted = false }))
        // 8. Impersonation spree: a support bot acting for 30 users it never served, in ten minutes.
        let impostor = id("support-5")
        out.append(
            Scenario(
                name: "impersonation spree: 30 never-served users in 10 minutes", origin: .own,
                expected: ["impossible_delegation"], contains: impostor,
                attempts: series(
                    30, agent: impostor, roles: ["support"], from: day + 2 * 86_400 + 15 * 3600, every: 20,
                    resource: #"Service::"crm""#, segment: "customers", bytes: 16_384
                ) { a, i in a.subject = "user:executive-\(i)" }))
        // 9. A finance agent's credentials used on a Sunday night for ordinary-looking calls.
        let nightOwl = id("finance-2")
        let sunday = day - Double((SimCalendar.weekday(day) + 1) % 7) * 86_400 + 3 * 3600
        out.append(
            Scenario(
                name: "off-hours use of a finance agent: Sunday 03:00", origin: .own, expected: ["off_hours"],
                contains: nightOwl,
                attempts: series(
                    12, agent: nightOwl, roles: ["finance"], from: sunday, every: 40, resource: #"Service::"ledger""#,
                    segment: "finance", bytes: 32_768)))
        // 10. Ramping exfiltration: a document processor's nightly batch carries 60 % more each night, for six.
        let ramp = id("docs-2")
        var rampAttempts: [Attempt] = []
        for night in 0..<6 {
            rampAttempts += series(
                Int(pow(1.6, Double(night + 1)) * 40), agent: ramp, roles: ["docs"],
                from: day - 3 * 86_400 + Double(night) * 86_400 + 3600 + 60, every: 50,
                resource: #"Service::"documents""#, segment: "documents"
            ) { a, _ in a.bytesOut = Int64(rng.logNormal(median: 131_072, sigma: 0.6)) }
        }
        out.append(
            Scenario(
                name: "ramping nightly exfiltration: +60% a night for 6 nights", origin: .own,
                expected: ["volume_spike", "slow_exfiltration"], contains: ramp, attempts: rampAttempts))
        // 11. A research agent calling tools its role never used (a poisoned prompt's tool pivot).
        let toolPivot = id("research-3")
        let tools = ["secrets-export", "shell", "mail-send", "db-dump", "wire-transfer"]
        out.append(
            Scenario(
                name: "tool pivot: 5 tools its role never used", origin: .own, expected: ["new_resource"],
                contains: toolPivot,
                attempts: series(
                    tools.count, agent: toolPivot, roles: ["research"], from: day + 2 * 86_400 + 10 * 3600, every: 30,
                    kind: .tool, resource: "", bytes: 4096
                ) { a, i in a.resource = "Tool::\"lab/\(tools[i])\"" }))
        return out
    }
}
