import Foundation

/// What a detector sees: the event, the agent's baseline before the event, and the baselines of its roles.
public struct DetectionContext: Sendable {
    public let event: RiskEvent
    public let agent: Baseline
    public let roles: [Baseline]
    public let settings: RiskSettings

    /// The agent has enough history for "new" and "unusual" to mean something (the warm-up: a number of events and
    /// an age, `docs/risk.md`).
    public var warm: Bool {
        agent.events >= settings.warmupEvents && event.time - agent.firstSeen >= settings.warmupSeconds
    }

    /// The agent, or when it is still warming up a warm baseline of one of its roles, knows `f`.
    func known(_ f: (Baseline) -> Bool) -> Bool {
        if f(agent) { return true }
        return roles.contains { f($0) }
    }

    /// Whether `segment` is new to the agent and its roles: never reached by an allowed call of theirs (or their
    /// history is full and cannot say), whether or not there is a warm reference (the chain rule's test).
    func isNovel(segment: String) -> Bool { agent.segments.isFull || !known { $0.segments.contains(segment) } }

    /// Outside the agent's history, judged against a warm reference: the resource was never reached by an allowed
    /// call of the agent or its roles. False without a reference, or when the history is full and cannot say.
    func isNewResource(_ resource: String) -> Bool {
        hasReference && !agent.resources.isFull && !known { $0.resources.contains(resource) }
    }

    /// Whether the agent acts for a user neither it nor its roles served recently (``SubjectMemory``).
    func isNewSubject(_ subject: String) -> Bool {
        !(agent.served?.contains(subject) ?? false) && !roles.contains { $0.served?.contains(subject) ?? false }
    }

    /// The same for a segment.
    func isNewSegment(_ segment: String) -> Bool {
        hasReference && !agent.segments.isFull && !known { $0.segments.contains(segment) }
    }

    /// A warm reference exists: the agent's own, or a role's.
    var hasReference: Bool {
        warm
            || roles.contains {
                $0.events >= settings.warmupEvents && event.time - $0.firstSeen >= settings.warmupSeconds
            }
    }
}

/// One anomaly rule. Detectors are pure: they read the context and return a finding or nothing.
public protocol Detector: Sendable {
    var name: String { get }
    /// Whether the detector looks at ``RiskEvent/Kind/tokenMisuse`` events (someone else presenting the agent's
    /// token). False by default: those events are not the agent's behaviour.
    var judgesTokenMisuse: Bool { get }
    func evaluate(_ c: DetectionContext) -> Finding?
    /// Why the detector cannot judge the agent yet (its gate, in the documented settings' terms), or nil when it can.
    func notReady(_ c: DetectionContext) -> String?
    /// Whether the detector looks at the bytes a call reports while it still streams
    /// (``RiskEvent/continuation``): the volume detectors only.
    var judgesVolume: Bool { get }
}

extension Detector {
    public var judgesTokenMisuse: Bool { false }
    public var judgesVolume: Bool { false }
    public func notReady(_ c: DetectionContext) -> String? { nil }
}

extension DetectionContext {
    /// The agent's warm-up, as a reason (nil once warm).
    var warmingUp: String? {
        guard !warm else { return nil }
        return
            "warming up: \(agent.events) of \(settings.warmupEvents) events (risk.warmup_events) over \(Int(max(0, event.time - agent.firstSeen))) of \(Int(settings.warmupSeconds)) s (risk.warmup)"
    }

    /// No warm reference (the agent's own or a role's), as a reason (nil when there is one).
    var noReference: String? {
        guard !hasReference, let w = warmingUp else { return nil }
        return w + (roles.isEmpty ? "" : ", and none of its roles is warm")
    }
}

