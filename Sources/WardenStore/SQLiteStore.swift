// Why this file is long: one SQLite store with every migration in one place (one schema, one version). What each
// module keeps is a protocol that module owns (`WardenControlPlane/Storage.swift`); this type implements them, and a
// PostgreSQL store for replicas would implement the same ones.
import Cedar
import Foundation
import GRDB
import Synchronization
import WardenAudit
import WardenCore

extension AgentEvent {
    /// The audit entry recording this lifecycle event.
    public func auditEvent(spiffeID: String?) -> AuditEvent {
        var e = AuditEvent(
            kind: .lifecycle, action: "agent." + kind, actor: actor == "agent" ? (spiffeID ?? actor) : actor,
            agent: spiffeID, agentID: agentID, message: reason)
        switch kind {
        case "registered": e.kind = .admin; e.action = "agent.register"
        case "join_token_issued": e.kind = .admin; e.action = "agent.join_token"
        case "enrolled": e.action = "agent.enroll"; e.decision = .allow
        case "attestation_failed":
            e.action = "agent.enroll"
            e.decision = .deny
            e.reason = "attestation_failed"
        case "state_changed": e.kind = actor == "agent" ? .lifecycle : .admin; e.action = "agent.state"
        case "token_revoked": e.kind = .admin; e.action = "token.revoke"
        case "svid_issued": e.action = "svid.issue"; e.decision = .allow
        default: break
        }
        if let from { e.details.append(("from_state", from.rawValue)) }
        if let to { e.details.append(("to_state", to.rawValue)) }
        return e
    }
}

/// Revoked token id as stored.
public struct RevokedToken: Sendable, Hashable {
    public var jti: String
    /// Until when the revocation must be kept (the longest time a token with this id could still be valid).
    public var until: Int64
    public var agentID: String?
    public var reason: String
}

/// A signing key's schedule as stored (the private key itself lives in a 0600 file of the data directory).
/// A brokered credential as stored: AES-GCM sealed (nonce, ciphertext, tag).
public struct SecretRow: Sendable, Hashable {
    public var name: String
    public var sealed: [UInt8]
    public var createdAt: Int64
    public var updatedAt: Int64

    public init(name: String, sealed: [UInt8], createdAt: Int64, updatedAt: Int64) {
        self.name = name
        self.sealed = sealed
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }
}

/// One recorded definition of an MCP tool.
public struct MCPToolRow: Sendable, Hashable {
    public var server: String
    public var tool: String
    /// `sha256:<hex>` of the canonical definition.
    public var digest: String
    /// The definition as canonical JSON.
    public var definition: String
    /// `approved` (the pin), `pending`, `superseded` or `rejected`.
    public var state: String
    /// Injection-scan flags, comma-separated.
    public var flags: String
    public var firstSeen: Int64
    public var decidedAt: Int64?
    public var decidedBy: String?

    public init(
        server: String, tool: String, digest: String, definition: String, state: String, flags: String,
        firstSeen: Int64, decidedAt: Int64? = nil, decidedBy: String? = nil
    ) {
        self.server = server
        self.tool = tool
        self.digest = digest
        self.definition = definition
        self.state = state
        self.flags = flags
        self.firstSeen = firstSeen
        self.decidedAt = decidedAt
        self.decidedBy = decidedBy
    }
}

public struct SigningKeyRow: Sendable, Hashable {
    public var kid: String
    public var createdAt: Int64
    public var retiredAt: Int64?

    public init(kid: String, createdAt: Int64, retiredAt: Int64? = nil) {
        self.kid = kid
        self.createdAt = createdAt
        self.retiredAt = retiredAt
    }
}

/// Warden's state in SQLite (WAL, `synchronous=FULL`, versioned migrations), through GRDB.
///
/// Every method runs in one transaction; every failure becomes a ``WardenError`` with code `storage_error` (or
/// `conflict`, `not_found`, `invalid_grant` where the meaning is known), so callers fail closed.
public final class SQLiteStore: Sendable {
    let db: DatabasePool
    public let path: String
    private let attachedAudit = Mutex<(any AuditJournal)?>(nil)

    /// The audit log every recorded event is appended to, in the same transaction as the change it records.
    package var auditLog: (any AuditJournal)? { attachedAudit.withLock { $0 } }

    /// Attaches the audit log (once, at start-up; ``AuditStorage``).
    package func attach(journal: any AuditJournal) { attachedAudit.withLock { $0 = journal } }

