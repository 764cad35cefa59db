import Foundation
import WardenCore

/// What the risk engine sees of one call or identity event, handed over by the gateway without waiting.
public struct RiskEvent: Sendable {
    public enum Kind: String, Sendable {
        /// An HTTP route or agent-to-agent call (`/r/...`).
        case call
        /// An MCP tool call, resource read or prompt.
        case tool
        /// A request whose credentials failed (a bad proof, a revoked token, another key).
        case authFailure = "auth_failure"
        /// An enrollment whose attestation did not match the manifest (a modified binary).
        case attestationFailure = "attestation_failure"
        /// The agent's genuine token presented by someone else: with a valid proof made by another key, or over
        /// mutual TLS with another client certificate. Not the agent's behaviour: it is not learnt, and only the
        /// detectors that say so (``Detector/judgesTokenMisuse``) see it, so that a thief cannot make the victim look
        /// like a prober.
        case tokenMisuse = "token_misuse"
    }

    /// Seconds since the epoch (fractional), from the gateway's clock.
    public var time: Double
    /// The agent's registry id; empty when the request could not be tied to an agent.
    public var agentID: String
    /// The agent's roles (the baseline of a role is the reference for its new agents).
    public var roles: [String]
    public var kind: Kind
    /// The Cedar resource reached (`Service::"tickets"`, `Tool::"docs/read"`, `Agent::"…"`).
    public var resource: String
    /// The micro-segment of the resource, when it has one.
    public var segment: String?
    public var allowed: Bool
    public var reason: String?
    public var bytesIn: Int64
    public var bytesOut: Int64
    /// The user (or first party) the agent acts for, when delegated.
    public var subject: String?
    /// When the gateway handed it over (monotonic), for the time from event to containment.
    public var observedAt: ContinuousClock.Instant = .now
    /// The call's audit entry (its admission or refusal), which an alert about it names; nil when it has none (a
    /// refusal counted in its source's summary).
    public var cause: AuditTicket?
    /// More bytes of a call still streaming (reported every few MiB): counted toward the volumes, not as a request;
    /// only the detectors that judge volume see it (``Detector/judgesVolume``). The call itself is the event sent
    /// when its exchange ends, with the rest of its bytes.
    public var continuation = false

    public init(
        time: Double, agentID: String, roles: [String] = [], kind: Kind, resource: String, segment: String? = nil,
        allowed: Bool, reason: String? = nil, bytesIn: Int64 = 0, bytesOut: Int64 = 0, subject: String? = nil
    ) {
        self.time = time
        self.agentID = agentID
        self.roles = roles
        self.kind = kind
        self.resource = resource
        self.segment = segment
        self.allowed = allowed
        self.reason = reason
        self.bytesIn = bytesIn
        self.bytesOut = bytesOut
        self.subject = subject
    }
}

public enum Severity: Int, Sendable, Comparable, CaseIterable {
    case low = 1
    case medium = 2
    case high = 3

    public static func < (a: Severity, b: Severity) -> Bool { a.rawValue < b.rawValue }

    public var name: String {
        switch self {
        case .low: "low"
        case .medium: "medium"
        case .high: "high"
        }
    }

    public init?(name: String) {
        switch name {
        case "low": self = .low
        case "medium": self = .medium
        case "high": self = .high
        default: return nil
        }
    }
}

/// What a detector concluded about one event.
public struct Finding: Sendable, Equatable {
    public let detector: String
    public let severity: Severity
    /// One line a human reads in the alert.
    public let summary: String
    /// The figures the detector judged on (counts, windows, baseline figures, the limit crossed), for the alert.
    public let evidence: [Evidence]

    public init(detector: String, severity: Severity, summary: String, evidence: [Evidence] = []) {
        self.detector = detector
        self.severity = severity
        self.summary = summary
        self.evidence = evidence
    }
}

/// One figure a finding was judged on.
public struct Evidence: Sendable, Equatable {
    public let name: String
    public let value: Double

    public init(_ name: String, _ value: Double) {
        self.name = name
        self.value = value
    }
}

/// A set that keeps at most `capacity` members (new members are not added once full; a full set is reported, so a
/// detector can say "unknown" instead of "new").
public struct BoundedSet: Sendable, Codable, Equatable {
    public private(set) var members: Set<String> = []
    public let capacity: Int

    public init(capacity: Int) { self.capacity = capacity }

    public var isFull: Bool { members.count >= capacity }
    public func contains(_ s: String) -> Bool { members.contains(s) }

