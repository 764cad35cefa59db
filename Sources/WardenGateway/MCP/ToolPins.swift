import Cedar
import Crypto
import Foundation
import Logging
import Synchronization
import WardenControlPlane
import WardenCore
import WardenIdentity
import WardenInspect
import WardenStore

/// Tool-definition pinning (`docs/mcp.md`, "Pinning"): each tool's definition is reduced to a digest; the approved
/// digest is the pin. A server's first catalogue is pinned on first use (trust on first use, recorded), except tools
/// whose text the injection scan flags; after that, a changed definition (a rug pull) or a new tool (which could
/// shadow a trusted one) is recorded as pending, hidden from `tools/list`, refused on call and alerted, until an
/// operator approves it (`warden mcp tools approve`).
public final class ToolPins: Sendable {
    public enum Status: Sendable, Equatable {
        case pinned
        case pending
        case rejected
    }

    struct State {
        /// `server/tool` → the approved digest.
        var approved: [String: String] = [:]
        /// `server/tool` → digests waiting for approval or rejected.
        var pending: [String: Set<String>] = [:]
        var rejected: [String: Set<String>] = [:]
        /// Servers with anything recorded (their first catalogue has been seen).
        var servers: Set<String> = []
    }

    let store: any PinStorage
    let state = Mutex(State())
    let logger: Logger
    /// Definitions recorded as pending (changed, new or flagged): the alert count.
    public let alerts = Atomic<Int64>(0)
    let wardenClock: any WardenClock

    /// Seconds since the Unix epoch.
    func clock() -> Int64 { wardenClock.seconds }

    package init(store: any PinStorage, clock: any WardenClock) throws(WardenError) {
        self.store = store
        self.wardenClock = clock
        var logger = Logger(label: "warden.mcp.pins")
        logger.logLevel = .info
        self.logger = logger
        try reload()
    }

    /// Re-reads the pins from the store.
    public func reload() throws(WardenError) {
        var s = State()
        for row in try store.mcpTools(server: nil) {
            let key = row.server + "/" + row.tool
            s.servers.insert(row.server)
            switch row.state {
            case "approved": s.approved[key] = row.digest
            case "pending": s.pending[key, default: []].insert(row.digest)
            case "rejected": s.rejected[key, default: []].insert(row.digest)
            default: break
            }
        }
        state.withLock { $0 = s }
    }

    /// Definitions of one tool waiting for approval at once; more are hidden without being recorded.
    static let maxPendingPerTool = 16

    /// The fields of a tool that are pinned: everything that tells a model what the tool does or how to call it.
    static let pinnedFields: Set<String> = [
        "name", "title", "description", "inputSchema", "outputSchema", "annotations",
    ]

    /// The pinned part of a definition and its digest (`sha256:` over canonical JSON).
    public static func digest(_ tool: JSONValue) -> (digest: String, canonical: String) {
        guard case .object(let pairs) = tool else { return ("sha256:", "") }
        let text = JSONValue.object(pairs.filter { pinnedFields.contains($0.0) }).canonical
        return ("sha256:" + Attestation.hex(SHA256.hash(data: Array(text.utf8))), text)
    }

    /// The status of a definition already classified by ``observe(server:tools:)``.
    public func status(server: String, tool: String, digest: String) -> Status {
        let key = server + "/" + tool
        return state.withLock { s in
            if s.approved[key] == digest { return .pinned }
            if s.rejected[key]?.contains(digest) == true { return .rejected }
            return .pending
        }
    }