    /// Opens (creating if needed) the database at `path` and applies migrations.
    public init(path: String) throws(WardenError) {
        self.path = path
        var config = Configuration()
        config.busyMode = .timeout(5)
        config.prepareDatabase { db in
            // Revocations and enrollments must survive power loss, not only a crash.
            try db.execute(sql: "PRAGMA synchronous = FULL")
        }
        do {
            db = try DatabasePool(path: path, configuration: config)
            // Again on the writer: GRDB sets up WAL mode after `prepareDatabase`, and with it `synchronous = NORMAL`
            // (commits then reach the disk only at checkpoints: a power loss could take back a committed revocation
            // or acknowledged audit entries).
            try db.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA synchronous = FULL") }
            try Self.migrator.migrate(db)
        } catch {
            throw WardenError(.storage, "cannot open the database \(path): \(Self.describe(error))")
        }
    }

    static func describe(_ error: any Error) -> String {
        if let e = error as? DatabaseError { return e.message ?? "SQLite error \(e.resultCode)" }
        return "\(error)"
    }

    static var migrator: DatabaseMigrator {
        var m = DatabaseMigrator()
        m.registerMigration("v1") { db in
            try db.execute(
                sql: """
                    CREATE TABLE agents (
                        id TEXT PRIMARY KEY NOT NULL,
                        name TEXT NOT NULL UNIQUE,
                        spiffe_id TEXT NOT NULL UNIQUE,
                        manifest TEXT NOT NULL,
                        manifest_digest TEXT NOT NULL,
                        state TEXT NOT NULL,
                        created_at INTEGER NOT NULL,
                        updated_at INTEGER NOT NULL,
                        key_jwk TEXT,
                        key_thumbprint TEXT UNIQUE,
                        attestation TEXT
                    );
                    CREATE TABLE join_tokens (
                        token_hash TEXT PRIMARY KEY NOT NULL,
                        agent_id TEXT NOT NULL REFERENCES agents(id),
                        expires_at INTEGER NOT NULL,
                        used_at INTEGER
                    );
                    CREATE TABLE agent_events (
                        seq INTEGER PRIMARY KEY AUTOINCREMENT,
                        agent_id TEXT NOT NULL,
                        at INTEGER NOT NULL,
                        kind TEXT NOT NULL,
                        from_state TEXT,
                        to_state TEXT,
                        actor TEXT NOT NULL,
                        reason TEXT NOT NULL
                    );
                    CREATE INDEX agent_events_agent ON agent_events(agent_id, seq);
                    CREATE TABLE revoked_tokens (
                        jti TEXT PRIMARY KEY NOT NULL,
                        until INTEGER NOT NULL,
                        agent_id TEXT,
                        reason TEXT NOT NULL,
                        revoked_at INTEGER NOT NULL
                    );
                    CREATE TABLE signing_keys (
                        kid TEXT PRIMARY KEY NOT NULL,
                        created_at INTEGER NOT NULL,
                        retired_at INTEGER
                    );
                    """)
        }
        m.registerMigration("v2-audit") { db in
            // The tamper-evident audit log (format: docs/audit.md). Entries and checkpoints are append-only; entries
            // can only be deleted behind the pruning anchor, which only moves forward. The triggers stop mistakes and
            // casual edits; verification (hash chain, Merkle tree, signed checkpoints) detects what they cannot.
            try db.execute(
                sql: """
                    CREATE TABLE audit_log (
                        seq INTEGER PRIMARY KEY,
                        entry TEXT NOT NULL,
                        chain BLOB NOT NULL
                    );
                    CREATE INDEX audit_log_agent ON audit_log(json_extract(entry, '$.agent'), seq);
                    CREATE INDEX audit_log_time ON audit_log(json_extract(entry, '$.time'));
                    CREATE TABLE audit_nodes (
                        level INTEGER NOT NULL,
                        idx INTEGER NOT NULL,
                        hash BLOB NOT NULL,
                        PRIMARY KEY (level, idx)
                    ) WITHOUT ROWID;
                    CREATE TABLE audit_checkpoints (
                        tree_size INTEGER PRIMARY KEY,
                        jws TEXT NOT NULL,
                        created_at INTEGER NOT NULL
                    );
                    CREATE TABLE audit_anchor (
                        id INTEGER PRIMARY KEY CHECK (id = 1),
                        tree_size INTEGER NOT NULL,
                        chain BLOB NOT NULL
                    );
                    CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
                    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
                    CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
                    WHEN old.seq > coalesce((SELECT tree_size FROM audit_anchor WHERE id = 1), 0)
                    BEGIN SELECT RAISE(ABORT, 'audit entries can only be pruned behind a signed checkpoint'); END;
                    CREATE TRIGGER audit_nodes_no_update BEFORE UPDATE ON audit_nodes
                    BEGIN SELECT RAISE(ABORT, 'the audit tree is append-only'); END;
                    CREATE TRIGGER audit_nodes_no_delete BEFORE DELETE ON audit_nodes
                    BEGIN SELECT RAISE(ABORT, 'the audit tree is append-only'); END;
                    CREATE TRIGGER audit_checkpoints_no_update BEFORE UPDATE ON audit_checkpoints
                    BEGIN SELECT RAISE(ABORT, 'audit checkpoints are append-only'); END;
                    CREATE TRIGGER audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints
                    BEGIN SELECT RAISE(ABORT, 'audit checkpoints are append-only'); END;
                    CREATE TRIGGER audit_anchor_forward BEFORE UPDATE ON audit_anchor
                    WHEN new.tree_size < old.tree_size
                    BEGIN SELECT RAISE(ABORT, 'the pruning anchor only moves forward'); END;
                    CREATE TRIGGER audit_anchor_no_delete BEFORE DELETE ON audit_anchor
                    BEGIN SELECT RAISE(ABORT, 'the pruning anchor cannot be removed'); END;
                    """)
        }
        m.registerMigration("v3-secrets") { db in
            // Brokered upstream credentials, sealed with AES-GCM under the data directory's secrets key (the name is
            // the authenticated data, so a sealed value cannot be moved to another name).
            try db.execute(
                sql: """
                    CREATE TABLE secrets (
                        name TEXT PRIMARY KEY NOT NULL,
                        sealed BLOB NOT NULL,
                        created_at INTEGER NOT NULL,
                        updated_at INTEGER NOT NULL
                    );
                    """)
        }
        m.registerMigration("v4-mcp-tools") { db in
            // MCP tool definitions by digest: the approved (pinned) one per tool, and changed ones pending approval.
            try db.execute(
                sql: """
                    CREATE TABLE mcp_tools (
                        server TEXT NOT NULL,
                        tool TEXT NOT NULL,
                        digest TEXT NOT NULL,
                        definition TEXT NOT NULL,
                        state TEXT NOT NULL CHECK (state IN ('approved', 'pending', 'superseded', 'rejected')),
                        flags TEXT NOT NULL DEFAULT '',
                        first_seen INTEGER NOT NULL,
                        decided_at INTEGER,
                        decided_by TEXT,
                        PRIMARY KEY (server, tool, digest)
                    );
                    CREATE UNIQUE INDEX mcp_tools_one_pin ON mcp_tools (server, tool) WHERE state = 'approved';
                    """)
        }
        m.registerMigration("v5-risk") { db in
            // The risk engine's learned baselines (JSON), per agent and per role, saved periodically.
            try db.execute(
                sql: """
                    CREATE TABLE risk_baselines (
                        key TEXT NOT NULL,
                        is_role INTEGER NOT NULL,
                        state BLOB NOT NULL,
                        updated_at INTEGER NOT NULL,
                        PRIMARY KEY (key, is_role)
                    );
                    """)
        }
        m.registerMigration("v6-assertions") { db in
            // Client assertion ids (a digest of agent and jti) kept for the assertions' lifetime, so that one accepted
            // before a restart is not accepted after it.
            try db.execute(
                sql: """
                    CREATE TABLE used_assertions (key TEXT PRIMARY KEY, until INTEGER NOT NULL) WITHOUT ROWID;
                    CREATE INDEX used_assertions_until ON used_assertions (until);
                    """)
        }
        return m
    }

