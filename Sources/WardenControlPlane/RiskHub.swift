import Cedar
import Foundation
import Logging
import Synchronization
import WardenAudit
import WardenCore
import WardenRisk

/// Where the gateway meets the risk engine: events go in without waiting, and the engine's responses come back as
/// state the gateway reads on the next request (throttles, approval requirements, token cut-offs) or as control-plane
/// changes (quarantine). With no engine attached, events are dropped and nothing else changes.
public final class RiskHub: Sendable {
    let engine = Mutex<RiskEngine?>(nil)
    /// agent SPIFFE ID → until (seconds since the epoch).
    let throttled = Mutex<[String: Double]>([:])
    let approvalRequired = Mutex<[String: Double]>([:])
    /// agent SPIFFE ID → the tokens the engine revoked (`Cutoff`).
    let tokenCutoffs = Mutex<[String: Cutoff]>([:])
    /// agent SPIFFE ID → the ids of the tokens issued to it in its latest second of issuance (bounded).
    let issuedInSecond = Mutex<[String: Issued]>([:])
    /// Token ids remembered per agent and second; beyond it, a revocation in that second takes all of its tokens.
    static let maxIssuedPerSecond = 256

    /// Tokens revoked by the engine: every one issued before `second`, and of those issued in `second` itself the
    /// ones issued before the revocation (`sameSecond`, or all of them when they were too many to remember). A token
    /// issued after the revocation, even in the same second, is good: a victim renews at once.
    struct Cutoff: Sendable {
        var second: Int64
        var sameSecond: Set<String>
        var wholeSecond: Bool
    }

    struct Issued: Sendable {
        var second: Int64
        var jtis: [String]
        var overflow: Bool
    }
    /// Live alert subscribers (`GET /v1/admin/risk/alerts`), bounded.
    let subscribers = Mutex<[UUID: AsyncStream<String>.Continuation]>([:])
    static let maxSubscribers = 64
    /// The alerts published (the last 10,000) and how many in all.
    let recent = Mutex<(lines: [String], total: Int)>(([], 0))
    /// Alerts waiting to be written to the audit log (``recordAlerts(_:)``), in the engine's order.
    let alertQueue: AsyncStream<PendingAlert>
    let alertContinuation: AsyncStream<PendingAlert>.Continuation
    let alertsQueued = Atomic<Int64>(0)
    let alertsDone = Atomic<Int64>(0)
    /// Alerts that could not be queued (more than ``alertQueueCapacity`` waiting) or written; counted and logged.
    package let alertsLost = Atomic<Int64>(0)
    static let alertQueueCapacity = 100_000

    /// An alert's audit entry before it is written, and where it goes once it has its sequence number.
    struct PendingAlert: Sendable {
        var event: AuditEvent
        var cause: AuditTicket?
        var notify: (@Sendable (String) -> Void)?
    }

    public init() {
        (alertQueue, alertContinuation) = AsyncStream.makeStream(
            of: PendingAlert.self, bufferingPolicy: .bufferingOldest(Self.alertQueueCapacity))
    }

    public func attach(_ e: RiskEngine) { engine.withLock { $0 = e } }
    public var attached: RiskEngine? { engine.withLock { $0 } }

    /// Hands an event to the engine (never waits; a full queue drops and counts).
    public func submit(_ e: RiskEvent) {
        guard let engine = engine.withLock({ $0 }) else { return }
        engine.submit(e)
    }

    /// The engine's signals for a call about to be decided (`context.risk`); with no engine attached, none (not
    /// ready, nothing new).
    package func signals(agentID: String, roles: [String], resource: String, segment: String?, now: Double)
        -> RiskEngine.Signals
    {
        guard let engine = engine.withLock({ $0 }) else { return RiskEngine.Signals() }
        return engine.signals(agentID: agentID, roles: roles, resource: resource, segment: segment, time: now)
    }

    package func isThrottled(_ agent: String, now: Double) -> Bool { Self.inForce(throttled, agent, now) }

    package func needsApproval(_ agent: String, now: Double) -> Bool { Self.inForce(approvalRequired, agent, now) }

    /// Whether the agent's entry in `table` is still in force (an expired one is removed).
    static func inForce(_ table: borrowing Mutex<[String: Double]>, _ agent: String, _ now: Double) -> Bool {
        table.withLock { t in
            guard let until = t[agent] else { return false }
            if until <= now {
                t.removeValue(forKey: agent)
                return false
            }
            return true
        }
    }

