import Foundation
import Synchronization
import WardenCore

/// What a response playbook can do. Implemented by the control plane (`ControlPlaneRiskActions` in
/// `WardenControlPlane`); every action takes effect
/// on the agent's next request.
public protocol RiskActions: Sendable {
    /// The trust score policies see (`context.trust`); nil returns it to its attestation baseline.
    func setTrust(agentID: String, score: Int?)
    /// The score an agent's attestation earns (the start and the ceiling of recovery).
    func baselineTrust(agentID: String) -> Int
    /// An alert: recorded in the audit log and sent to the alert subscribers.
    func alert(_ alert: RiskAlert)
    /// Lower the agent's request rate until `until` (seconds since the epoch).
    func throttle(agentID: String, until: Double)
    /// Every MCP tool call of the agent needs a human's approval until `until`.
    func requireApproval(agentID: String, until: Double)
    func quarantine(agentID: String, reason: String) throws
    /// Revoke every token the agent holds.
    func revokeTokens(agentID: String, reason: String) throws
}

public enum ResponseAction: String, Sendable, Hashable, CaseIterable {
    case log, alert, approval, throttle, quarantine, revoke
}

/// What each severity triggers (`risk.playbooks` in `warden.yaml`), and the detectors with a playbook of their own.
public struct Playbooks: Sendable, Hashable {
    public var low: [ResponseAction] = [.log]
    public var medium: [ResponseAction] = [.alert, .throttle]
    public var high: [ResponseAction] = [.alert, .quarantine, .revoke]
    /// Per detector, instead of its finding's severity's. By default a stolen token revokes the agent's tokens and
    /// alerts, but does not quarantine the agent: whoever holds a stolen token could otherwise switch its victim off.
    public var byDetector: [String: [ResponseAction]] = ["stolen_token": [.alert, .revoke]]

    public init() {}

    public func actions(_ s: Severity) -> [ResponseAction] {
        switch s {
        case .low: low
        case .medium: medium
        case .high: high
        }
    }

    /// The actions for a set of findings: the union of each finding's playbook, in the order of ``ResponseAction``.
    public func actions(for findings: [Finding]) -> [ResponseAction] {
        var wanted = Set<ResponseAction>()
        for f in findings { wanted.formUnion(byDetector[f.detector] ?? actions(f.severity)) }
        return ResponseAction.allCases.filter { wanted.contains($0) }
    }
}

/// The thresholds and playbooks the engine judges and responds with.
public struct RiskTuning: Sendable, Hashable {
    public var settings: RiskSettings
    public var playbooks: Playbooks

    public init(settings: RiskSettings = RiskSettings(), playbooks: Playbooks = Playbooks()) {
        self.settings = settings
        self.playbooks = playbooks
    }
}

/// The global tuning and the tunings of particular agents (by name) and roles (`risk.agents`, `risk.roles`): an
/// agent's own, else the first of its roles (in its manifest's order) that has one, else the global one.
public struct RiskTunings: Sendable, Hashable {
    public var global: RiskTuning
    public var roles: [String: RiskTuning]
    public var agents: [String: RiskTuning]

    public init(
        global: RiskTuning = RiskTuning(), roles: [String: RiskTuning] = [:], agents: [String: RiskTuning] = [:]
    ) {
        self.global = global
        self.roles = roles
        self.agents = agents
    }

    /// The tuning for `agentID` (a SPIFFE ID `spiffe://<domain>/agent/<name>`, or a source) in `roles`.
    public func tuning(agentID: String, roles agentRoles: [String]) -> RiskTuning {
        if roles.isEmpty && agents.isEmpty { return global }
        if !agents.isEmpty, let slash = agentID.range(of: "/agent/", options: .backwards),
            agentID.hasPrefix("spiffe://"),
            let own = agents[String(agentID[slash.upperBound...])]
        {
            return own
        }
        for role in agentRoles { if let t = roles[role] { return t } }
        return global
    }

    /// Where the tuning of `agentID` in `roles` comes from: `agent <name>`, `role <name>` or `global`.
    public func origin(agentID: String, roles agentRoles: [String]) -> String {
        if let slash = agentID.range(of: "/agent/", options: .backwards), agentID.hasPrefix("spiffe://") {
            let name = String(agentID[slash.upperBound...])
            if agents[name] != nil { return "agent \(name)" }
        }
        for role in agentRoles where roles[role] != nil { return "role \(role)" }
        return "global"
    }
}