    // MARK: Client assertions

    /// Records a client assertion id until `until`; false when it is already recorded and still live (a replay).
    /// Expired ids are deleted on the way.
    public func useAssertion(key: String, until: Int64, now: Int64) throws(WardenError) -> Bool {
        try write { db in
            try db.execute(sql: "DELETE FROM used_assertions WHERE until <= ?", arguments: [now])
            try db.execute(
                sql: "INSERT INTO used_assertions (key, until) VALUES (?, ?) ON CONFLICT(key) DO NOTHING",
                arguments: [key, until])
            return db.changesCount == 1
        }
    }

    /// Runs `body` in a write transaction (serialised with every other write), mapping errors.
    package func write<T>(_ body: (Database) throws -> T) throws(WardenError) -> T {
        do {
            return try db.write(body)
        } catch let e as WardenError {
            throw e
        } catch let e as DatabaseError where e.resultCode == .SQLITE_CONSTRAINT {
            throw WardenError(.conflict, "the change conflicts with stored data: \(Self.describe(e))")
        } catch {
            throw WardenError(.storage, "the database could not be written: \(Self.describe(error))")
        }
    }

    /// Runs `body` in a read transaction (a consistent snapshot, concurrent with writes), mapping errors.
    package func read<T>(_ body: (Database) throws -> T) throws(WardenError) -> T {
        do {
            return try db.read(body)
        } catch let e as WardenError {
            throw e
        } catch {
            throw WardenError(.storage, "the database could not be read: \(Self.describe(error))")
        }
    }

