import Cedar
import Foundation
import Synchronization

/// Where an audit entry landed: the log sets its sequence number once the entry is committed, so that what follows
/// from it (a risk alert about the call) can name it. Nil before (and for an entry whose batch failed).
public final class AuditTicket: Sendable {
    let cell = Atomic<Int64>(0)

    public init() {}

    public var seq: Int64? {
        let n = cell.load(ordering: .acquiring)
        return n > 0 ? n : nil
    }

    package func set(_ seq: Int64) { cell.store(seq, ordering: .releasing) }
}

/// One audit record before it enters the log: an authorization decision, an operator's action, an agent's lifecycle
/// step or a system action. The log assigns `seq` and `time` and stores the entry as one line of JSON whose bytes are
/// what the hash chain and the Merkle tree cover (format: `docs/audit.md`).
///
/// Bodies and tool arguments are recorded as digests (`requestDigest`), never verbatim; secrets never.
public struct AuditEvent: Sendable, Hashable {
    public enum Kind: String, Sendable, Hashable, CaseIterable {
        case decision, admin, lifecycle, system
    }

    public enum Decision: String, Sendable, Hashable {
        case allow, deny
    }

    public var kind: Kind
    /// What was attempted: `token.issue`, `call`, `agent.register`, `key.rotate`, ...
    public var action: String
    /// Who acted: a SPIFFE ID, `admin`, `agent`, `system`.
    public var actor: String
    /// The SPIFFE ID of the agent concerned.
    public var agent: String?
    public var agentID: String?
    public var resource: String?
    public var decision: Decision?
    /// The reason code of a denial (`policy_denied`, `invalid_token`, ...).
    public var reason: String?
    public var policies: [String]
    public var trust: Int?
    public var delegation: [String]
    /// `sha256:<hex>` of the request.
    public var requestDigest: String?
    public var latencyMicros: Int64?
    public var source: String?
    public var message: String?
    public var details: [(String, String)]
    /// Told the entry's sequence number when it is appended (not part of the entry).
    public var ticket: AuditTicket?

    public init(
        kind: Kind, action: String, actor: String, agent: String? = nil, agentID: String? = nil,
        resource: String? = nil, decision: Decision? = nil, reason: String? = nil, policies: [String] = [],
        trust: Int? = nil, delegation: [String] = [], requestDigest: String? = nil, latencyMicros: Int64? = nil,
        source: String? = nil, message: String? = nil, details: [(String, String)] = []
    ) {
        self.kind = kind
        self.action = action
        self.actor = actor
        self.agent = agent
        self.agentID = agentID
        self.resource = resource
        self.decision = decision
        self.reason = reason
        self.policies = policies
        self.trust = trust
        self.delegation = delegation
        self.requestDigest = requestDigest
        self.latencyMicros = latencyMicros
        self.source = source
        self.message = message
        self.details = details
    }

    public static func == (a: AuditEvent, b: AuditEvent) -> Bool {
        a.entryJSON(seq: 0, time: 0) == b.entryJSON(seq: 0, time: 0)
    }

    public func hash(into h: inout Hasher) { h.combine(entryJSON(seq: 0, time: 0)) }

    /// Longest accepted value of a free-text field (`message`, a detail); longer text is cut, marked with `…`.
    public static let maxTextBytes = 2048

    /// The stored entry: one line of JSON, keys in the documented order, absent values omitted. `time` is in
    /// microseconds since the Unix epoch.
    public func entryJSON(seq: Int64, time: Int64) -> String {
        var out = "{\"seq\":\(seq),\"time\":"
        JSONValue.writeString(Self.rfc3339(micros: time), to: &out)
        func field(_ key: String, _ value: String?) {
            guard let value else { return }
            out += ",\"\(key)\":"
            JSONValue.writeString(Self.bounded(value), to: &out)
        }
        func list(_ key: String, _ values: [String]) {
            guard !values.isEmpty else { return }
            out += ",\"\(key)\":["
            for (i, v) in values.prefix(Self.maxListItems).enumerated() {
                if i > 0 { out += "," }
                JSONValue.writeString(Self.bounded(v), to: &out)
            }
            out += "]"
        }
        field("kind", kind.rawValue)
        field("action", action)
        field("actor", actor)
        field("agent", agent)
        field("agent_id", agentID)
        field("resource", resource)
        field("decision", decision?.rawValue)
        field("reason", reason)
        list("policies", policies)
        if let trust { out += ",\"trust\":\(trust)" }
        list("delegation", delegation)
        field("request_digest", requestDigest)
        if let latencyMicros { out += ",\"latency_us\":\(latencyMicros)" }
        field("source", source)
        field("message", message)
        if !details.isEmpty {
            out += ",\"details\":{"
            for (i, (k, v)) in details.prefix(Self.maxListItems).enumerated() {
                if i > 0 { out += "," }
                JSONValue.writeString(Self.bounded(k), to: &out)
                out += ":"
                JSONValue.writeString(Self.bounded(v), to: &out)
            }
            out += "}"
        }
        out += "}"
        return out
    }

