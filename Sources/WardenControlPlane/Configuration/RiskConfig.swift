import Cedar
import Foundation
import WardenCore
import WardenRisk

/// `risk:` in `warden.yaml`: the risk engine (`docs/risk.md`).
public struct RiskConfig: Sendable, Hashable {
    public var enabled = true
    /// Alerts are also POSTed here as JSON (best effort).
    public var webhook: String?
    public var queueSize = 65_536
    public var settings = RiskSettings()
    public var playbooks = Playbooks()
    public var trust = TrustModel()
    /// Thresholds and playbooks of particular roles and agents (`risk.roles.<role>`, `risk.agents.<name>`), each
    /// the global ones with its own keys over them.
    public var roles: [String: RiskTuning] = [:]
    public var agents: [String: RiskTuning] = [:]

    public init() {}

    /// What the engine is given: the global tuning and the overrides.
    public var tunings: RiskTunings {
        RiskTunings(global: RiskTuning(settings: settings, playbooks: playbooks), roles: roles, agents: agents)
    }
}

extension WardenConfig {
    /// The keys of `risk:` that a role or an agent may set for itself.
    static let riskTuningKeys = [
        "warmup_events", "warmup", "spike_min_minutes", "spike_window", "spike_factor", "spike_peak_factor",
        "spike_min_requests", "spike_min_bytes", "probe_window", "probe_medium", "probe_high", "chain_segments",
        "chain_window", "exfil_factor", "exfil_peak_factor", "exfil_min_bytes", "exfil_min_days", "off_hours_min_days",
        "off_hours_min_events", "delegation_spree", "delegation_window", "playbooks",
    ]

    static func parseRisk(_ v: JSONValue, fail: (String, String) -> WardenError) throws(WardenError) -> RiskConfig {
        guard case .object(let fields) = v else { throw fail("risk", "must be a mapping") }
        var r = RiskConfig()
        var tuning = RiskTuning(settings: r.settings, playbooks: r.playbooks)
        var roles: JSONValue?
        var agents: JSONValue?
        for (k, fv) in fields {
            let p = "risk.\(k)"
            switch k {
            case "enabled":
                guard case .bool(let b) = fv else { throw fail(p, "must be true or false") }
                r.enabled = b
            case "webhook":
                let u = try text(fv, p, fail: fail)
                guard RouteConfig.parseUpstream(u) != nil || u.hasPrefix("http") else {
                    throw fail(p, "must be an http(s) URL")
                }
                r.webhook = u
            case "queue_size":
                guard let n = whole(fv, in: 16...10_000_000) else { throw fail(p, "must be 16 to 10000000") }
                r.queueSize = n
            case "penalties":
                guard case .object(let items) = fv else {
                    throw fail(p, "must be {low: N, medium: N, high: N, <detector>: N}")
                }
                let detectorNames = Set(defaultDetectors.map(\.name))
                for (k, v) in items {
                    let ip = "\(p).\(k)"
                    guard let n = whole(v, in: 0...100) else { throw fail(ip, "must be 0 to 100 points") }
                    if let severity = Severity(name: k) {
                        r.trust.penalty[severity] = n
                    } else if detectorNames.contains(k) {
                        r.trust.byDetector[k] = n
                    } else {
                        throw fail(ip, "must be low, medium, high or a detector")
                    }
                }
            case "recovery_per_hour":
                guard let n = whole(fv, in: 0...100) else { throw fail(p, "must be 0 to 100 points") }
                r.trust.recoveryPerHour = Double(n)
            case "roles": roles = fv
            case "agents": agents = fv
            default:
                guard try applyRiskTuning(k, fv, p, to: &tuning, fail: fail) else {
                    throw fail(
                        p,
                        "unknown key (known: enabled, webhook, queue_size, recovery_per_hour, penalties, roles, agents, "
                            + riskTuningKeys.joined(separator: ", ") + ")")
                }
            }
        }
        guard tuning.settings.probeMedium <= tuning.settings.probeHigh else {
            throw fail("risk.probe_medium", "must not be above probe_high")
        }
        r.settings = tuning.settings
        r.playbooks = tuning.playbooks
        // Overrides start from the global tuning, whatever the order of the keys in the file.
        r.roles = try parseRiskOverrides(roles, "risk.roles", base: tuning, fail: fail) { _ in true }
        r.agents = try parseRiskOverrides(agents, "risk.agents", base: tuning, fail: fail) {
            (try? SPIFFEID.agent($0, trustDomain: "example.org")) != nil
        }
        return r
    }

