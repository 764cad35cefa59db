import Foundation
import Synchronization
import WardenAudit
import WardenCore

/// Per-source limits on what anyone can make Warden do without credentials, and the aggregation of the refusals that
/// name no agent (`limits.unauthenticated`, `limits.enroll`, `limits.token`).
///
/// - A source whose unauthenticated refusals exhaust their bucket is answered 429 before any signature is checked,
///   until the bucket refills (an address behind which agents and an attacker share a NAT is slowed with it: the
///   refusals are what is limited).
/// - Enrollment and token requests are limited per source whatever their outcome (join-token guessing, assertion
///   stuffing).
/// - A refusal that names no agent is counted in a summary per source and window (one durable audit entry
///   `refusals.summary` per source and minute, with the count by reason), not written one by one: one client can no
///   longer fill the disk with garbage tokens. Every refusal that names an agent is still recorded on its own.
public final class SourceGuard: Sendable {
    /// The per-source rates.
    public struct Limits: Sendable, Hashable {
        public var unauthenticated = RateLimit(perSecond: 5, burst: 50)
        public var enroll = RateLimit(perSecond: 1, burst: 20)
        public var token = RateLimit(perSecond: 20, burst: 100)
        public init() {}
    }

    struct Summary {
        var count = 0
        var reasons: [String: Int] = [:]
        var first: Int64
        var last: Int64
    }

    public let limits: Limits
    let limiter: RateLimiter
    let summaries = Mutex<[String: Summary]>([:])
    /// Sources summarised at once; beyond it, refusals are summarised under `other`.
    static let maxSources = 10_000
    /// Seconds a summary collects before it is written.
    static let window: Int64 = 60
    /// Unattributed refusals counted (all of them, recorded or summarised), and those answered 429 by this guard.
    let refusals = Atomic<Int>(0)
    let limited = Atomic<Int>(0)

    public init(limits: Limits = Limits(), clock: any WardenClock = SystemClock()) {
        self.limits = limits
        self.limiter = RateLimiter(capacity: 100_000, clock: clock)
    }

    /// The key an address is counted under: an IPv4 address as it is (an IPv4-mapped IPv6 address as its IPv4
    /// address), an IPv6 address by its /64 (one host usually has a whole /64), anything else as it is.
    public static func key(_ source: String?) -> String {
        guard let source else { return "unknown" }
        if source.hasPrefix("::ffff:"), source.utf8.contains(UInt8(ascii: ".")) {
            return String(source.dropFirst(7))
        }
        guard source.utf8.contains(UInt8(ascii: ":")) else { return source }
        var bytes = [UInt8](repeating: 0, count: 16)
        guard inet_pton(AF_INET6, source, &bytes) == 1 else { return source }
        let hex = stride(from: 0, to: 8, by: 2).map {
            String(UInt16(bytes[$0]) << 8 | UInt16(bytes[$0 + 1]), radix: 16)
        }
        return hex.joined(separator: ":") + "::/64"
    }

    /// Seconds to wait when `source` has used up its unauthenticated refusals; nil when it may go on.
    public func blocked(_ source: String?) -> Double? {
        guard let wait = limiter.peek("unauth|" + Self.key(source), limits.unauthenticated) else { return nil }
        limited.add(1, ordering: .relaxed)
        return wait
    }

    /// Takes one request from `source`'s bucket for an endpoint (`enroll`, `token`); the wait when it is empty.
    public func take(_ endpoint: String, _ source: String?) -> Double? {
        let limit = endpoint == "enroll" ? limits.enroll : limits.token
        let wait = limiter.take(endpoint + "|" + Self.key(source), limit)
        if wait != nil { limited.add(1, ordering: .relaxed) }
        return wait
    }

    /// Counts an unattributed refusal from `source` in its summary and, unless it is this guard's own 429
    /// (`rate_limited`: a limit already spent, which must not spend another), against its bucket.
    public func refused(_ source: String?, reason: String, now: Int64) {
        refusals.add(1, ordering: .relaxed)
        let key = Self.key(source)
        if reason != "rate_limited" { _ = limiter.take("unauth|" + key, limits.unauthenticated) }
        summaries.withLock { all in
            let k = all[key] != nil || all.count < Self.maxSources ? key : "other"
            var s = all[k] ?? Summary(first: now, last: now)
            s.count += 1
            s.last = now
            if s.reasons.count < 32 || s.reasons[reason] != nil { s.reasons[reason, default: 0] += 1 }
            all[k] = s
        }
    }

    /// The summaries whose window has ended by `now` (all of them with `all`), by source; they are removed.
    func due(now: Int64, all: Bool = false) -> [(String, Summary)] {
        summaries.withLock { s -> [(String, Summary)] in
            let ended = s.filter { all || now - $0.value.first >= Self.window }
            for (k, _) in ended { s[k] = nil }
            return ended.sorted { $0.key < $1.key }
        }
    }

    /// Puts back a summary that could not be written, merged with what was counted since.
    func requeue(_ source: String, _ summary: Summary) {
        summaries.withLock { all in
            guard var s = all[source] else {
                all[source] = summary
                return
            }
            s.count += summary.count
            s.first = min(s.first, summary.first)
            for (reason, n) in summary.reasons where s.reasons.count < 32 || s.reasons[reason] != nil {
                s.reasons[reason, default: 0] += n
            }
            all[source] = s
        }
    }

    /// The audit entry of one source's summary.
    static func event(source: String, _ s: Summary) -> AuditEvent {
        let reasons = s.reasons.sorted { $0.key < $1.key }.map { "\($0.key):\($0.value)" }.joined(separator: ",")
        return AuditEvent(
            kind: .decision, action: "refusals.summary", actor: "unauthenticated", resource: "source:" + source,
            decision: .deny, reason: "unauthenticated", source: source == "other" ? nil : source,
            message: "\(s.count) refusals naming no agent",
            details: [
                ("count", String(s.count)), ("reasons", reasons), ("first", String(s.first)), ("last", String(s.last)),
            ])
    }

    public var refusalCount: Int { refusals.load(ordering: .relaxed) }
    public var limitedCount: Int { limited.load(ordering: .relaxed) }
}