/// Thresholds, all configurable (`risk:` in `warden.yaml`).
public struct RiskSettings: Sendable, Hashable {
    /// Warm-up: events and seconds of history before "new" and "unusual" findings are raised for an agent.
    public var warmupEvents: Int64 = 200
    public var warmupSeconds: Double = 3600
    /// Volume spike: requests or bytes out over the last `spikeWindow` seconds (sliding) at least `spikeFactor` times
    /// the agent's mean for that length of time, `spikePeakFactor` times its largest window of the last 35 days, and
    /// the floors (per minute, scaled to the window); once the agent is warm and `spikeMinMinutes` minutes with
    /// traffic have been observed (`risk.spike_min_minutes`; unset: the warm-up's length in minutes, at least 1 and
    /// at most 10).
    public var spikeWindow: Double = 60
    public var spikeFactor: Double = 20
    public var spikePeakFactor: Double = 2
    public var spikeMinMinutes: Int64?
    public var spikeMinRequests: Double = 120
    public var spikeMinBytes: Double = 8_388_608

    /// The minutes with traffic a volume spike waits for: `spikeMinMinutes`, or by default the warm-up's minutes
    /// (1 to 10).
    public var spikeGateMinutes: Int64 { spikeMinMinutes ?? min(10, max(1, Int64(warmupSeconds / 60))) }
    /// Denials and authentication failures in `probeWindow` seconds: medium at `probeMedium`, high at `probeHigh`.
    public var probeWindow: Double = 60
    public var probeMedium = 5
    public var probeHigh = 20
    /// Lateral movement: this many distinct segments within `chainWindow` seconds.
    public var chainSegments = 3
    public var chainWindow: Double = 10
    /// Slow exfiltration: bytes out over 24 h above `exfilFactor` × the mean day and above `exfilMinBytes`, once
    /// `exfilMinDays` days are known.
    public var exfilFactor: Double = 3
    /// ... and above `exfilPeakFactor` × the largest day of the last 35 (a month-end close is not exfiltration once
    /// one is known).
    public var exfilPeakFactor: Double = 1.5
    public var exfilMinBytes: Int64 = 50 << 20
    public var exfilMinDays = 3
    /// Delegation spree: acting for `delegationSpree` users new to the agent and its roles within `delegationWindow`
    /// seconds (or 5 times its usual number of new users in such a window, when that is more).
    public var delegationSpree = 10
    public var delegationWindow: Double = 600
    /// Off-hours: an hour of the week never seen, once `offHoursMinDays` days and `offHoursMinEvents` events are known.
    public var offHoursMinDays: Double = 7
    public var offHoursMinEvents: Int64 = 500

    public init() {}
}

/// Far more requests or bytes out in the last window (sliding: whenever the burst comes) than the agent's mean for
/// that length of time and its usual peaks.
public struct VolumeSpike: Detector {
    public let name = "volume_spike"
    public var judgesVolume: Bool { true }
    public init() {}

    /// The limits a window is judged against (requests, bytes out): the floors, the mean and the past peaks.
    static func limits(_ c: DetectionContext) -> (requests: Double, bytes: Double) {
        let a = c.agent
        let s = c.settings
        let scale = s.spikeWindow / 60
        let peak = a.peaks?.before(day: Int64(c.event.time / 86_400)) ?? (requests: 0, bytes: 0)
        return (
            max(
                s.spikeMinRequests * scale, s.spikeFactor * a.meanRequestsPerMinute * scale,
                s.spikePeakFactor * Double(peak.requests)),
            max(
                s.spikeMinBytes * scale, s.spikeFactor * a.meanBytesPerMinute * scale,
                s.spikePeakFactor * Double(peak.bytes))
        )
    }