    /// Records a token issued to `agent` (the holder of its key), for cut-offs in the same second.
    func noteIssued(agent: String, issuedAt: Int64, jti: String) {
        issuedInSecond.withLock { all in
            var i = all[agent] ?? Issued(second: issuedAt, jtis: [], overflow: false)
            if i.second != issuedAt {
                guard issuedAt > i.second else { return }  // an older second: a cut-off there takes it whole anyway
                i = Issued(second: issuedAt, jtis: [], overflow: false)
            }
            if i.jtis.count < Self.maxIssuedPerSecond { i.jtis.append(jti) } else { i.overflow = true }
            all[agent] = i
        }
    }

    /// Revokes every token issued to `agent` so far (at `now`); tokens issued after this call are not affected.
    func cutOff(agent: String, now: Int64) {
        let issued = issuedInSecond.withLock { $0[agent] }
        let sameSecond = issued.flatMap { $0.second == now ? $0 : nil }
        tokenCutoffs.withLock { all in
            var c = Cutoff(
                second: now, sameSecond: Set(sameSecond?.jtis ?? []), wholeSecond: sameSecond?.overflow ?? false)
            // Issued in a later second than `now` (a clock that stepped back): those are taken whole.
            if let i = issued, i.second > now { c = Cutoff(second: i.second + 1, sameSecond: [], wholeSecond: false) }
            if let old = all[agent] {
                if old.second > c.second {
                    c = old
                } else if old.second == c.second {
                    c.sameSecond.formUnion(old.sameSecond)
                    c.wholeSecond = c.wholeSecond || old.wholeSecond
                }
            }
            all[agent] = c
        }
    }

    /// The second of the engine's latest cut-off for `agent`, if any.
    func cutOffSecond(_ agent: String) -> Int64? { tokenCutoffs.withLock { $0[agent]?.second } }

    /// Whether the engine revoked the token `jti` of `agent`, issued at `issuedAt`.
    func isCutOff(agent: String, issuedAt: Int64, jti: String) -> Bool {
        guard let c = tokenCutoffs.withLock({ $0[agent] }) else { return false }
        if issuedAt < c.second { return true }
        return issuedAt == c.second && (c.wholeSecond || c.sameSecond.contains(jti))
    }

    // MARK: Alerts as records

    /// Queues an alert's audit entry (the engine never waits for the log).
    func queue(_ alert: PendingAlert) {
        if case .enqueued = alertContinuation.yield(alert) {
            alertsQueued.add(1, ordering: .relaxed)
        } else {
            alertsLost.add(1, ordering: .relaxed)
        }
    }

    /// Alerts queued and not yet written and published.
    package var alertsPending: Int64 { alertsQueued.load(ordering: .relaxed) - alertsDone.load(ordering: .relaxed) }

    /// Writes the queued alerts to `audit`, one at a time in the engine's order, and publishes each with its id (its
    /// entry's sequence number) to the live stream and the webhook; until ``finishAlerts()`` (or cancellation). An
    /// alert names the triggering call's entry (`cause_seq`): written before the alert was raised, it is in the log
    /// once the entries queued before have been (one flush when its number is not known yet).
    package func recordAlerts(_ audit: AuditLog, logger: Logger) async {
        for await pending in alertQueue {
            defer { alertsDone.add(1, ordering: .relaxed) }
            var event = pending.event
            if let cause = pending.cause {
                if cause.seq == nil { await audit.flush() }
                if let seq = cause.seq { event.details.append(("cause_seq", String(seq))) }
            }
            do {
                let seq = try await audit.record(event)
                guard
                    let line = try audit.entries(after: seq - 1, limit: 1).first.flatMap({ Self.alert(fromEntry: $0.1) }
                    )
                else { continue }
                let text = line.serialized
                publish(text)
                pending.notify?(text)
            } catch {
                alertsLost.add(1, ordering: .relaxed)
                logger.error("a risk alert could not be written to the audit log", metadata: ["error": "\(error)"])
            }
        }
    }

    /// Ends ``recordAlerts(_:logger:)`` once the alerts queued so far are written.
    package func finishAlerts() { alertContinuation.finish() }

    /// Runs `engine`'s consumer and the alert recorder until the engine stops (or the task is cancelled); then the
    /// alerts already queued are written. For embedded servers and tests; `warden serve` runs the two in its risk
    /// service.
    package func run(_ engine: RiskEngine, audit: AuditLog, logger: Logger = Logger(label: "warden.risk")) async {
        async let alerts: Void = recordAlerts(audit, logger: logger)
        await engine.run()
        finishAlerts()
        await alerts
    }

    /// Waits (bounded, about two seconds) until `engine` has processed every event handed over and every alert it
    /// raised is written and published; whether it got there.
    @discardableResult
    package func settle(_ engine: RiskEngine) async -> Bool {
        for _ in 0..<2000 {
            if engine.pending == 0 && alertsPending == 0 { return true }
            try? await Task.sleep(for: .milliseconds(1))
        }
        return false
    }

