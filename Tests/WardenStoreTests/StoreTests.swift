import Foundation
import GRDB
import Testing
import WardenCore

@testable import WardenStore

@Suite("SQLite store")
struct StoreTests {
    func store() throws -> (SQLiteStore, String) {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("warden-store-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let path = dir.appendingPathComponent("warden.sqlite").path
        return (try SQLiteStore(path: path), path)
    }

    func record(_ name: String, at t: Int64 = 1000) throws -> AgentRecord {
        var m = AgentManifest(name: name, owner: "o@example.com")
        m.roles = ["support"]
        return AgentRecord(
            id: UUID().uuidString, spiffeID: try SPIFFEID.agent(name, trustDomain: "warden.local"), manifest: m,
            manifestDigest: "sha256:" + String(repeating: "a", count: 64), state: .pending, createdAt: t, updatedAt: t)
    }

    @Test("register, look up by id, name and SPIFFE ID; names are unique")
    func register() throws {
        let (s, _) = try store()
        let r = try record("support-bot")
        try s.register(r, joinTokenHash: "h1", joinTokenExpiresAt: 2000, actor: "admin")
        #expect(try s.agent(r.id)?.name == "support-bot")
        #expect(try s.agent("support-bot")?.id == r.id)
        #expect(try s.agent("spiffe://warden.local/agent/support-bot")?.manifest == r.manifest)
        #expect(try s.agent("nobody") == nil)
        #expect(throws: WardenError(.conflict, "")) {
            try s.register(try record("support-bot"), joinTokenHash: "h2", joinTokenExpiresAt: 2000, actor: "admin")
        }
        #expect(try s.agents().count == 1)
    }

    @Test("join tokens burn once, expire, and are unknown otherwise")
    func joinTokens() throws {
        let (s, _) = try store()
        let r = try record("a")
        try s.register(r, joinTokenHash: "h1", joinTokenExpiresAt: 2000, actor: "admin")
        #expect(throws: WardenError(.invalidGrant, "")) { try s.burnJoinToken(hash: "nope", now: 1500) }
        #expect(try s.burnJoinToken(hash: "h1", now: 1500).id == r.id)
        #expect(throws: WardenError(.invalidGrant, "")) { try s.burnJoinToken(hash: "h1", now: 1500) }
        try s.issueJoinToken(agentID: r.id, hash: "h2", expiresAt: 2000, now: 1500, actor: "admin")
        #expect(throws: WardenError(.invalidGrant, "")) { try s.burnJoinToken(hash: "h2", now: 2000) }
        // The expired token was burnt by that attempt as well.
        #expect(throws: WardenError(.invalidGrant, "")) { try s.burnJoinToken(hash: "h2", now: 1000) }
        // A new token replaces any unused one.
        try s.issueJoinToken(agentID: r.id, hash: "h3", expiresAt: 3000, now: 1600, actor: "admin")
        try s.issueJoinToken(agentID: r.id, hash: "h4", expiresAt: 3000, now: 1600, actor: "admin")
        #expect(throws: WardenError(.invalidGrant, "")) { try s.burnJoinToken(hash: "h3", now: 1700) }
        #expect(try s.burnJoinToken(hash: "h4", now: 1700).id == r.id)
    }