    public func evaluate(_ c: DetectionContext) -> Finding? {
        guard Self.ready(c) else { return nil }
        let a = c.agent
        let s = c.settings
        let t = c.event.time
        // One report per window.
        if let last = a.lastSpike, t - last < s.spikeWindow { return nil }
        let (r0, b0) = a.windowTotals(at: t, seconds: s.spikeWindow)
        let requests = Double(r0 + (c.event.continuation ? 0 : 1))
        let bytes = Double(b0 + c.event.bytesOut)
        let (rLimit, bLimit) = Self.limits(c)
        let scale = s.spikeWindow / 60
        let evidence = [
            Evidence("window_seconds", s.spikeWindow), Evidence("requests", requests), Evidence("bytes_out", bytes),
            Evidence("mean_requests", a.meanRequestsPerMinute * scale),
            Evidence("mean_bytes_out", a.meanBytesPerMinute * scale),
            Evidence("limit_requests", rLimit), Evidence("limit_bytes_out", bLimit),
        ]
        // Fire when a threshold is crossed (not on every later event of the burst).
        if requests >= rLimit, Double(r0) < rLimit {
            return Finding(
                detector: name, severity: .high,
                summary:
                    "\(Int(requests)) requests in \(Int(s.spikeWindow)) s against a mean of \(String(format: "%.1f", a.meanRequestsPerMinute * scale))",
                evidence: evidence)
        }
        if bytes >= bLimit, Double(b0) < bLimit {
            return Finding(
                detector: name, severity: .high,
                summary:
                    "\(Int64(bytes)) bytes out in \(Int(s.spikeWindow)) s against a mean of \(Int64(a.meanBytesPerMinute * scale))",
                evidence: evidence)
        }
        return nil
    }

    /// How far the window ending at the call's time is above the agent's mean for a window (the larger of the
    /// requests' and the bytes' ratios; 0 while the detector cannot judge the agent): `context.risk.volumeRatio`.
    static func ratio(_ c: DetectionContext) -> Double {
        guard ready(c) else { return 0 }
        let a = c.agent
        let scale = c.settings.spikeWindow / 60
        let (r, b) = a.windowTotals(at: c.event.time, seconds: c.settings.spikeWindow)
        let byRequests = Double(r) / max(a.meanRequestsPerMinute * scale, 0.01)
        let byBytes = Double(b) / max(a.meanBytesPerMinute * scale, 1)
        return min(max(byRequests, byBytes), 1_000_000)
    }
}

/// A route, tool or peer never used by this agent (nor by its roles), reached with an allowed call.
public struct NewResource: Detector {
    public let name = "new_resource"
    public init() {}
    public func evaluate(_ c: DetectionContext) -> Finding? {
        let e = c.event
        // Allowed calls only: refused ones are the denial-burst detector's.
        guard e.kind == .call || e.kind == .tool, e.allowed, c.isNewResource(e.resource) else { return nil }
        return Finding(detector: name, severity: .low, summary: "first use of \(e.resource)")
    }
}

/// A burst of denials or authentication failures: probing.
public struct DenialBurst: Detector {
    public let name = "denial_burst"
    public init() {}
    public func evaluate(_ c: DetectionContext) -> Finding? {
        let e = c.event
        guard !e.allowed || e.kind == .authFailure else { return nil }
        let since = e.time - c.settings.probeWindow
        let count = c.agent.recentDenials.filter { $0 > since }.count + 1
        let s = c.settings
        // Once per threshold crossed.
        let evidence = [Evidence("refusals", Double(count)), Evidence("window_seconds", s.probeWindow)]
        if count == s.probeHigh {
            return Finding(
                detector: name, severity: .high, summary: "\(count) refusals in \(Int(s.probeWindow)) s",
                evidence: evidence)
        }
        if count == s.probeMedium {
            return Finding(
                detector: name, severity: .medium, summary: "\(count) refusals in \(Int(s.probeWindow)) s",
                evidence: evidence)
        }
        return nil
    }
}