    /// The alert record of a `risk.alert` audit entry (the live stream, the webhook and the paged API all give this
    /// shape): `id` (the entry's sequence number), `time`, `agent` (or `source:<ip>`), `severity`, `trust`,
    /// `resource`, `findings` [{detector, severity, summary, evidence}], `actions`, `event_time`, `containment_ms`,
    /// `cause_seq`. Nil for any other entry.
    package static func alert(fromEntry text: String) -> JSONValue? {
        guard let entry = try? JSONValue.parse(text), entry["action"]?.stringValue == "risk.alert",
            case .object(let detailPairs)? = entry["details"]
        else { return nil }
        let details = Dictionary(detailPairs, uniquingKeysWith: { a, _ in a })
        func number(_ key: String) -> JSONValue? {
            guard let s = details[key]?.stringValue, Double(s) != nil else { return nil }
            return .number(s)
        }
        let agent = entry["agent"]?.stringValue ?? entry["source"]?.stringValue.map { "source:" + $0 } ?? ""
        var pairs: [(String, JSONValue)] = [
            ("id", entry["seq"] ?? .null), ("time", entry["time"] ?? .null), ("agent", .string(agent)),
            ("severity", details["severity"] ?? .null),
        ]
        if let trust = entry["trust"] { pairs.append(("trust", trust)) }
        pairs.append(("resource", entry["resource"] ?? .string("")))
        let findings: [JSONValue] = detailPairs.compactMap { k, v in
            guard k.hasPrefix("finding."), let text = v.stringValue, case .object(var f)? = try? JSONValue.parse(text)
            else { return nil }
            f.insert(("detector", .string(String(k.dropFirst(8)))), at: 0)
            return .object(f)
        }
        pairs.append(("findings", .array(findings)))
        let actions = details["actions"]?.stringValue.map {
            $0.split(separator: ",").map { JSONValue.string(String($0)) }
        }
        pairs.append(("actions", .array(actions ?? [])))
        for key in ["event_time", "containment_ms", "cause_seq"] {
            if let n = number(key) { pairs.append((key, n)) }
        }
        return .object(pairs)
    }

    /// A page of alert records from the audit log: those with an id above `after`, at most `limit`, and the id to
    /// ask after next (the last one read, or `after` when there were none).
    package static func alerts(in audit: AuditLog, after: Int64, limit: Int) throws(WardenError) -> (
        alerts: [JSONValue], next: Int64
    ) {
        var q = AuditLog.Query()
        q.action = "risk.alert"
        q.after = max(0, after)
        q.limit = max(1, min(limit, 1000))
        let rows = try audit.query(q)
        return (rows.compactMap { alert(fromEntry: $0.1) }, rows.last?.0 ?? after)
    }

    /// A new subscriber to the alert stream (JSON lines); nil when there are too many.
    package func subscribe() -> (UUID, AsyncStream<String>)? {
        let (stream, continuation) = AsyncStream.makeStream(of: String.self, bufferingPolicy: .bufferingNewest(256))
        let id = UUID()
        let ok = subscribers.withLock { s -> Bool in
            guard s.count < Self.maxSubscribers else { return false }
            s[id] = continuation
            return true
        }
        guard ok else { return nil }
        // An empty element every `heartbeat`: the route writes an SSE comment, so that a quiet stream is not taken
        // for a dead one by clients and proxies with read timeouts.
        let interval = Duration.milliseconds(heartbeatMillis.load(ordering: .relaxed))
        let beat = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: interval)
                if case .terminated = continuation.yield("") { return }
            }
        }
        continuation.onTermination = { [weak self] _ in
            beat.cancel()
            self?.subscribers.withLock { _ = $0.removeValue(forKey: id) }
        }
        return (id, stream)
    }

    /// Ends the subscriber's stream (at shutdown, so that an open alert stream lets the listener drain).
    package func unsubscribe(_ id: UUID) {
        subscribers.withLock { $0.removeValue(forKey: id) }?.finish()
    }

    /// How often a quiet alert stream carries a keep-alive comment, milliseconds (tests shorten it).
    let heartbeatMillis = Atomic<Int64>(15_000)

    func publish(_ line: String) {
        recent.withLock { r in
            r.lines.append(line)
            r.total += 1
            if r.lines.count > 10_000 { r.lines.removeFirst(r.lines.count - 10_000) }
        }
        for c in subscribers.withLock({ Array($0.values) }) { c.yield(line) }
    }

    /// The last 100 alerts.
    package var recentAlerts: [String] { recent.withLock { Array($0.lines.suffix(100)) } }

    /// How many alerts were published so far.
    public var recentAlertCount: Int { recent.withLock { $0.total } }

    /// The alerts published after the first `mark` (those still kept), parsed.
    public func alertsSince(_ mark: Int) -> [JSONValue] {
        let lines = recent.withLock { r -> [String] in
            let first = r.total - r.lines.count
            return Array(r.lines.suffix(max(0, min(r.lines.count, r.total - max(mark, first)))))
        }
        return lines.compactMap { try? JSONValue.parse($0) }
    }
}