/// An alert: the agent, what was found, what was done, and how long from the event to enforcement.
public struct RiskAlert: Sendable {
    public let agentID: String
    public let findings: [Finding]
    public let severity: Severity
    public let actions: [ResponseAction]
    public let trust: Int
    public let eventTime: Double
    /// From the triggering event to the containment action in force (quarantine or revocation), milliseconds.
    public let containmentMillis: Double?
    public let resource: String
    /// The triggering call's audit entry, when it has one.
    public var cause: AuditTicket?
}

/// The trust score: the attestation's baseline minus the penalties of findings (by severity), recovering slowly over
/// clean time.
public struct TrustModel: Sendable, Hashable {
    public var penalty: [Severity: Int] = [.low: 5, .medium: 15, .high: 40]
    /// Per detector, instead of its severity's. A stolen token costs its agent 15 points, not 40: the finding is
    /// about the token's holder, and a thief must not be able to push its victim below the demo's write threshold
    /// (50) with one presentation.
    public var byDetector: [String: Int] = ["stolen_token": 15]

    public func penalty(_ f: Finding) -> Int { byDetector[f.detector] ?? penalty[f.severity] ?? 0 }
    /// Points recovered per hour without findings.
    public var recoveryPerHour: Double = 5

    public init() {}
}

/// Per-agent state of the engine.
struct AgentRisk: Sendable, Codable {
    var baseline: Baseline
    var penalty: Double = 0
    var lastFinding: Double = 0
    var findings: Int64 = 0
    /// When the penalty last recovered (events that are not learnt, like a stolen token's, do not move `lastSeen`).
    var recoveredAt: Double?
}

/// The risk engine (`docs/risk.md`): events arrive on a bounded queue that never blocks the gateway (when full they
/// are dropped, counted and flagged); one consumer learns the baselines, runs the detectors, moves the trust scores
/// and runs the playbooks.
public final class RiskEngine: Sendable {
    /// The global thresholds and playbooks (`tunings.global`).
    public var settings: RiskSettings { tunings.global.settings }
    public var playbooks: Playbooks { tunings.global.playbooks }
    public let tunings: RiskTunings
    public let trust: TrustModel
    let detectors: [any Detector]
    let actions: any RiskActions
    let wardenClock: any WardenClock

    /// Seconds since the Unix epoch, with the fraction.
    func clock() -> Double { wardenClock.wallSeconds }

    let state = Mutex<[String: AgentRisk]>([:])
    let roles = Mutex<[String: Baseline]>([:])
    /// Agents and roles changed since the last save.
    let dirty = Mutex<(agents: Set<String>, roles: Set<String>)>(([], []))
    /// Agents tracked at once (the least recently seen goes first).
    public let maxAgents: Int

    let stream: AsyncStream<RiskEvent>
    let continuation: AsyncStream<RiskEvent>.Continuation
    /// Events refused because the queue was full, and events processed.
    public let dropped = Atomic<Int64>(0)
    public let processed = Atomic<Int64>(0)
    let submitted = Atomic<Int64>(0)
    let consumed = Atomic<Int64>(0)
    public let alerts = Atomic<Int64>(0)
    /// Set when events were dropped since the last alert about it.
    let overflowFlag = Atomic<Bool>(false)

    public convenience init(
        actions: any RiskActions, settings: RiskSettings = RiskSettings(), playbooks: Playbooks = Playbooks(),
        trust: TrustModel = TrustModel(), detectors: [any Detector] = defaultDetectors, queueCapacity: Int = 65_536,
        maxAgents: Int = 100_000, clock: any WardenClock = SystemClock()
    ) {
        self.init(
            actions: actions, tunings: RiskTunings(global: RiskTuning(settings: settings, playbooks: playbooks)),
            trust: trust, detectors: detectors, queueCapacity: queueCapacity, maxAgents: maxAgents, clock: clock)
    }