    /// Classifies a server's current catalogue (name → definition), recording what was not seen before. Returns the
    /// status of each tool.
    public func observe(server: String, tools: [(name: String, definition: JSONValue)]) -> [String: Status] {
        var out: [String: Status] = [:]
        let firstCatalogue = state.withLock { !$0.servers.contains(server) }
        for (name, definition) in tools {
            let key = server + "/" + name
            let (digest, canonical) = Self.digest(definition)
            let known: Status? = state.withLock { s in
                if s.approved[key] == digest { return .pinned }
                if s.rejected[key]?.contains(digest) == true { return .rejected }
                if s.pending[key]?.contains(digest) == true { return .pending }
                return nil
            }
            if let known {
                out[name] = known
                continue
            }
            // A server that changes a definition on every fetch is held, not allowed to grow the table without end.
            if state.withLock({ ($0.pending[key]?.count ?? 0) >= Self.maxPendingPerTool }) {
                out[name] = .pending
                continue
            }
            let flags = InjectionScan.flags(tool: definition)
            let previous = state.withLock { $0.approved[key] }
            let pin = firstCatalogue && previous == nil && flags.isEmpty
            let now = clock()
            let action: String
            let reason: String
            if pin {
                action = "mcp.tool.pin"
                reason = "first_use"
            } else if previous != nil {
                action = "mcp.tool.changed"
                reason = "definition_changed"
            } else if flags.isEmpty {
                action = "mcp.tool.new"
                reason = "new_tool"
            } else {
                action = "mcp.tool.flagged"
                reason = "injection_pattern"
            }
            var details: [(String, String)] = [("digest", digest)]
            if let previous { details.append(("pinned_digest", previous)) }
            if !flags.isEmpty { details.append(("flags", flags.joined(separator: ","))) }
            let row = MCPToolRow(
                server: server, tool: name, digest: digest, definition: canonical, state: pin ? "approved" : "pending",
                flags: flags.joined(separator: ","), firstSeen: now, decidedAt: pin ? now : nil,
                decidedBy: pin ? "system:first-use" : nil)
            let event = AuditEvent(
                kind: .system, action: action, actor: "system", resource: "Tool::\"\(key)\"",
                decision: pin ? .allow : .deny, reason: reason, details: details)
            do {
                try store.recordMCPTool(row, event: event)
            } catch {
                // Not recorded: the tool stays hidden (fail closed) and is classified again on the next catalogue.
                logger.error("a tool definition could not be recorded", metadata: ["tool": "\(key)"])
                out[name] = .pending
                continue
            }
            state.withLock { s in
                s.servers.insert(server)
                if pin { s.approved[key] = digest } else { s.pending[key, default: []].insert(digest) }
            }
            if !pin {
                alerts.add(1, ordering: .relaxed)
                logger.warning(
                    "MCP tool definition held for approval",
                    metadata: [
                        "tool": "\(key)", "reason": "\(reason)", "digest": "\(digest)",
                        "flags": "\(flags.joined(separator: ","))",
                    ])
            }
            out[name] = pin ? .pinned : .pending
        }
        if firstCatalogue { state.withLock { _ = $0.servers.insert(server) } }
        return out
    }

    /// Approves (pins) a definition of `server/tool`: `digest`, or the latest pending one.
    @discardableResult
    public func decide(server: String, tool: String, digest: String?, approve: Bool, actor: String)
        throws(WardenError) -> MCPToolRow
    {
        let rows = try store.mcpTools(server: server).filter { $0.tool == tool }
        let target: MCPToolRow?
        if let digest {
            target = rows.first { $0.digest == digest }
        } else {
            target = rows.filter { $0.state == "pending" }.max { $0.firstSeen < $1.firstSeen }
        }
        guard let target else {
            throw WardenError(
                .notFound,
                digest == nil
                    ? "\(server)/\(tool) has no definition waiting for approval"
                    : "no recorded definition \(digest ?? "") of \(server)/\(tool)")
        }
        try store.decideMCPTool(
            server: server, tool: tool, digest: target.digest, approve: approve, actor: actor, now: clock())
        try reload()
        var out = target
        out.state = approve ? "approved" : "rejected"
        return out
    }
}

/// Calls held for a human's approval (`warden approvals`, `/v1/admin/approvals`). Held in memory by the process that
/// holds the agent's connection; bounded; each one ends approved, denied, timed out or abandoned (the agent went
/// away), and every step is audited by the MCP gateway.
public final class ApprovalQueue: Sendable {
    public struct Item: Sendable {
        public let id: String
        public let agent: String
        public let agentID: String
        public let server: String
        public let tool: String
        public let arguments: JSONValue
        public let argumentsDigest: String
        /// Why it needs approval: `risk:high`, `tool:approval`, or the policies that asked for it.
        public let reason: String
        public let createdAt: Int64
        public let expiresAt: Int64

        public var json: JSONValue {
            .object([
                ("id", .string(id)), ("agent", .string(agent)), ("agent_id", .string(agentID)),
                ("server", .string(server)), ("tool", .string(tool)), ("arguments", arguments),
                ("arguments_digest", .string(argumentsDigest)), ("reason", .string(reason)),
                ("created_at", .number(String(createdAt))), ("expires_at", .number(String(expiresAt))),
            ])
        }
    }

    public enum Outcome: Sendable, Equatable {
        case approved(by: String)
        case denied(by: String, reason: String?)
        case timedOut
        case abandoned
        /// The queue filled up between the check and the registration.
        case full
    }

    struct Waiting {
        let item: Item
        let continuation: CheckedContinuation<Outcome, Never>
    }

    /// Calls on hold at once, and per agent (one agent cannot crowd out the others); more are refused.
    public let maxPending: Int
    public let maxPerAgent: Int
    let waiting = Mutex<[String: Waiting]>([:])

    public init(maxPending: Int = 1000, maxPerAgent: Int = 20) {
        self.maxPending = maxPending
        self.maxPerAgent = maxPerAgent
    }