    // MARK: Agents

    /// Records a new agent (state pending) with its first join token, and the `registered` event.
    public func register(_ r: AgentRecord, joinTokenHash: String, joinTokenExpiresAt: Int64, actor: String)
        throws(WardenError)
    {
        try write { db in
            if try Row.fetchOne(db, sql: "SELECT 1 FROM agents WHERE name = ?", arguments: [r.name]) != nil {
                throw WardenError(.conflict, "an agent named '\(r.name)' is already registered")
            }
            try db.execute(
                sql: """
                    INSERT INTO agents (id, name, spiffe_id, manifest, manifest_digest, state, created_at, updated_at)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                    """,
                arguments: [
                    r.id, r.name, r.spiffeID.description, r.manifest.canonicalJSON, r.manifestDigest, r.state.rawValue,
                    r.createdAt, r.updatedAt,
                ])
            try db.execute(
                sql: "INSERT INTO join_tokens (token_hash, agent_id, expires_at) VALUES (?, ?, ?)",
                arguments: [joinTokenHash, r.id, joinTokenExpiresAt])
            try insertEvent(
                db,
                AgentEvent(
                    agentID: r.id, at: r.createdAt, kind: "registered", to: r.state, actor: actor,
                    reason: "manifest \(r.manifestDigest)"))
        }
    }

    static func record(_ row: Row) throws -> AgentRecord {
        let manifestText: String = row["manifest"]
        let manifest = try AgentManifest(json: try JSONValue.parse(manifestText), file: "stored manifest")
        guard let state = AgentState(rawValue: row["state"]) else {
            throw WardenError(.storage, "stored agent has an unknown state")
        }
        return AgentRecord(
            id: row["id"], spiffeID: try SPIFFEID(parsing: row["spiffe_id"]), manifest: manifest,
            manifestDigest: row["manifest_digest"], state: state, createdAt: row["created_at"],
            updatedAt: row["updated_at"], keyJWK: row["key_jwk"], keyThumbprint: row["key_thumbprint"],
            attestation: row["attestation"])
    }

    /// The agent with this id, name or SPIFFE ID.
    public func agent(_ ref: String) throws(WardenError) -> AgentRecord? {
        try read { db in
            // By id first, then SPIFFE ID, then name: a name shaped like another agent's id never shadows it.
            for column in ["id", "spiffe_id", "name"] {
                if let row = try Row.fetchOne(db, sql: "SELECT * FROM agents WHERE \(column) = ?", arguments: [ref]) {
                    return try Self.record(row)
                }
            }
            return nil
        }
    }

    /// Every agent, by name.
    public func agents() throws(WardenError) -> [AgentRecord] {
        try read { db in try Row.fetchAll(db, sql: "SELECT * FROM agents ORDER BY name").map(Self.record) }
    }

    /// Replaces the agent's pending join tokens with a new one. Only a pending agent can get one.
    public func issueJoinToken(agentID: String, hash: String, expiresAt: Int64, now: Int64, actor: String)
        throws(WardenError)
    {
        try write { db in
            guard let row = try Row.fetchOne(db, sql: "SELECT * FROM agents WHERE id = ?", arguments: [agentID]) else {
                throw WardenError(.notFound, "no such agent")
            }
            let r = try Self.record(row)
            guard r.state == .pending else {
                throw WardenError(
                    .conflict, "agent '\(r.name)' is \(r.state.rawValue); only a pending agent gets a join token")
            }
            try db.execute(
                sql: "UPDATE join_tokens SET used_at = ? WHERE agent_id = ? AND used_at IS NULL",
                arguments: [now, agentID])
            try db.execute(
                sql: "INSERT INTO join_tokens (token_hash, agent_id, expires_at) VALUES (?, ?, ?)",
                arguments: [hash, agentID, expiresAt])
            try insertEvent(
                db,
                AgentEvent(agentID: agentID, at: now, kind: "join_token_issued", actor: actor, reason: "new join token")
            )
        }
    }