    public init(
        actions: any RiskActions, tunings: RiskTunings, trust: TrustModel = TrustModel(),
        detectors: [any Detector] = defaultDetectors, queueCapacity: Int = 65_536, maxAgents: Int = 100_000,
        clock: any WardenClock = SystemClock()
    ) {
        self.actions = actions
        self.tunings = tunings
        self.trust = trust
        self.detectors = detectors
        self.wardenClock = clock
        self.maxAgents = maxAgents
        (stream, continuation) = AsyncStream.makeStream(
            of: RiskEvent.self, bufferingPolicy: .bufferingOldest(queueCapacity))
    }

    /// Hands an event over without waiting; false (and counted) when the queue is full.
    @discardableResult
    public func submit(_ e: RiskEvent) -> Bool {
        switch continuation.yield(e) {
        case .enqueued:
            submitted.add(1, ordering: .relaxed)
            return true
        case .dropped, .terminated:
            dropped.add(1, ordering: .relaxed)
            overflowFlag.store(true, ordering: .relaxed)
            return false
        @unknown default: return false
        }
    }

    /// Consumes the queue until `stop()`.
    public func run() async {
        for await e in stream {
            process(e)
            consumed.add(1, ordering: .relaxed)
        }
    }

    public func stop() { continuation.finish() }

    /// Learns from one event, runs the detectors and the playbooks (the consumer's step; tests call it directly).
    @discardableResult
    public func process(_ e: RiskEvent) -> [Finding] {
        processed.add(1, ordering: .relaxed)
        guard !e.agentID.isEmpty else { return [] }
        let roleBaselines = roles.withLock { r in e.roles.compactMap { r[$0] } }
        var risk = state.withLock { s -> AgentRisk in
            if let r = s[e.agentID] { return r }
            // Full: the least recently seen hundredth goes at once, so that a stream of new keys (source addresses
            // of a scan) costs one sort per hundredth of the table, not a scan of it per event.
            if s.count >= maxAgents {
                let evict = s.sorted { $0.value.baseline.lastSeen < $1.value.baseline.lastSeen }
                    .prefix(max(1, maxAgents / 100))
                for (key, _) in evict { s.removeValue(forKey: key) }
            }
            return AgentRisk(baseline: Baseline(now: e.time))
        }
        let tuning = tunings.tuning(agentID: e.agentID, roles: e.roles)
        let context = DetectionContext(event: e, agent: risk.baseline, roles: roleBaselines, settings: tuning.settings)
        let findings =
            e.kind == .tokenMisuse
            ? detectors.filter(\.judgesTokenMisuse).compactMap { $0.evaluate(context) }
            : e.continuation
                ? detectors.filter(\.judgesVolume).compactMap { $0.evaluate(context) }
                : detectors.compactMap { $0.evaluate(context) }
        // Recovery over clean time, then the new penalties.
        let elapsedHours =
            max(0, e.time - max(risk.lastFinding, risk.baseline.lastSeen, risk.recoveredAt ?? 0)) / 3600
        risk.recoveredAt = max(risk.recoveredAt ?? e.time, e.time)
        let before = risk.penalty
        risk.penalty = max(0, risk.penalty - elapsedHours * trust.recoveryPerHour)
        for f in findings { risk.penalty += Double(trust.penalty(f)) }
        if !findings.isEmpty {
            risk.lastFinding = e.time
            risk.findings += Int64(findings.count)
        }
        let novel = e.segment.map { context.isNovel(segment: $0) }
        let newSubject = e.allowed && e.subject.map { context.isNewSubject($0) } == true
        risk.baseline.learn(e, novelSegment: novel, novelSubject: newSubject, window: tuning.settings.spikeWindow)
        if findings.contains(where: { $0.detector == "volume_spike" }) { risk.baseline.lastSpike = e.time }
        let updated = risk
        state.withLock { $0[e.agentID] = updated }
        roles.withLock { r in
            for role in e.roles.prefix(8) {
                var b = r[role] ?? Baseline(now: e.time)
                b.learn(e, novelSegment: novel, window: tuning.settings.spikeWindow)
                r[role] = b
            }
        }
        dirty.withLock { d in
            d.agents.insert(e.agentID)
            for role in e.roles.prefix(8) { d.roles.insert(role) }
        }
        let baselineScore = actions.baselineTrust(agentID: e.agentID)
        let score = max(0, min(baselineScore, baselineScore - Int(risk.penalty.rounded(.up))))
        if risk.penalty != before {
            actions.setTrust(agentID: e.agentID, score: risk.penalty > 0 ? score : nil)
        }
        if !findings.isEmpty { respond(e, findings, score: score, playbooks: tuning.playbooks) }
        return findings
    }

