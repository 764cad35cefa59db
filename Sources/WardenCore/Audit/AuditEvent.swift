import Cedar
import Foundation

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
            for (i, v) in values.enumerated() {
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
            for (i, (k, v)) in details.enumerated() {
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

    /// `2026-11-24T10:00:00.123456Z` for microseconds since the epoch.
    public static func rfc3339(micros: Int64) -> String {
        let seconds = micros >= 0 ? micros / 1_000_000 : (micros - 999_999) / 1_000_000
        let fraction = micros - seconds * 1_000_000
        var t = time_t(seconds)
        var parts = tm()
        gmtime_r(&t, &parts)
        func pad(_ v: Int32, _ width: Int) -> String {
            let s = String(v)
            return String(repeating: "0", count: max(0, width - s.count)) + s
        }
        let frac = String(fraction)
        return "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1, 2))-\(pad(parts.tm_mday, 2))T"
            + "\(pad(parts.tm_hour, 2)):\(pad(parts.tm_min, 2)):\(pad(parts.tm_sec, 2))."
            + String(repeating: "0", count: 6 - frac.count) + frac + "Z"
    }

    /// Microseconds since the epoch for an RFC 3339 time (`Z` or a numeric offset, optional fraction), or nil.
    public static func parseRFC3339(_ text: String) -> Int64? {
        let b = Array(text.utf8)
        guard b.count >= 20, b.count <= 40 else { return nil }
        func num(_ from: Int, _ len: Int) -> Int? {
            guard from + len <= b.count else { return nil }
            var v = 0
            for c in b[from..<(from + len)] {
                guard c >= 48 && c <= 57 else { return nil }
                v = v * 10 + Int(c - 48)
            }
            return v
        }
        guard let y = num(0, 4), b[4] == 45, let mo = num(5, 2), b[7] == 45, let d = num(8, 2),
            b[10] == 84 || b[10] == 116, let h = num(11, 2), b[13] == 58, let mi = num(14, 2), b[16] == 58,
            let s = num(17, 2), (1...12).contains(mo), (1...31).contains(d), h < 24, mi < 60, s < 61
        else { return nil }
        var i = 19
        var micros = 0
        if i < b.count && b[i] == 46 {
            i += 1
            var digits = 0
            while i < b.count, b[i] >= 48, b[i] <= 57 {
                if digits < 6 { micros = micros * 10 + Int(b[i] - 48) }
                digits += 1
                i += 1
            }
            guard digits > 0 else { return nil }
            if digits < 6 { for _ in digits..<6 { micros *= 10 } }
        }
        guard i < b.count else { return nil }
        var offset = 0
        if b[i] == 90 || b[i] == 122 {
            i += 1
        } else if b[i] == 43 || b[i] == 45, let oh = num(i + 1, 2), b.count > i + 3, b[i + 3] == 58,
            let om = num(i + 4, 2)
        {
            offset = (oh * 60 + om) * 60 * (b[i] == 43 ? 1 : -1)
            i += 6
        } else {
            return nil
        }
        guard i == b.count else { return nil }
        // Days from civil (Howard Hinnant's algorithm).
        let yy = mo <= 2 ? y - 1 : y
        let era = (yy >= 0 ? yy : yy - 399) / 400
        let yoe = yy - era * 400
        let doy = (153 * (mo + (mo > 2 ? -3 : 9)) + 2) / 5 + d - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        let days = era * 146097 + doe - 719468
        let secs = Int64(days) * 86400 + Int64(h * 3600 + mi * 60 + min(s, 59)) - Int64(offset)
        return secs * 1_000_000 + Int64(micros)
    }
}