    /// Marks every unused join token of the agent used.
    public func retireJoinTokens(agentID: String, now: Int64) throws(WardenError) {
        try write { db in
            try db.execute(
                sql: "UPDATE join_tokens SET used_at = ? WHERE agent_id = ? AND used_at IS NULL",
                arguments: [now, agentID])
        }
    }

    /// The join tokens neither used nor expired (the posture report lists them with their age).
    public func outstandingJoinTokens(now: Int64) throws(WardenError) -> [(agentID: String, expiresAt: Int64)] {
        try read { db in
            try Row.fetchAll(
                db,
                sql:
                    "SELECT agent_id, expires_at FROM join_tokens WHERE used_at IS NULL AND expires_at > ? ORDER BY expires_at",
                arguments: [now]
            ).map { (agentID: $0["agent_id"], expiresAt: $0["expires_at"]) }
        }
    }

    /// Whether a join token is known, unused and unexpired (read only: checked before costlier work, so that
    /// strangers cannot make the server do it).
    public func joinTokenIsLive(hash: String, now: Int64) throws(WardenError) -> Bool {
        try read { db in
            try Row.fetchOne(
                db, sql: "SELECT 1 FROM join_tokens WHERE token_hash = ? AND used_at IS NULL AND expires_at > ?",
                arguments: [hash, now]) != nil
        }
    }

    /// Burns a join token (marks it used, whatever happens next) and returns its agent. An unknown, used or expired
    /// token is `invalid_grant`.
    public func burnJoinToken(hash: String, now: Int64) throws(WardenError) -> AgentRecord {
        // The outcome of the burn must be committed even when the token is refused, so errors are returned, not thrown
        // inside the transaction.
        let outcome: Result<AgentRecord, WardenError> = try write { db in
            guard let t = try Row.fetchOne(db, sql: "SELECT * FROM join_tokens WHERE token_hash = ?", arguments: [hash])
            else {
                return .failure(WardenError(.invalidGrant, "the join token is not known"))
            }
            let usedAt: Int64? = t["used_at"]
            if usedAt != nil { return .failure(WardenError(.invalidGrant, "the join token was already used")) }
            try db.execute(sql: "UPDATE join_tokens SET used_at = ? WHERE token_hash = ?", arguments: [now, hash])
            let expiresAt: Int64 = t["expires_at"]
            guard expiresAt > now else { return .failure(WardenError(.invalidGrant, "the join token has expired")) }
            let agentID: String = t["agent_id"]
            guard let row = try Row.fetchOne(db, sql: "SELECT * FROM agents WHERE id = ?", arguments: [agentID]) else {
                return .failure(WardenError(.invalidGrant, "the join token's agent no longer exists"))
            }
            return .success(try Self.record(row))
        }
        return try outcome.get()
    }

    /// Completes enrollment: the pending agent becomes active with its key.
    public func completeEnrollment(
        agentID: String, keyJWK: String, thumbprint: String, attestation: String, now: Int64
    ) throws(WardenError) -> AgentRecord {
        try write { db in
            guard let row = try Row.fetchOne(db, sql: "SELECT * FROM agents WHERE id = ?", arguments: [agentID]) else {
                throw WardenError(.notFound, "no such agent")
            }
            var r = try Self.record(row)
            guard r.state == .pending else {
                throw WardenError(.invalidGrant, "agent '\(r.name)' is \(r.state.rawValue), not pending enrollment")
            }
            if try Row.fetchOne(
                db, sql: "SELECT 1 FROM agents WHERE key_thumbprint = ? AND id != ?", arguments: [thumbprint, agentID])
                != nil
            {
                throw WardenError(.invalidKey, "this key is already enrolled for another agent; generate a new key")
            }
            try db.execute(
                sql: """
                    UPDATE agents SET state = 'active', key_jwk = ?, key_thumbprint = ?, attestation = ?, updated_at = ?
                    WHERE id = ?
                    """, arguments: [keyJWK, thumbprint, attestation, now, agentID])
            try insertEvent(
                db,
                AgentEvent(
                    agentID: agentID, at: now, kind: "enrolled", from: .pending, to: .active, actor: "agent",
                    reason: "attested by \(attestation), key \(thumbprint)"))
            r.state = .active
            r.keyJWK = keyJWK
            r.keyThumbprint = thumbprint
            r.attestation = attestation
            r.updatedAt = now
            return r
        }
    }