/// A segment outside the agent's history, or a chain crossing several segments new to it within seconds. Segments
/// the agent or its roles use normally never count toward the chain: a role whose work spans several segments is
/// not lateral movement, however quickly it moves between them.
public struct LateralMovement: Detector {
    public let name = "lateral_movement"
    public init() {}
    public func evaluate(_ c: DetectionContext) -> Finding? {
        let e = c.event
        guard let segment = e.segment else { return nil }
        if c.isNewSegment(segment) {
            return Finding(
                detector: name, severity: .high,
                summary: "reached segment \(segment), outside its history (\(e.allowed ? "allowed" : "refused"))")
        }
        guard c.isNovel(segment: segment) else { return nil }
        let since = e.time - c.settings.chainWindow
        var recent = Set(c.agent.recentSegments.filter { $0.time > since && $0.novel != false }.map(\.segment))
        let before = recent.count
        recent.insert(segment)
        if recent.count >= c.settings.chainSegments, before < c.settings.chainSegments {
            return Finding(
                detector: name, severity: .high,
                summary:
                    "\(recent.count) segments within \(Int(c.settings.chainWindow)) s: \(recent.sorted().joined(separator: ", "))",
                evidence: [
                    Evidence("new_segments", Double(recent.count)), Evidence("window_seconds", c.settings.chainWindow),
                ])
        }
        return nil
    }
}

/// Cumulative bytes out over a day far above the agent's usual day, however evenly spread.
public struct SlowExfiltration: Detector {
    public let name = "slow_exfiltration"
    public var judgesVolume: Bool { true }
    public init() {}
    public func evaluate(_ c: DetectionContext) -> Finding? {
        let e = c.event
        guard e.bytesOut > 0, let mean = c.agent.meanDailyBytes(minDays: c.settings.exfilMinDays) else { return nil }
        let peak = Double(c.agent.dailyBytes.max() ?? 0)
        let limit = max(
            Double(c.settings.exfilMinBytes), c.settings.exfilFactor * mean, c.settings.exfilPeakFactor * peak)
        let before = Double(c.agent.bytesLast24h(now: e.time))
        let after = before + Double(e.bytesOut)
        guard after >= limit, before < limit else { return nil }
        return Finding(
            detector: name, severity: .high,
            summary: "\(Int64(after)) bytes out in 24 h against a mean day of \(Int64(mean))",
            evidence: [
                Evidence("bytes_out_24h", after), Evidence("mean_day_bytes_out", mean),
                Evidence("largest_day_bytes_out", peak), Evidence("limit_bytes_out", limit),
                Evidence("days_known", Double(c.agent.dailyBytes.count)),
            ])
    }
}

/// Activity in an hour of the week this agent has never been active in.
public struct OffHours: Detector {
    public let name = "off_hours"
    public init() {}
    public func evaluate(_ c: DetectionContext) -> Finding? {
        let a = c.agent
        guard Self.ready(c) else { return nil }
        let h = Baseline.hourOfWeek(c.event.time)
        // Once per hour: only the first event of an empty bucket in this hour. An hour next to one the agent works
        // in, or one its roles work in (a shift another member covers), is not off-hours.
        guard a.hourOfWeek[h] == 0, Int64(a.lastSeen / 3600) != Int64(c.event.time / 3600) else { return nil }
        guard a.hourOfWeek[(h + 167) % 168] == 0, a.hourOfWeek[(h + 1) % 168] == 0,
            !c.roles.contains(where: { $0.hourOfWeek[h] > 0 })
        else { return nil }
        return Finding(
            detector: name, severity: .low, summary: "active in hour \(h % 24) of weekday \(h / 24), never before")
    }
}

/// Acting for many users the agent and its roles never served, in a short time: an impersonation spree. One new user
/// is not a finding (customers come and go); a burst of them, far above the agent's usual rate of new users, is.
public struct ImpossibleDelegation: Detector {
    public let name = "impossible_delegation"
    public init() {}
    public func evaluate(_ c: DetectionContext) -> Finding? {
        let e = c.event
        guard e.allowed, let subject = e.subject, c.hasReference, c.isNewSubject(subject) else { return nil }
        let s = c.settings
        let since = e.time - s.delegationWindow
        let recent = Double((c.agent.newSubjectTimes ?? []).filter { $0 > since }.count + 1)
        let windows = max(1, (e.time - c.agent.firstSeen) / s.delegationWindow)
        let usual = Double(c.agent.newSubjects ?? 0) / windows
        let limit = max(Double(s.delegationSpree), 5 * usual)
        guard recent >= limit, recent - 1 < limit else { return nil }
        return Finding(
            detector: name, severity: .medium,
            summary:
                "acting for \(Int(recent)) users never served within \(Int(s.delegationWindow)) s (latest \(subject))",
            evidence: [
                Evidence("new_users", recent), Evidence("window_seconds", s.delegationWindow),
                Evidence("usual_new_users", usual), Evidence("limit", limit),
            ])
    }
}

