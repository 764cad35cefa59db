import Cedar
import Foundation
import Synchronization
import Testing
import WardenCore
import WardenGateway
import WardenStore
import WardenTestSupport

@testable import WardenControlPlane
@testable import WardenServer

@Suite("Rate limiter")
struct RateLimiterTests {
    @Test("a bucket allows its burst, refuses with the wait, refills at its rate; keys are independent")
    func buckets() {
        let clock = ManualSeconds()
        let limiter = RateLimiter(clock: clock)
        let limit = RateLimit(perSecond: 4, burst: 2)
        #expect(limiter.take("a", limit) == nil)
        #expect(limiter.take("a", limit) == nil)
        let wait = limiter.take("a", limit)
        #expect(wait == 0.25)
        #expect(limiter.take("b", limit) == nil)
        clock.advance(0.25)
        #expect(limiter.take("a", limit) == nil)
        #expect(limiter.take("a", limit) != nil)
        clock.advance(100)
        #expect(limiter.take("a", limit) == nil)
        #expect(limiter.take("a", limit) == nil)
        #expect(limiter.take("a", limit) != nil)
        limiter.refund("a")
        #expect(limiter.take("a", limit) == nil)
    }

    @Test("the table is bounded: refilled buckets are dropped to make room, drained ones are kept")
    func bounded() {
        let clock = ManualSeconds()
        let limiter = RateLimiter(capacity: 16, shards: 1, clock: clock)
        let limit = RateLimit(perSecond: 1, burst: 1)
        for i in 0..<16 { #expect(limiter.take("k\(i)", limit) == nil) }
        // Every bucket is drained: a new key cannot evict them, so it is refused (fail closed).
        #expect(limiter.take("new", limit) != nil)
        #expect(limiter.count == 16)
        clock.advance(5)
        #expect(limiter.take("new", limit) == nil)
        #expect(limiter.count == 1)
    }

    @Test("rates parse as N per second, minute, hour or day")
    func parse() {
        #expect(RateLimit(perSecond: 5).burst == 5)
        #expect(RateLimit(perSecond: 0.5).burst == 1)
    }
}

@Suite("Secrets store")
struct SecretStoreTests {
    @Test("values are sealed at rest, listed without values, bound to their name, and the key file is 0600")
    func sealed() throws {
        let f = try Fixture()
        try f.cp.secrets.set("billing-api-key", value: Array("sk_live_0123456789".utf8), now: f.clock.now)
        #expect(f.cp.secrets.list().map(\.name) == ["billing-api-key"])
        #expect(f.cp.secrets.list().first?.json.serialized.contains("sk_live") == false)
        // Nothing readable in the database file.
        let db = try Data(contentsOf: URL(fileURLWithPath: f.dir + "/warden.sqlite"))
        let wal = (try? Data(contentsOf: URL(fileURLWithPath: f.dir + "/warden.sqlite-wal"))) ?? Data()
        #expect(db.range(of: Data("sk_live".utf8)) == nil && wal.range(of: Data("sk_live".utf8)) == nil)
        var st = stat()
        #expect(stat(f.dir + "/secrets.key", &st) == 0 && st.st_mode & 0o777 == 0o600)
        // A sealed value copied to another name does not open there.
        try #require(f.cp.store as? SQLiteStore).write { db in
            try db.execute(
                sql:
                    "INSERT INTO secrets (name, sealed, created_at, updated_at) SELECT 'other', sealed, 0, 0 FROM secrets"
            )
        }
        try f.cp.secrets.reload()
        #expect(f.cp.secrets.list().count == 2)
        #expect(f.cp.secrets.value("other") == nil)
        #expect(f.cp.secrets.value("billing-api-key") == "sk_live_0123456789")
        // Bad values are refused with a reason.
        #expect(throws: WardenError.self) { try f.cp.secrets.set("x", value: Array("a\r\nInjected: 1".utf8), now: 0) }
        #expect(throws: WardenError.self) { try f.cp.secrets.set("bad/name", value: [0x41], now: 0) }
        #expect(throws: WardenError.self) { try f.cp.secrets.set("latin1", value: [0x41, 0xE9], now: 0) }
        #expect(throws: WardenError.self) { try f.cp.secrets.set("empty", value: [], now: 0) }
        try f.cp.secrets.delete("other")
        #expect(throws: WardenError.self) { try f.cp.secrets.delete("other") }
        // Changes are audited by name only.
        let log = try f.cp.audit.entries(after: 0, limit: 1000).map(\.1).joined()
        #expect(
            log.contains("secret.create") && log.contains("secret:billing-api-key") && log.contains("secret.delete"))
        #expect(!log.contains("sk_live"))
    }
}

@Suite("Policy engine")
struct PolicyEngineTests {
    @Test("a new data directory gets the demo set; @id names policies; a broken set is refused and the last stays")
    func load() throws {
        let f = try Fixture()
        let snap = f.cp.policies.snapshot
        #expect(snap.files == [f.dir + "/policies/demo.cedar"])
        #expect(snap.policies.policies.map(\.id).contains("finance-is-finance-only"))
        #expect(snap.forbids.contains("finance-is-finance-only") && !snap.forbids.contains("support-segment"))
        try "permit (principal, action, resource".write(
            toFile: f.dir + "/policies/broken.cedar", atomically: true, encoding: .utf8)
        #expect(throws: WardenError.self) { _ = try f.cp.policies.prepare(now: 0) }
        #expect(f.cp.policies.snapshot.digest == snap.digest)
        // Two files may not both name a policy the same.
        try #"@id("support-segment") permit (principal, action, resource);"#.write(
            toFile: f.dir + "/policies/broken.cedar", atomically: true, encoding: .utf8)
        #expect(throws: WardenError.self) { _ = try f.cp.policies.prepare(now: 0) }
        // A data directory with a broken policy set does not start.
        #expect(throws: WardenError.self) { _ = try f.reopened() }
    }

    @Test("the demo set decides the README's cases")
    func demo() throws {
        let f = try Fixture()
        let bot = try f.agent("support-bot")
        func decide(
            _ agent: AgentRecord, _ resource: Entity, method: String = "GET", trust: Int64? = 70
        ) -> PolicyEngine.Verdict {
            let principal = AgentDirectory.entity(agent)
            let entities = try! Entities([principal, resource])
            var context: [String: Value] = ["method": .string(method)]
            if let trust { context["trust"] = .long(trust) }
            return f.cp.policies.authorize(
                Request(
                    principal: principal.uid, action: EntityUID("Action", "call"), resource: resource.uid,
                    context: context), entities: entities)
        }
        let tickets = Entity(uid: EntityUID("Service", "tickets"), parents: [EntityUID("Segment", "support")])
        let billing = Entity(uid: EntityUID("Service", "billing"), parents: [EntityUID("Segment", "finance")])
        #expect(decide(bot.record, tickets).allowed)
        #expect(decide(bot.record, tickets, method: "POST", trust: 40).policies == ["writes-need-trust"])
        #expect(decide(bot.record, billing).policies == ["finance-is-finance-only"])
        let recon = try f.agent("recon", roles: ["reconciliation"], team: "finance")
        #expect(decide(recon.record, billing).allowed)
        // A forbid that cannot be evaluated (no trust in the context) denies instead of being skipped.
        let unknown = decide(bot.record, tickets, method: "POST", trust: nil)
        #expect(!unknown.allowed && unknown.reason == "policy_error" && unknown.policies == ["writes-need-trust"])
    }
}