    /// Moves an agent to `state` if its lifecycle allows it, recording the transition.
    public func transition(agentID: String, to state: AgentState, actor: String, reason: String, now: Int64)
        throws(WardenError) -> AgentRecord
    {
        try write { db in
            guard let row = try Row.fetchOne(db, sql: "SELECT * FROM agents WHERE id = ?", arguments: [agentID]) else {
                throw WardenError(.notFound, "no such agent")
            }
            var r = try Self.record(row)
            guard r.state.canMove(to: state) else {
                throw WardenError(
                    .conflict, "agent '\(r.name)' is \(r.state.rawValue) and cannot become \(state.rawValue)")
            }
            try db.execute(
                sql: "UPDATE agents SET state = ?, updated_at = ? WHERE id = ?",
                arguments: [state.rawValue, now, agentID])
            if state == .revoked || state == .decommissioned {
                try db.execute(
                    sql: "UPDATE join_tokens SET used_at = ? WHERE agent_id = ? AND used_at IS NULL",
                    arguments: [now, agentID])
            }
            try insertEvent(
                db,
                AgentEvent(
                    agentID: agentID, at: now, kind: "state_changed", from: r.state, to: state, actor: actor,
                    reason: reason))
            r.state = state
            r.updatedAt = now
            return r
        }
    }

    // MARK: Events

    func insertEvent(_ db: Database, _ e: AgentEvent) throws {
        try db.execute(
            sql: """
                INSERT INTO agent_events (agent_id, at, kind, from_state, to_state, actor, reason)
                VALUES (?, ?, ?, ?, ?, ?, ?)
                """, arguments: [e.agentID, e.at, e.kind, e.from?.rawValue, e.to?.rawValue, e.actor, e.reason])
        if let audit = auditLog {
            let spiffe = try String.fetchOne(
                db, sql: "SELECT spiffe_id FROM agents WHERE id = ?", arguments: [e.agentID])
            try audit.append(e.auditEvent(spiffeID: spiffe), in: SQLiteAuditTransaction(db: db))
        }
    }

    /// Appends `event` to the attached audit log inside the current write transaction (nothing without a log).
    package func audit(_ event: AuditEvent, in db: Database) throws {
        try auditLog?.append(event, in: SQLiteAuditTransaction(db: db))
    }

    /// Records an event (an attestation failure, say).
    public func record(_ event: AgentEvent) throws(WardenError) {
        try write { db in try insertEvent(db, event) }
    }

    /// The agent's events in order.
    public func events(agentID: String) throws(WardenError) -> [AgentEvent] {
        try read { db in
            try Row.fetchAll(
                db, sql: "SELECT * FROM agent_events WHERE agent_id = ? ORDER BY seq", arguments: [agentID]
            )
            .map { row in
                AgentEvent(
                    seq: row["seq"], agentID: row["agent_id"], at: row["at"], kind: row["kind"],
                    from: (row["from_state"] as String?).flatMap(AgentState.init(rawValue:)),
                    to: (row["to_state"] as String?).flatMap(AgentState.init(rawValue:)), actor: row["actor"],
                    reason: row["reason"])
            }
        }
    }

    // MARK: Token revocation

    /// Records a revoked token id (kept until `until`), with an event on its agent when known.
    public func revokeToken(jti: String, until: Int64, agentID: String?, reason: String, now: Int64)
        throws(WardenError)
    {
        let auditEvent = AuditEvent(
            kind: .admin, action: "token.revoke", actor: "admin", resource: "token:" + jti, message: reason,
            details: [("jti", jti)])
        try write { db in
            try db.execute(
                sql: """
                    INSERT INTO revoked_tokens (jti, until, agent_id, reason, revoked_at) VALUES (?, ?, ?, ?, ?)
                    ON CONFLICT(jti) DO UPDATE SET until = max(until, excluded.until)
                    """, arguments: [jti, until, agentID, reason, now])
            if let agentID {
                try insertEvent(
                    db,
                    AgentEvent(
                        agentID: agentID, at: now, kind: "token_revoked", actor: "admin",
                        reason: "jti \(jti): \(reason)"))
            } else {
                try audit(auditEvent, in: db)
            }
        }
    }