    public mutating func insert(_ s: String) {
        if members.count < capacity { members.insert(s) }
    }
}

/// An agent's (or a role's) learned behaviour, bounded in size whatever the traffic: a few hundred counters and at
/// most `maxResources` + `maxSubjects` + `maxSegments` names.
public struct Baseline: Sendable, Codable, Equatable {
    public static let maxResources = 512
    public static let maxSubjects = 256
    public static let maxSegments = 64

    public var firstSeen: Double
    public var lastSeen: Double
    public var events: Int64 = 0
    public var resources = BoundedSet(capacity: Baseline.maxResources)
    public var segments = BoundedSet(capacity: Baseline.maxSegments)
    public var subjects = BoundedSet(capacity: Baseline.maxSubjects)
    /// Events per hour of the week (Monday 00:00 UTC is bucket 0).
    public var hourOfWeek = [Int64](repeating: 0, count: 168)

    /// The current minute's requests and bytes out, and their exponentially weighted means over past minutes.
    public var minute: Int64 = -1
    public var minuteRequests: Double = 0
    public var minuteBytes: Double = 0
    public var meanRequestsPerMinute: Double = 0
    public var meanBytesPerMinute: Double = 0
    public var minutesObserved: Int64 = 0

    /// Bytes out per hour over the last 24 hours (a ring indexed by hour since the epoch), and per day over the
    /// last 35 days (completed days: a month-end close is still remembered at the next one).
    public var hourlyBytes = [Int64](repeating: 0, count: 24)
    public var hourlyIndex: [Int64] = [Int64](repeating: -1, count: 24)
    public var day: Int64 = -1
    public var dayBytes: Int64 = 0
    public var dailyBytes: [Int64] = []

    /// Requests and bytes out over the last `risk.spike_window` seconds, sliding (no clock-minute boundaries), and
    /// the largest such window of each of the last completed days. Optional: baselines stored before they existed
    /// decode without them and start them at their next event.
    public var window: SlidingWindow?
    public var peaks: WindowPeaks?
    /// When a volume spike was last reported (at most one per window).
    public var lastSpike: Double?
    /// The users most recently acted for (the newest ``SubjectMemory/capacity``), when users first served appeared
    /// (the last 64) and how many in all: what a delegation spree is judged on. Optional, as ``window``.
    public var served: SubjectMemory?
    public var newSubjectTimes: [Double]?
    public var newSubjects: Int64?

    /// When someone else's presentation of the agent's token (``RiskEvent/Kind/tokenMisuse``) was last reported;
    /// nil before.
    public var lastTokenMisuse: Double?
    /// At most one stolen-token report per agent in this many seconds.
    public static let tokenMisuseInterval: Double = 60

    /// Recent denials and authentication failures (times), and recent segments reached (time, segment).
    public var recentDenials: [Double] = []
    public var recentSegments: [RecentSegment] = []

    public struct RecentSegment: Sendable, Codable, Equatable {
        public var time: Double
        public var segment: String
        /// Whether the segment was new to the agent and its roles when reached (the lateral-movement chain counts
        /// only those). Nil in baselines stored before it was recorded: counted, as it was then.
        public var novel: Bool?
    }

    public init(now: Double) {
        firstSeen = now
        lastSeen = now
    }

    /// Bytes out in the last 24 hours at `now`.
    public func bytesLast24h(now: Double) -> Int64 {
        let hour = Int64(now / 3600)
        var total: Int64 = 0
        for i in 0..<24 where hourlyIndex[i] > hour - 24 && hourlyIndex[i] <= hour { total += hourlyBytes[i] }
        return total
    }

    /// The mean of the completed days' bytes out (nil before `minDays` days).
    public func meanDailyBytes(minDays: Int) -> Double? {
        guard dailyBytes.count >= minDays else { return nil }
        return Double(dailyBytes.reduce(0, +)) / Double(dailyBytes.count)
    }

    static let ewma = 0.05

    /// Requests and bytes out in the sliding window ending at `now` (zero before any, or when the window's length
    /// changed since they were counted).
    public func windowTotals(at now: Double, seconds: Double) -> (requests: Int64, bytes: Int64) {
        guard let w = window, w.seconds == seconds else { return (0, 0) }
        return w.totals(at: now)
    }