/// An enrollment whose attestation did not match (a modified binary): always high.
public struct AttestationMismatch: Detector {
    public let name = "attestation_mismatch"
    public init() {}
    public func evaluate(_ c: DetectionContext) -> Finding? {
        guard c.event.kind == .attestationFailure else { return nil }
        return Finding(detector: name, severity: .high, summary: "attestation did not match the manifest")
    }
}

/// The agent's genuine token presented with another key's proof (or another client certificate): it was stolen.
/// High, at most once a minute per agent; the default playbook for it revokes the agent's tokens and alerts, without
/// quarantining the agent (a thief must not be able to switch off its victim).
public struct StolenToken: Detector {
    public let name = "stolen_token"
    public var judgesTokenMisuse: Bool { true }
    public init() {}
    public func evaluate(_ c: DetectionContext) -> Finding? {
        guard c.event.kind == .tokenMisuse else { return nil }
        if let last = c.agent.lastTokenMisuse, c.event.time - last < Baseline.tokenMisuseInterval { return nil }
        return Finding(
            detector: name, severity: .high,
            summary: "its genuine token was presented with another key's proof or another client certificate")
    }
}

/// The detectors Warden runs, in order.
public let defaultDetectors: [any Detector] = [
    StolenToken(), AttestationMismatch(), DenialBurst(), LateralMovement(), VolumeSpike(), SlowExfiltration(),
    ImpossibleDelegation(),
    NewResource(), OffHours(),
]

// MARK: Readiness (`GET /v1/admin/risk/agents/{name}`: which detectors can judge the agent yet, and why not)

extension VolumeSpike {
    /// The gate `evaluate` checks on every event (no text made).
    static func ready(_ c: DetectionContext) -> Bool {
        c.warm && c.agent.minutesObserved >= c.settings.spikeGateMinutes
    }

    public func notReady(_ c: DetectionContext) -> String? {
        if Self.ready(c) { return nil }
        return c.warmingUp
            ?? "\(c.agent.minutesObserved) of \(c.settings.spikeGateMinutes) minutes observed (risk.spike_min_minutes\(c.settings.spikeMinMinutes == nil ? ", by default the warm-up's minutes up to 10" : ""))"
    }
}

extension NewResource {
    public func notReady(_ c: DetectionContext) -> String? { c.noReference }
}

extension ImpossibleDelegation {
    public func notReady(_ c: DetectionContext) -> String? { c.noReference }
}

extension LateralMovement {
    public func notReady(_ c: DetectionContext) -> String? {
        c.noReference.map {
            "segments outside its history wait for a warm reference (\($0)); the chain rule judges now"
        }
    }
}

extension SlowExfiltration {
    public func notReady(_ c: DetectionContext) -> String? {
        guard c.agent.dailyBytes.count >= c.settings.exfilMinDays else {
            return "\(c.agent.dailyBytes.count) of \(c.settings.exfilMinDays) whole days known"
        }
        return nil
    }
}

extension OffHours {
    /// The gate `evaluate` checks on every event.
    static func ready(_ c: DetectionContext) -> Bool {
        c.agent.events >= c.settings.offHoursMinEvents
            && c.event.time - c.agent.firstSeen >= c.settings.offHoursMinDays * 86_400
    }

    public func notReady(_ c: DetectionContext) -> String? {
        guard !Self.ready(c) else { return nil }
        let days = Int(max(0, c.event.time - c.agent.firstSeen) / 86_400)
        return
            "\(c.agent.events) of \(c.settings.offHoursMinEvents) events over \(days) of \(Int(c.settings.offHoursMinDays)) days"
    }
}