    func respond(_ e: RiskEvent, _ findings: [Finding], score: Int, playbooks: Playbooks) {
        let severity = findings.map(\.severity).max() ?? .low
        let planned = playbooks.actions(for: findings)
        var done: [ResponseAction] = []
        var contained: Double?
        let reason = findings.map { "\($0.detector): \($0.summary)" }.joined(separator: "; ")
        for action in planned {
            switch action {
            case .log, .alert: done.append(action)
            case .throttle:
                actions.throttle(agentID: e.agentID, until: e.time + 600)
                done.append(action)
            case .approval:
                actions.requireApproval(agentID: e.agentID, until: e.time + 3600)
                done.append(action)
            case .quarantine:
                if (try? actions.quarantine(agentID: e.agentID, reason: "risk: " + String(reason.prefix(900)))) != nil {
                    done.append(action)
                    contained = contained ?? Self.millis(ContinuousClock.now - e.observedAt)
                }
            case .revoke:
                if (try? actions.revokeTokens(agentID: e.agentID, reason: "risk: " + String(reason.prefix(900)))) != nil
                {
                    done.append(action)
                    contained = contained ?? Self.millis(ContinuousClock.now - e.observedAt)
                }
            }
        }
        alerts.add(1, ordering: .relaxed)
        actions.alert(
            RiskAlert(
                agentID: e.agentID, findings: findings, severity: severity, actions: done, trust: score,
                eventTime: e.time, containmentMillis: contained, resource: e.resource, cause: e.cause))
    }

    static func millis(_ d: Duration) -> Double {
        Double(d.components.seconds) * 1000 + Double(d.components.attoseconds) / 1e15
    }

    /// What the engine knows about a call before it is made, for the policy (`context.risk`): whether there is a
    /// warm reference to judge by (the agent's own history, or a role's), and against it whether the resource and
    /// the segment are new to the agent and its roles, and how many findings the agent has drawn. Without a
    /// reference nothing is called new (`ready` is false: a policy that wants to hold unknown agents says so).
    public struct Signals: Sendable, Equatable {
        public var ready: Bool
        public var newResource: Bool
        public var newSegment: Bool
        public var findings: Int64
        /// How far the agent's last window (`risk.spike_window`, sliding) is above its mean for a window: the larger
        /// of the requests' and the bytes' ratios, 0 while volume cannot be judged (``VolumeSpike``'s gate).
        public var volumeRatio: Double

        public init(
            ready: Bool = false, newResource: Bool = false, newSegment: Bool = false, findings: Int64 = 0,
            volumeRatio: Double = 0
        ) {
            self.ready = ready
            self.newResource = newResource
            self.newSegment = newSegment
            self.findings = findings
            self.volumeRatio = volumeRatio
        }
    }

    /// The detectors' view of a call by `agentID` (in `roles`) to `resource` in `segment` at `time`, made now (the
    /// agent's and its roles' baselines as they stand; two lock holds), and the agent's findings so far.
    func view(agentID: String, roles: [String], resource: String, segment: String?, time: Double)
        -> (context: DetectionContext, findings: Int64)
    {
        let roleBaselines = self.roles.withLock { r in roles.prefix(8).compactMap { r[$0] } }
        let (agent, findings) = state.withLock { s in
            (s[agentID]?.baseline ?? Baseline(now: time), s[agentID]?.findings ?? 0)
        }
        let event = RiskEvent(
            time: time, agentID: agentID, roles: roles, kind: .call, resource: resource, segment: segment,
            allowed: true)
        let settings = tunings.tuning(agentID: agentID, roles: roles).settings
        return (DetectionContext(event: event, agent: agent, roles: roleBaselines, settings: settings), findings)
    }