    /// A new approval id: 128 random bits (the data directory's token generator).
    static func newID() -> String { DataDirectory.randomToken(bytes: 16) }

    /// Holds the call until a decision, `timeout`, or the task's cancellation. nil when the queue (or the agent's
    /// share of it) is full.
    public func hold(_ item: Item, timeout: Duration) async -> Outcome? {
        let agentID = item.agentID
        func hasRoom(_ w: [String: Waiting]) -> Bool {
            w.count < maxPending && w.values.lazy.filter { $0.item.agentID == agentID }.count < maxPerAgent
        }
        guard waiting.withLock({ hasRoom($0) }) else { return nil }
        let id = item.id
        let timer = Mutex<Task<Void, Never>?>(nil)
        defer { timer.withLock { $0?.cancel() } }
        let outcome = await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<Outcome, Never>) in
                let accepted = waiting.withLock { w -> Bool in
                    guard hasRoom(w) else { return false }
                    w[id] = Waiting(item: item, continuation: c)
                    return true
                }
                guard accepted else {
                    c.resume(returning: .full)
                    return
                }
                // The deadline starts once the call is registered, so a decision or the timeout always finds it.
                timer.withLock {
                    $0 = Task {
                        try? await Task.sleep(for: timeout)
                        if !Task.isCancelled { self.finish(id, .timedOut) }
                    }
                }
                if Task.isCancelled { finish(id, .abandoned) }
            }
        } onCancel: {
            self.finish(id, .abandoned)
        }
        return outcome == .full ? nil : outcome
    }

    /// Ends a held call; false when there is none with that id.
    @discardableResult
    func finish(_ id: String, _ outcome: Outcome) -> Bool {
        guard let w = waiting.withLock({ $0.removeValue(forKey: id) }) else { return false }
        w.continuation.resume(returning: outcome)
        return true
    }

    /// Approves or denies a held call; returns it, or nil when there is none with that id (decided, timed out).
    public func decide(_ id: String, approve: Bool, actor: String, reason: String? = nil) -> Item? {
        guard let w = waiting.withLock({ $0.removeValue(forKey: id) }) else { return nil }
        w.continuation.resume(returning: approve ? .approved(by: actor) : .denied(by: actor, reason: reason))
        return w.item
    }

    /// The held calls, oldest first.
    public func list() -> [Item] { waiting.withLock { $0.values.map(\.item) }.sorted { $0.createdAt < $1.createdAt } }
}

/// Sessions of the 2025-11-25 era (`Mcp-Session-Id`): each belongs to the agent that initialized it. Bounded (the
/// least recently used goes first) and idle ones expire.
final class MCPSessions: Sendable {
    struct Session {
        let agentID: String
        let protocolVersion: String
        var lastUsed: Int64
    }

    let maxSessions: Int
    let idleSeconds: Int64
    let sessions = Mutex<[String: Session]>([:])

    init(maxSessions: Int = 100_000, idleSeconds: Int64 = 3600) {
        self.maxSessions = maxSessions
        self.idleSeconds = idleSeconds
    }

    /// Sessions one agent may hold; opening another ends its least recently used.
    static let maxPerAgent = 64

    func create(agentID: String, version: String, now: Int64) -> String {
        let id = DataDirectory.randomToken(bytes: 16)
        sessions.withLock { s in
            let mine = s.filter { $0.value.agentID == agentID }
            if mine.count >= Self.maxPerAgent, let oldest = mine.min(by: { $0.value.lastUsed < $1.value.lastUsed }) {
                s.removeValue(forKey: oldest.key)
            }
            if s.count >= maxSessions {
                s = s.filter { now - $0.value.lastUsed < idleSeconds }
                if s.count >= maxSessions, let oldest = s.min(by: { $0.value.lastUsed < $1.value.lastUsed }) {
                    s.removeValue(forKey: oldest.key)
                }
            }
            s[id] = Session(agentID: agentID, protocolVersion: version, lastUsed: now)
        }
        return id
    }

    /// The session's protocol version when it exists, is live and belongs to `agentID`.
    func use(_ id: String, agentID: String, now: Int64) -> String? {
        sessions.withLock { s in
            guard var session = s[id], session.agentID == agentID else { return nil }
            guard now - session.lastUsed < idleSeconds else {
                s.removeValue(forKey: id)
                return nil
            }
            session.lastUsed = now
            s[id] = session
            return session.protocolVersion
        }
    }

    func end(_ id: String, agentID: String) -> Bool {
        sessions.withLock { s in
            guard s[id]?.agentID == agentID else { return false }
            s.removeValue(forKey: id)
            return true
        }
    }
}