    static func bounded(_ s: String) -> String {
        guard s.utf8.count > maxTextBytes else { return s }
        var cut = s.utf8.prefix(maxTextBytes - 3)
        while String(cut) == nil { cut = cut.dropLast() }
        return String(cut)! + "…"
    }

    /// `2026-11-24T10:00:00.123456Z` for microseconds since the epoch (years 0...9999).
    public static func rfc3339(micros: Int64) -> String {
        let seconds = micros >= 0 ? micros / 1_000_000 : (micros - 999_999) / 1_000_000
        let fraction = micros - seconds * 1_000_000
        let days = seconds >= 0 ? seconds / 86_400 : (seconds - 86_399) / 86_400
        let secondOfDay = seconds - days * 86_400
        let (year, month, day) = CedarDatetime.civilFromDays(days)
        var out = [UInt8](repeating: 0, count: 27)
        func put(_ value: Int64, at start: Int, width: Int) {
            var v = max(0, value)
            for i in stride(from: start + width - 1, through: start, by: -1) {
                out[i] = UInt8(48 + v % 10)
                v /= 10
            }
        }
        put(year, at: 0, width: 4)
        put(month, at: 5, width: 2)
        put(day, at: 8, width: 2)
        put(secondOfDay / 3600, at: 11, width: 2)
        put(secondOfDay / 60 % 60, at: 14, width: 2)
        put(secondOfDay % 60, at: 17, width: 2)
        put(fraction, at: 20, width: 6)
        for (i, c) in [(4, "-"), (7, "-"), (10, "T"), (13, ":"), (16, ":"), (19, "."), (26, "Z")] as [(Int, Character)]
        {
            out[i] = c.asciiValue!
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Microseconds since the epoch for an RFC 3339 time (`Z` or a numeric offset, optional fraction), or nil.
    public static func parseRFC3339(_ text: String) -> Int64? {
        let b = Array(text.utf8)
        guard b.count >= 20, b.count <= 40 else { return nil }
        func num(_ from: Int, _ len: Int) -> Int64? {
            guard from + len <= b.count else { return nil }
            var v: Int64 = 0
            for c in b[from..<(from + len)] {
                guard c >= 48 && c <= 57 else { return nil }
                v = v * 10 + Int64(c - 48)
            }
            return v
        }
        guard let y = num(0, 4), b[4] == 45, let mo = num(5, 2), b[7] == 45, let d = num(8, 2),
            b[10] == 84 || b[10] == 116, let h = num(11, 2), b[13] == 58, let mi = num(14, 2), b[16] == 58,
            let s = num(17, 2), (1...12).contains(mo), d >= 1, d <= CedarDatetime.daysInMonth(year: y, month: mo),
            h < 24, mi < 60, s < 60
        else { return nil }
        var i = 19
        var micros: Int64 = 0
        if i < b.count && b[i] == 46 {
            i += 1
            var digits = 0
            while i < b.count, b[i] >= 48, b[i] <= 57 {
                if digits < 6 { micros = micros * 10 + Int64(b[i] - 48) }
                digits += 1
                i += 1
            }
            guard digits > 0 else { return nil }
            if digits < 6 { for _ in digits..<6 { micros *= 10 } }
        }
        guard i < b.count else { return nil }
        var offset: Int64 = 0
        if b[i] == 90 || b[i] == 122 {
            i += 1
        } else if b[i] == 43 || b[i] == 45, let oh = num(i + 1, 2), b.count > i + 3, b[i + 3] == 58,
            let om = num(i + 4, 2), oh < 24, om < 60
        {
            offset = (oh * 60 + om) * 60 * (b[i] == 43 ? 1 : -1)
            i += 6
        } else {
            return nil
        }
        guard i == b.count else { return nil }
        let secs = CedarDatetime.daysFromCivil(year: y, month: mo, day: d) * 86_400 + h * 3600 + mi * 60 + s - offset
        return secs * 1_000_000 + micros
    }

    /// Most items kept in a list field (`policies`, `delegation`, `details`); the rest are dropped.
    public static let maxListItems = 64
}