    /// `risk.roles` or `risk.agents`: a mapping of names to tuning keys.
    static func parseRiskOverrides(
        _ v: JSONValue?, _ path: String, base: RiskTuning, fail: (String, String) -> WardenError,
        validName: (String) -> Bool
    ) throws(WardenError) -> [String: RiskTuning] {
        guard let v else { return [:] }
        guard case .object(let entries) = v else { throw fail(path, "must be a mapping of names to risk settings") }
        var out: [String: RiskTuning] = [:]
        for (name, value) in entries {
            let p = "\(path).\(name)"
            guard !name.isEmpty, name.utf8.count <= 255, validName(name) else { throw fail(p, "is not a valid name") }
            guard case .object(let fields) = value else { throw fail(p, "must be a mapping of risk settings") }
            var t = base
            for (k, fv) in fields {
                guard try applyRiskTuning(k, fv, "\(p).\(k)", to: &t, fail: fail) else {
                    throw fail("\(p).\(k)", "unknown key (known: \(riskTuningKeys.joined(separator: ", ")))")
                }
            }
            guard t.settings.probeMedium <= t.settings.probeHigh else {
                throw fail("\(p).probe_medium", "must not be above probe_high")
            }
            out[name] = t
        }
        return out
    }

    /// Sets one tuning key (a threshold or the playbooks); false when `key` is not one.
    static func applyRiskTuning(
        _ key: String, _ fv: JSONValue, _ p: String, to t: inout RiskTuning, fail: (String, String) -> WardenError
    ) throws(WardenError) -> Bool {
        func count(_ range: ClosedRange<Int>) throws(WardenError) -> Int {
            guard let n = whole(fv, in: range) else {
                throw fail(p, "must be a whole number from \(range.lowerBound) to \(range.upperBound)")
            }
            return n
        }
        func seconds(_ range: ClosedRange<Int64>, _ text: String) throws(WardenError) -> Double {
            guard let n = durationValue(fv), range.contains(n) else { throw fail(p, "must be a duration of \(text)") }
            return Double(n)
        }
        func factor() throws(WardenError) -> Double {
            guard case .number(let t) = fv, let x = Double(t), x >= 1, x <= 10_000 else {
                throw fail(p, "must be a number from 1 to 10000")
            }
            return x
        }
        switch key {
        case "warmup_events": t.settings.warmupEvents = Int64(try count(0...10_000_000))
        case "warmup": t.settings.warmupSeconds = try seconds(0...31_536_000, "0s to 365d")
        case "spike_min_minutes": t.settings.spikeMinMinutes = Int64(try count(0...10_080))
        case "spike_window": t.settings.spikeWindow = try seconds(10...3600, "10s to 1h")
        case "spike_factor": t.settings.spikeFactor = try factor()
        case "spike_peak_factor": t.settings.spikePeakFactor = try factor()
        case "spike_min_requests": t.settings.spikeMinRequests = Double(try count(1...10_000_000))
        case "spike_min_bytes": t.settings.spikeMinBytes = Double(try count(1...(1 << 40)))
        case "probe_window": t.settings.probeWindow = try seconds(1...86_400, "1s to 1d")
        case "probe_medium": t.settings.probeMedium = try count(1...1_000_000)
        case "probe_high": t.settings.probeHigh = try count(1...1_000_000)
        case "chain_segments": t.settings.chainSegments = try count(2...64)
        case "chain_window": t.settings.chainWindow = try seconds(1...86_400, "1s to 1d")
        case "exfil_factor": t.settings.exfilFactor = try factor()
        case "exfil_peak_factor": t.settings.exfilPeakFactor = try factor()
        case "exfil_min_bytes": t.settings.exfilMinBytes = Int64(try count(1...(1 << 50)))
        case "exfil_min_days": t.settings.exfilMinDays = try count(1...30)
        case "off_hours_min_days": t.settings.offHoursMinDays = Double(try count(1...365))
        case "off_hours_min_events": t.settings.offHoursMinEvents = Int64(try count(0...10_000_000))
        case "delegation_spree": t.settings.delegationSpree = try count(2...64)
        case "delegation_window": t.settings.delegationWindow = try seconds(10...86_400, "10s to 1d")
        case "playbooks": try parsePlaybooks(fv, p, into: &t.playbooks, fail: fail)
        default: return false
        }
        return true
    }

    /// `playbooks`: lists of actions by severity or by detector; the lists given replace those of `books`.
    static func parsePlaybooks(
        _ fv: JSONValue, _ p: String, into playbooks: inout Playbooks, fail: (String, String) -> WardenError
    ) throws(WardenError) {
        guard case .object(let books) = fv else {
            throw fail(p, "must be {low: [...], medium: [...], high: [...], <detector>: [...]}")
        }
        let detectorNames = Set(defaultDetectors.map(\.name))
        for (sev, list) in books {
            let bp = "\(p).\(sev)"
            let severity = Severity(name: sev)
            guard severity != nil || detectorNames.contains(sev) else {
                throw fail(
                    bp, "must be low, medium, high or a detector (\(detectorNames.sorted().joined(separator: ", ")))")
            }
            guard case .array(let items) = list else { throw fail(bp, "must be a list of actions") }
            var actions: [ResponseAction] = []
            for item in items {
                guard case .string(let a) = item, let action = ResponseAction(rawValue: a) else {
                    throw fail(bp, "actions are log, alert, approval, throttle, quarantine, revoke")
                }
                actions.append(action)
            }
            switch severity {
            case .low: playbooks.low = actions
            case .medium: playbooks.medium = actions
            case .high: playbooks.high = actions
            case nil: playbooks.byDetector[sev] = actions
            }
        }
    }
}