    /// Learns from `e` (after the detectors have looked at it). `novelSegment`: whether `e`'s segment was new to the
    /// agent and its roles (``DetectionContext/isNovel(segment:)``), kept with the recent segments. `window`: the
    /// length of the sliding window in seconds (`risk.spike_window`).
    public mutating func learn(
        _ e: RiskEvent, novelSegment: Bool? = nil, novelSubject: Bool = false, window seconds: Double = 60
    ) {
        let now = e.time
        // Someone else's use of the agent's token teaches nothing about the agent.
        if e.kind == .tokenMisuse {
            // The time of the last one reported (the stolen-token detector reports one a minute at most): moved
            // only when a minute has passed, so that a steady stream of presentations is reported every minute.
            if lastTokenMisuse.map({ now - $0 >= Self.tokenMisuseInterval }) ?? true { lastTokenMisuse = now }
            return
        }
        lastSeen = max(lastSeen, now)
        if e.continuation {
            learnBytes(e.bytesOut, at: now, window: seconds, request: false)
            return
        }
        events += 1
        if e.allowed {
            resources.insert(e.resource)
            if let s = e.segment { segments.insert(s) }
            if let s = e.subject {
                subjects.insert(s)
                var m = served ?? SubjectMemory()
                m.insert(s)
                served = m
                if novelSubject {
                    var times = newSubjectTimes ?? []
                    times.append(now)
                    if times.count > 64 { times.removeFirst(times.count - 64) }
                    newSubjectTimes = times
                    newSubjects = (newSubjects ?? 0) + 1
                }
            }
            hourOfWeek[Self.hourOfWeek(now)] += 1
        }
        learnRequest(at: now)
        learnBytes(e.bytesOut, at: now, window: seconds, request: true)
        if !e.allowed || e.kind == .authFailure {
            recentDenials.append(now)
            if recentDenials.count > 64 { recentDenials.removeFirst(recentDenials.count - 64) }
        }
        if let s = e.segment {
            recentSegments.append(RecentSegment(time: now, segment: s, novel: novelSegment))
            if recentSegments.count > 16 { recentSegments.removeFirst(recentSegments.count - 16) }
        }
    }

    /// Closes the minutes that ended before `now` (silent ones count as zeros, at most a day's).
    mutating func roll(to now: Double) {
        let m = Int64(now / 60)
        guard m != minute else { return }
        if minute >= 0 {
            fold(minuteRequests, minuteBytes)
            let silent = min(max(m - minute - 1, 0), 1440)
            for _ in 0..<silent { fold(0, 0) }
        }
        minute = m
        minuteRequests = 0
        minuteBytes = 0
    }

    /// One request in the current minute.
    mutating func learnRequest(at now: Double) {
        roll(to: now)
        minuteRequests += 1
    }

    /// `bytes` out at `now`: in the minute, the sliding window (with the day's largest window), the hour and the day.
    /// `request`: whether they came with a request (the sliding window counts requests too).
    mutating func learnBytes(_ bytes: Int64, at now: Double, window seconds: Double, request: Bool) {
        roll(to: now)
        minuteBytes += Double(bytes)
        if window?.seconds != seconds { window = SlidingWindow(seconds: seconds) }
        window!.add(at: now, bytes: bytes, requests: request ? 1 : 0)
        let totals = window!.totals(at: now)
        var p = peaks ?? WindowPeaks()
        p.note(day: Int64(now / 86_400), requests: totals.requests, bytes: totals.bytes)
        peaks = p
        let h = Int64(now / 3600)
        let slot = Int(h % 24)
        if hourlyIndex[slot] != h {
            hourlyIndex[slot] = h
            hourlyBytes[slot] = 0
        }
        hourlyBytes[slot] += bytes
        let d = Int64(now / 86_400)
        if d != day {
            if day >= 0 {
                dailyBytes.append(dayBytes)
                let silent = min(max(d - day - 1, 0), 35)
                for _ in 0..<silent { dailyBytes.append(0) }
                if dailyBytes.count > 35 { dailyBytes.removeFirst(dailyBytes.count - 35) }
            }
            day = d
            dayBytes = 0
        }
        dayBytes += bytes
    }

    mutating func fold(_ requests: Double, _ bytes: Double) {
        if minutesObserved == 0 {
            meanRequestsPerMinute = requests
            meanBytesPerMinute = bytes
        } else {
            meanRequestsPerMinute += Self.ewma * (requests - meanRequestsPerMinute)
            meanBytesPerMinute += Self.ewma * (bytes - meanBytesPerMinute)
        }
        minutesObserved += 1
    }