/// The engine's responses, carried out on the control plane: every one applies to the agent's next request.
package final class ControlPlaneRiskActions: RiskActions {
    let cp: ControlPlane
    let logger: Logger
    /// Where an alert's JSON line goes besides the audit log and the alert stream (the server's webhook).
    let notify: (@Sendable (String) -> Void)?

    package init(cp: ControlPlane, notify: (@Sendable (String) -> Void)? = nil) {
        self.cp = cp
        var logger = Logger(label: "warden.risk")
        logger.logLevel = .info
        self.logger = logger
        self.notify = notify
    }

    package func setTrust(agentID: String, score: Int?) {
        guard let entry = cp.agents.entry(agentID) else { return }
        cp.trust.set(entry.record.id, score)
    }

    package func baselineTrust(agentID: String) -> Int {
        cp.agents.entry(agentID).map { TrustScores.baseline($0.record) } ?? 0
    }

    package func throttle(agentID: String, until: Double) { cp.risk.throttled.withLock { $0[agentID] = until } }

    package func requireApproval(agentID: String, until: Double) {
        cp.risk.approvalRequired.withLock { $0[agentID] = until }
    }

    /// Not an error to skip, but not containment either: only an active agent is quarantined (a source address or a
    /// refused enrollment has nothing to contain).
    struct NothingToContain: Error {}

    package func quarantine(agentID: String, reason: String) throws {
        guard let entry = cp.agents.entry(agentID), entry.record.state == .active else { throw NothingToContain() }
        _ = try cp.transition(agent: entry.record.id, to: .quarantined, reason: reason, actor: "risk-engine")
    }

    package func revokeTokens(agentID: String, reason: String) throws {
        guard let entry = cp.agents.entry(agentID), entry.record.state != .pending else { throw NothingToContain() }
        cp.risk.cutOff(agent: agentID, now: cp.now())
        try? cp.audit.submit(
            AuditEvent(
                kind: .system, action: "token.revoke_all", actor: "risk-engine", agent: agentID,
                agentID: cp.agents.entry(agentID)?.record.id, reason: "risk", message: String(reason.prefix(500))))
    }

    /// The alert becomes a `risk.alert` audit entry, written in order by ``RiskHub/recordAlerts(_:logger:)``; once
    /// written it is published with its sequence number as its id (live stream, webhook). Each finding is a detail
    /// `finding.<detector>` holding {severity, summary, evidence}.
    package func alert(_ a: RiskAlert) {
        let entry = cp.agents.entry(a.agentID)
        let summary = a.findings.map { "\($0.detector): \($0.summary)" }.joined(separator: "; ")
        var details: [(String, String)] = [
            ("severity", a.severity.name), ("detectors", a.findings.map(\.detector).joined(separator: ",")),
            ("actions", a.actions.map(\.rawValue).joined(separator: ",")),
        ]
        if let ms = a.containmentMillis { details.append(("containment_ms", String(format: "%.1f", ms))) }
        details.append(("event_time", String(format: "%.6f", a.eventTime)))
        for f in a.findings {
            let evidence = JSONValue.object(f.evidence.map { ($0.name, .number(Self.figure($0.value))) })
            details.append(
                (
                    "finding.\(f.detector)",
                    JSONValue.object([
                        ("severity", .string(f.severity.name)), ("summary", .string(String(f.summary.prefix(600)))),
                        ("evidence", evidence),
                    ]).serialized
                ))
        }
        // An alert about a source address (refusals that named no agent) names the address, not an agent: the audit
        // entry's `agent` is always a SPIFFE ID.
        let source = a.agentID.hasPrefix("source:") ? String(a.agentID.dropFirst(7)) : nil
        cp.risk.queue(
            RiskHub.PendingAlert(
                event: AuditEvent(
                    kind: .system, action: "risk.alert", actor: "risk-engine", agent: source == nil ? a.agentID : nil,
                    agentID: entry?.record.id, resource: a.resource, reason: a.findings.first?.detector,
                    trust: source == nil ? a.trust : nil, source: source, message: String(summary.prefix(1000)),
                    details: details),
                cause: a.cause, notify: notify))
        if a.severity >= .medium {
            logger.warning("risk alert", metadata: ["agent": "\(a.agentID)", "alert": "\(summary)"])
        }
    }

    /// A figure as JSON number text: whole numbers without a fraction, others to three places.
    static func figure(_ x: Double) -> String {
        guard x.isFinite else { return "0" }
        if x == x.rounded(), abs(x) < 1e15 { return String(Int64(x)) }
        return String(format: "%.3f", x)
    }
}