    /// Revocations still in force at `now` (older ones are deleted).
    public func revokedTokens(now: Int64) throws(WardenError) -> [RevokedToken] {
        try write { db in
            try db.execute(sql: "DELETE FROM revoked_tokens WHERE until <= ?", arguments: [now])
            return try Row.fetchAll(db, sql: "SELECT * FROM revoked_tokens").map {
                RevokedToken(jti: $0["jti"], until: $0["until"], agentID: $0["agent_id"], reason: $0["reason"])
            }
        }
    }

    // MARK: Signing keys

    public func signingKeys() throws(WardenError) -> [SigningKeyRow] {
        try read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM signing_keys ORDER BY created_at").map {
                SigningKeyRow(kid: $0["kid"], createdAt: $0["created_at"], retiredAt: $0["retired_at"])
            }
        }
    }

    /// Records a rotation: `retired` stops signing at `at`, `new` becomes current (either may be absent).
    public func saveRotation(new: SigningKeyRow?, retiredKid: String?, at: Int64, actor: String = "system")
        throws(WardenError)
    {
        try write { db in
            var details: [(String, String)] = []
            if let new { details.append(("kid", new.kid)) }
            if let retiredKid { details.append(("retired_kid", retiredKid)) }
            try audit(
                AuditEvent(
                    kind: actor == "admin" ? .admin : .system, action: "key.rotate", actor: actor,
                    resource: "signing-key", message: retiredKid == nil ? "first signing key" : "signing key rotated",
                    details: details), in: db)
            if let retiredKid {
                try db.execute(
                    sql: "UPDATE signing_keys SET retired_at = ? WHERE kid = ? AND retired_at IS NULL",
                    arguments: [at, retiredKid])
                guard db.changesCount == 1 else {
                    throw WardenError(.conflict, "the signing key was already rotated")
                }
            }
            if let new {
                try db.execute(
                    sql: "INSERT INTO signing_keys (kid, created_at, retired_at) VALUES (?, ?, ?)",
                    arguments: [new.kid, new.createdAt, new.retiredAt])
            }
        }
    }

    // MARK: Secrets

    /// Stores a sealed secret (created or replaced) with its audit entry in the same transaction; the entry names the
    /// secret, never its value.
    public func putSecret(_ row: SecretRow, actor: String) throws(WardenError) {
        try write { db in
            let existed =
                try Row.fetchOne(db, sql: "SELECT 1 FROM secrets WHERE name = ?", arguments: [row.name]) != nil
            try audit(
                AuditEvent(
                    kind: .admin, action: existed ? "secret.replace" : "secret.create", actor: actor,
                    resource: "secret:\(row.name)"), in: db)
            try db.execute(
                sql: """
                    INSERT INTO secrets (name, sealed, created_at, updated_at) VALUES (?, ?, ?, ?)
                    ON CONFLICT(name) DO UPDATE SET sealed = excluded.sealed, updated_at = excluded.updated_at
                    """, arguments: [row.name, Data(row.sealed), row.createdAt, row.updatedAt])
        }
    }

    /// Deletes a secret; `notFound` when there is none.
    public func deleteSecret(name: String, actor: String) throws(WardenError) {
        try write { db in
            try db.execute(sql: "DELETE FROM secrets WHERE name = ?", arguments: [name])
            guard db.changesCount == 1 else { throw WardenError(.notFound, "no secret '\(name)'") }
            try audit(
                AuditEvent(kind: .admin, action: "secret.delete", actor: actor, resource: "secret:\(name)"), in: db)
        }
    }

    /// Every stored secret, sealed.
    public func secrets() throws(WardenError) -> [SecretRow] {
        try read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM secrets ORDER BY name").map {
                SecretRow(
                    name: $0["name"], sealed: [UInt8]($0["sealed"] as Data), createdAt: $0["created_at"],
                    updatedAt: $0["updated_at"])
            }
        }
    }

    // MARK: Risk baselines

    /// Saves baselines (created or replaced) in one transaction.
    public func saveRiskBaselines(_ items: [(key: String, isRole: Bool, json: [UInt8])], now: Int64) throws(WardenError)
    {
        guard !items.isEmpty else { return }
        try write { db in
            for i in items {
                try db.execute(
                    sql: """
                        INSERT INTO risk_baselines (key, is_role, state, updated_at) VALUES (?, ?, ?, ?)
                        ON CONFLICT(key, is_role) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at
                        """, arguments: [i.key, i.isRole ? 1 : 0, Data(i.json), now])
            }
        }
    }

    /// Every saved baseline.
    public func riskBaselines() throws(WardenError) -> [(key: String, isRole: Bool, json: [UInt8])] {
        try read { db in
            try Row.fetchAll(db, sql: "SELECT key, is_role, state FROM risk_baselines").map {
                (key: $0["key"], isRole: ($0["is_role"] as Int64) != 0, json: [UInt8]($0["state"] as Data))
            }
        }
    }

    // MARK: MCP tool pins

    /// Every recorded MCP tool definition of `server` (all servers when nil).
    public func mcpTools(server: String? = nil) throws(WardenError) -> [MCPToolRow] {
        try read { db in
            let rows =
                if let server {
                    try Row.fetchAll(
                        db, sql: "SELECT * FROM mcp_tools WHERE server = ? ORDER BY tool, first_seen",
                        arguments: [server])
                } else {
                    try Row.fetchAll(db, sql: "SELECT * FROM mcp_tools ORDER BY server, tool, first_seen")
                }
            return rows.map {
                MCPToolRow(
                    server: $0["server"], tool: $0["tool"], digest: $0["digest"], definition: $0["definition"],
                    state: $0["state"], flags: $0["flags"], firstSeen: $0["first_seen"], decidedAt: $0["decided_at"],
                    decidedBy: $0["decided_by"])
            }
        }
    }

    /// Records a definition not seen before (pinned when `row.state` is approved), with its audit entry; a definition
    /// that was pinned once and superseded comes back as pending (a server reverting to an old definition still needs
    /// an operator's approval).
    public func recordMCPTool(_ row: MCPToolRow, event: AuditEvent) throws(WardenError) {
        try write { db in
            try db.execute(
                sql: """
                    INSERT INTO mcp_tools (server, tool, digest, definition, state, flags, first_seen, decided_at,
                        decided_by)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                    ON CONFLICT(server, tool, digest) DO UPDATE SET state = 'pending', first_seen = excluded.first_seen
                    WHERE mcp_tools.state = 'superseded' AND excluded.state = 'pending'
                    """,
                arguments: [
                    row.server, row.tool, row.digest, row.definition, row.state, row.flags, row.firstSeen,
                    row.decidedAt, row.decidedBy,
                ])
            if db.changesCount == 1 { try audit(event, in: db) }
        }
    }

    /// Approves (pins) or rejects a recorded definition; approving supersedes the previous pin. Audited in the same
    /// transaction.
    public func decideMCPTool(
        server: String, tool: String, digest: String, approve: Bool, actor: String, now: Int64
    ) throws(WardenError) {
        try write { db in
            guard
                let state = try String.fetchOne(
                    db, sql: "SELECT state FROM mcp_tools WHERE server = ? AND tool = ? AND digest = ?",
                    arguments: [server, tool, digest])
            else { throw WardenError(.notFound, "no recorded definition \(digest) of \(server)/\(tool)") }
            if approve {
                guard state != "approved" else { return }
                try db.execute(
                    sql:
                        "UPDATE mcp_tools SET state = 'superseded' WHERE server = ? AND tool = ? AND state = 'approved'",
                    arguments: [server, tool])
            }
            try db.execute(
                sql: """
                    UPDATE mcp_tools SET state = ?, decided_at = ?, decided_by = ?
                    WHERE server = ? AND tool = ? AND digest = ?
                    """, arguments: [approve ? "approved" : "rejected", now, actor, server, tool, digest])
            try audit(
                AuditEvent(
                    kind: .admin, action: approve ? "mcp.tool.approve" : "mcp.tool.reject", actor: actor,
                    resource: "Tool::\"\(server)/\(tool)\"", details: [("digest", digest), ("previous_state", state)]),
                in: db)
        }
    }

    public func deleteSigningKeys(_ kids: [String]) throws(WardenError) {
        try write { db in
            for kid in kids { try db.execute(sql: "DELETE FROM signing_keys WHERE kid = ?", arguments: [kid]) }
        }
    }

    /// Whether the database answers (for `/readyz`).
    public func ping() -> Bool {
        (try? db.read { db in try Int.fetchOne(db, sql: "SELECT 1") }) == 1
    }
}