    @Test("lifecycle transitions follow the rules and are recorded")
    func lifecycle() throws {
        let (s, _) = try store()
        let r = try record("a")
        try s.register(r, joinTokenHash: "h1", joinTokenExpiresAt: 2000, actor: "admin")
        #expect(throws: WardenError(.conflict, "")) {
            try s.transition(agentID: r.id, to: .quarantined, actor: "admin", reason: "x", now: 1100)
        }
        let active = try s.completeEnrollment(
            agentID: r.id, keyJWK: "{}", thumbprint: "t1", attestation: "manifest", now: 1100)
        #expect(active.state == .active)
        #expect(throws: WardenError(.invalidGrant, "")) {
            try s.completeEnrollment(agentID: r.id, keyJWK: "{}", thumbprint: "t1", attestation: "manifest", now: 1100)
        }
        _ = try s.transition(agentID: r.id, to: .quarantined, actor: "risk", reason: "spike", now: 1200)
        _ = try s.transition(agentID: r.id, to: .active, actor: "admin", reason: "cleared", now: 1300)
        _ = try s.transition(agentID: r.id, to: .revoked, actor: "admin", reason: "leak", now: 1400)
        #expect(throws: WardenError(.conflict, "")) {
            try s.transition(agentID: r.id, to: .active, actor: "admin", reason: "undo", now: 1500)
        }
        let events = try s.events(agentID: r.id)
        #expect(events.map(\.kind) == ["registered", "enrolled", "state_changed", "state_changed", "state_changed"])
        #expect(events.map(\.to) == [.pending, .active, .quarantined, .active, .revoked])
        #expect(events[2].actor == "risk" && events[2].reason == "spike")
        #expect(events.map(\.seq) == events.map(\.seq).sorted())
    }

    @Test("a key enrolled for one agent cannot be enrolled for another")
    func keyReuse() throws {
        let (s, _) = try store()
        let a = try record("a")
        let b = try record("b")
        try s.register(a, joinTokenHash: "ha", joinTokenExpiresAt: 2000, actor: "admin")
        try s.register(b, joinTokenHash: "hb", joinTokenExpiresAt: 2000, actor: "admin")
        _ = try s.completeEnrollment(
            agentID: a.id, keyJWK: "{}", thumbprint: "same", attestation: "manifest", now: 1100)
        #expect(throws: WardenError(.invalidKey, "")) {
            try s.completeEnrollment(
                agentID: b.id, keyJWK: "{}", thumbprint: "same", attestation: "manifest", now: 1100)
        }
    }

    @Test("state survives reopening; expired revocations are pruned")
    func reopen() throws {
        let (s, path) = try store()
        let r = try record("a")
        try s.register(r, joinTokenHash: "h1", joinTokenExpiresAt: 2000, actor: "admin")
        try s.revokeToken(jti: "j1", until: 1500, agentID: r.id, reason: "leak", now: 1000)
        try s.revokeToken(jti: "j2", until: 5000, agentID: nil, reason: "leak", now: 1000)
        try s.saveRotation(new: SigningKeyRow(kid: "k1", createdAt: 1000), retiredKid: nil, at: 1000)
        try s.saveRotation(new: SigningKeyRow(kid: "k2", createdAt: 2000), retiredKid: "k1", at: 2000)
        let again = try SQLiteStore(path: path)
        #expect(try again.agent("a")?.id == r.id)
        #expect(Set(try again.revokedTokens(now: 1200).map(\.jti)) == ["j1", "j2"])
        #expect(try again.revokedTokens(now: 1600).map(\.jti) == ["j2"])
        #expect(
            try again.signingKeys() == [
                SigningKeyRow(kid: "k1", createdAt: 1000, retiredAt: 2000), SigningKeyRow(kid: "k2", createdAt: 2000),
            ])
        #expect(try again.events(agentID: r.id).map(\.kind) == ["registered", "token_revoked"])
        #expect(again.ping())
    }

    // Before: GRDB's WAL set-up after the connection's own preparation left the writer at `synchronous = NORMAL`,
    // so commits (a revocation, a batch of audit entries) were synced only at checkpoints.
    @Test("the connection that writes commits with synchronous=FULL (each commit synced), also after reopening")
    func durableCommits() throws {
        let (s, path) = try store()
        #expect(try s.db.write { try Int.fetchOne($0, sql: "PRAGMA synchronous") } == 2)
        #expect(try s.db.read { try String.fetchOne($0, sql: "PRAGMA journal_mode") } == "wal")
        let again = try SQLiteStore(path: path)
        #expect(try again.db.write { try Int.fetchOne($0, sql: "PRAGMA synchronous") } == 2)
    }

    @Test("a file that is not a database is a clear storage error")
    func notADatabase() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent(
            "warden-bad-\(UUID().uuidString).sqlite"
        ).path
        try Data("this is not sqlite".utf8).write(to: URL(fileURLWithPath: path))
        #expect(throws: WardenError(.storage, "")) { try SQLiteStore(path: path) }
    }
}