    /// 0...167: hours since Monday 00:00 UTC.
    public static func hourOfWeek(_ t: Double) -> Int {
        // 1970-01-01 was a Thursday: day 0 is Thursday, so Monday is day 4.
        let hours = Int64(floor(t / 3600))
        let days = Int64(floor(t / 86_400))
        let weekday = Int(((days + 3) % 7 + 7) % 7)  // 0 = Monday
        return weekday * 24 + Int(((hours % 24) + 24) % 24)
    }
}

/// Requests and bytes out over the last `seconds`, in ``slots`` slots of `seconds / slots` each: the window slides
/// one slot at a time, whenever the traffic comes (a burst straddling a clock minute is judged whole). Fixed size.
public struct SlidingWindow: Sendable, Codable, Equatable {
    public static let slots = 60
    public let seconds: Double
    var stamps = [Int64](repeating: -1, count: SlidingWindow.slots)
    var requests = [Int64](repeating: 0, count: SlidingWindow.slots)
    var bytes = [Int64](repeating: 0, count: SlidingWindow.slots)

    public init(seconds: Double) { self.seconds = max(seconds, 1) }

    func slot(_ t: Double) -> Int64 { Int64((t / (seconds / Double(Self.slots))).rounded(.down)) }

    public mutating func add(at t: Double, bytes b: Int64, requests n: Int64 = 1) {
        let s = slot(t)
        let i = Int(((s % Int64(Self.slots)) + Int64(Self.slots)) % Int64(Self.slots))
        if stamps[i] != s {
            // An event older than the slot's current one (a late event): counted in the slot it would have reused
            // only if that slot is still its own; otherwise it falls outside the window.
            guard s > stamps[i] else { return }
            stamps[i] = s
            requests[i] = 0
            bytes[i] = 0
        }
        requests[i] += n
        bytes[i] += b
    }

    /// The totals of the slots within the window that ends at `t`.
    public func totals(at t: Double) -> (requests: Int64, bytes: Int64) {
        let s = slot(t)
        var r: Int64 = 0
        var b: Int64 = 0
        for i in 0..<Self.slots where stamps[i] > s - Int64(Self.slots) && stamps[i] <= s {
            r += requests[i]
            b += bytes[i]
        }
        return (r, b)
    }
}

/// The largest sliding window (requests, bytes out) of each of the last ``days`` days with traffic: what a burst
/// is compared with besides the mean, so that an agent's regular peaks (nightly batches, month-end runs) are not
/// spikes. Only completed days count (``before(day:)``): today's peak would include the burst being judged.
public struct WindowPeaks: Sendable, Codable, Equatable {
    public static let days = 35
    var entries: [Peak] = []

    struct Peak: Sendable, Codable, Equatable {
        var day: Int64
        var requests: Int64
        var bytes: Int64
    }

    public init() {}

    mutating func note(day: Int64, requests: Int64, bytes: Int64) {
        if let last = entries.last, last.day == day {
            entries[entries.count - 1].requests = max(last.requests, requests)
            entries[entries.count - 1].bytes = max(last.bytes, bytes)
        } else if entries.last.map({ day > $0.day }) ?? true {
            entries.append(Peak(day: day, requests: requests, bytes: bytes))
            if entries.count > Self.days { entries.removeFirst(entries.count - Self.days) }
        }
    }

    /// The largest window of the days before `day` (within the last ``days`` days).
    public func before(day: Int64) -> (requests: Int64, bytes: Int64) {
        var r: Int64 = 0
        var b: Int64 = 0
        for p in entries where p.day < day && p.day >= day - Int64(Self.days) {
            r = max(r, p.requests)
            b = max(b, p.bytes)
        }
        return (r, b)
    }
}

/// The users an agent (or a role) acted for most recently: at most ``capacity``, the oldest forgotten first, so a
/// growing population (new customers every day) keeps the recent ones known whatever its size.
public struct SubjectMemory: Sendable, Codable, Equatable {
    public static let capacity = 1024
    var order: [String] = []
    var next = 0
    var members: Set<String> = []

    public init() {}

    public func contains(_ s: String) -> Bool { members.contains(s) }

    public mutating func insert(_ s: String) {
        guard !members.contains(s) else { return }
        if order.count < Self.capacity {
            order.append(s)
        } else {
            members.remove(order[next])
            order[next] = s
            next = (next + 1) % Self.capacity
        }
        members.insert(s)
    }
}