    /// The signals for a call by `agentID` (in `roles`) to `resource` in `segment` at `time`: the tests the
    /// detectors make after the call, made before it.
    public func signals(agentID: String, roles: [String], resource: String, segment: String?, time: Double) -> Signals {
        let (c, findings) = view(agentID: agentID, roles: roles, resource: resource, segment: segment, time: time)
        return Signals(
            ready: c.hasReference, newResource: c.isNewResource(resource),
            newSegment: segment.map { c.isNewSegment($0) } ?? false, findings: findings,
            volumeRatio: VolumeSpike.ratio(c))
    }

    /// Which detectors can judge the agent at `time`, and for those that cannot yet, why (their documented gate).
    public func readiness(agentID: String, roles: [String], time: Double) -> [(detector: String, notReady: String?)] {
        let c = view(agentID: agentID, roles: roles, resource: "", segment: nil, time: time).context
        return detectors.map { ($0.name, $0.notReady(c)) }
    }

    /// The current penalty-adjusted view of an agent (admin API).
    public func snapshot(agentID: String) -> (baseline: Baseline, penalty: Double, findings: Int64)? {
        state.withLock { $0[agentID].map { ($0.baseline, $0.penalty, $0.findings) } }
    }

    /// Events dropped since the last call (for an overflow alert).
    public func takeOverflow() -> Bool { overflowFlag.exchange(false, ordering: .relaxed) }

    public var trackedAgents: Int { state.withLock { $0.count } }

    // MARK: Persistence

    /// A saved baseline: an agent's (with its penalty) or a role's, as JSON.
    public struct Saved: Sendable {
        public let key: String
        public let isRole: Bool
        public let json: [UInt8]

        public init(key: String, isRole: Bool, json: [UInt8]) {
            self.key = key
            self.isRole = isRole
            self.json = json
        }
    }

    /// The baselines changed since the last call (the caller stores them).
    public func takeChanges() -> [Saved] {
        let (agents, roleNames) = dirty.withLock { d -> (Set<String>, Set<String>) in
            defer { d = ([], []) }
            return (d.agents, d.roles)
        }
        let encoder = JSONEncoder()
        var out: [Saved] = []
        let a = state.withLock { s in agents.compactMap { k in s[k].map { (k, $0) } } }
        for (k, v) in a {
            if let data = try? encoder.encode(v) { out.append(Saved(key: k, isRole: false, json: Array(data))) }
        }
        let r = roles.withLock { s in roleNames.compactMap { k in s[k].map { (k, $0) } } }
        for (k, v) in r {
            if let data = try? encoder.encode(v) { out.append(Saved(key: k, isRole: true, json: Array(data))) }
        }
        return out
    }

    /// Marks `saved` as changed again (their store write failed: the next save retries them).
    public func requeue(_ saved: [Saved]) {
        dirty.withLock { d in
            for s in saved {
                if s.isRole { d.roles.insert(s.key) } else { d.agents.insert(s.key) }
            }
        }
    }

    /// Loads saved baselines (at start); entries that do not decode are skipped (learning starts again for them).
    @discardableResult
    public func restore(_ saved: [Saved]) -> Int {
        let decoder = JSONDecoder()
        var loaded = 0
        for s in saved {
            if s.isRole {
                guard let b = try? decoder.decode(Baseline.self, from: Data(s.json)) else { continue }
                roles.withLock { $0[s.key] = b }
            } else {
                guard let r = try? decoder.decode(AgentRisk.self, from: Data(s.json)) else { continue }
                let kept = state.withLock { st -> Bool in
                    guard st.count < maxAgents else { return false }
                    st[s.key] = r
                    return true
                }
                // A lowered score is in force again at once (recovery since the last event applies at the next one).
                if kept, r.penalty > 0 {
                    let baselineScore = actions.baselineTrust(agentID: s.key)
                    actions.setTrust(
                        agentID: s.key, score: max(0, min(baselineScore, baselineScore - Int(r.penalty.rounded(.up)))))
                }
            }
            loaded += 1
        }
        return loaded
    }

    /// Events handed over and not yet processed.
    public var pending: Int64 { submitted.load(ordering: .relaxed) - consumed.load(ordering: .relaxed) }
}
