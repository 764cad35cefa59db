import Cedar
import Crypto
import Foundation
import GRDB
import Synchronization
import Testing
import WardenAudit
import WardenCore
import WardenIdentity
import WardenStore

/// A clock that advances 10 µs at every reading.
/// Ten microseconds later at every reading.
final class StepClock: WardenClock {
    let micros = Atomic<Int64>(1_795_000_000_000_000)
    func now() -> Int64 { micros.add(10, ordering: .relaxed).newValue }
    var wallMicros: Int64 { now() }
    var monotonicMicros: Int64 { now() }
    func advance(seconds: Int64) { micros.add(seconds * 1_000_000, ordering: .relaxed) }
}

struct Harness {
    let dir: String
    let store: SQLiteStore
    let log: AuditLog
    let key: SigningKey
    let clock: StepClock

    static func make(dir: String? = nil, key: SigningKey? = nil, every: Int64 = 10_000) throws -> Harness {
        let dir =
            dir
            ?? FileManager.default.temporaryDirectory.appendingPathComponent("warden-audit-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let store = try SQLiteStore(path: dir + "/warden.sqlite")
        let key = key ?? SigningKey(privateKey: P256.Signing.PrivateKey())
        let clock = StepClock()
        var settings = AuditLog.Settings(issuer: "http://127.0.0.1:8443", origin: "warden.local/audit")
        settings.checkpointEvery = every
        let log = try AuditLog(store: store, settings: settings, signer: { key }, clock: clock)
        return Harness(dir: dir, store: store, log: log, key: key, clock: clock)
    }

    var path: String { dir + "/warden.sqlite" }
    var keys: [String: P256.Signing.PublicKey] { [key.kid: key.privateKey.publicKey] }

    func fill(_ n: Int, from: Int = 1) async throws {
        for i in from..<(from + n) { try await log.record(Self.event(i)) }
    }

    /// Event `i`: a decision, denied when `i` is even.
    static func event(_ i: Int) -> AuditEvent {
        let agent = "spiffe://warden.local/agent/bot-\(i % 3)"
        return AuditEvent(
            kind: .decision, action: "call", actor: agent, agent: agent, resource: "Service::\"billing\"",
            decision: i % 2 == 0 ? .deny : .allow, reason: i % 2 == 0 ? "policy_denied" : nil, policies: ["p\(i % 5)"],
            trust: 80, message: "call \(i)",
            details: [("method", i % 4 == 0 ? "POST" : "GET"), ("path", "/r/billing/x")])
    }

    func verify(_ external: [Checkpoint] = []) throws -> AuditVerification {
        try AuditVerifier.verify(databasePath: path, keys: keys, external: external)
    }

    /// Plain SQL against the database file, as an attacker with file access would do it: drop the append-only
    /// triggers, then change rows.
    func tamper(_ sql: String, arguments: StatementArguments = []) throws {
        let q = try DatabaseQueue(path: path)
        try q.write { db in
            for name in try String.fetchAll(db, sql: "SELECT name FROM sqlite_master WHERE type = 'trigger'") {
                try db.execute(sql: "DROP TRIGGER \(name)")
            }
            try db.execute(sql: sql, arguments: arguments)
        }
    }

    /// Makes every audit insert fail as a full disk would (`false` undoes it).
    func failWrites(_ on: Bool) async throws {
        let q = try DatabaseQueue(path: path)
        try await q.write { db in
            try db.execute(
                sql: on
                    ? "CREATE TRIGGER full BEFORE INSERT ON audit_log BEGIN SELECT RAISE(ABORT, 'disk full'); END"
                    : "DROP TRIGGER full")
        }
    }

    func row(_ seq: Int64) throws -> (String, Data) {
        let q = try DatabaseQueue(path: path)
        return try q.read { db in
            let r = try Row.fetchOne(db, sql: "SELECT entry, chain FROM audit_log WHERE seq = ?", arguments: [seq])!
            return (r["entry"], r["chain"])
        }
    }
}

@Suite("Audit log: append, checkpoints, proofs, verification, tampering, retention")
struct AuditLogTests {
    @Test("concurrent durable appends get distinct consecutive numbers, and the log verifies")
    func appendAndVerify() async throws {
        let h = try Harness.make()
        let seqs = try await withThrowingTaskGroup(of: Int64.self) { group in
            for i in 1...300 { group.addTask { try await h.log.record(Harness.event(i)) } }
            var all: [Int64] = []
            for try await s in group { all.append(s) }
            return all.sorted()
        }
        #expect(seqs == Array(1...300))
        #expect(h.log.size == 300)
        let cp = try #require(try h.log.checkpoint())
        #expect(cp.treeSize == 300)
        let v = try h.verify()
        #expect(v.ok, "\(v.failure?.reason ?? "")")
        #expect(v.entries == 300 && v.treeSize == 300 && v.checkpointsMatched == 1)
        #expect(v.rootHash == cp.rootHash && v.chainHead == cp.chainHead)
        #expect(h.log.health.healthy && h.log.health.appended == 300)
        // The stored entry is the documented line: seq and time first, absent values omitted.
        let (entry, _) = try h.row(2)
        #expect(entry.hasPrefix("{\"seq\":2,\"time\":\"2026-11-18T"))
        #expect(entry.contains("\"decision\":\"deny\",\"reason\":\"policy_denied\""))
    }

    @Test("checkpoints are signed periodically, chained by prev, and verifiable with the public key alone")
    func checkpoints() async throws {
        let h = try Harness.make(every: 50)
        try await h.fill(120)
        let all = try h.log.checkpoints()
        #expect(all.map(\.treeSize).allSatisfy { $0 % 50 == 0 || $0 > 100 })
        #expect(all.count >= 2)
        for (a, b) in zip(all, all.dropFirst()) { #expect(b.previous == a.digest) }
        #expect(all.first?.previous == nil)
        for cp in all { try cp.verify(keys: h.keys) }
        let other = P256.Signing.PrivateKey().publicKey
        #expect(throws: WardenError.self) { try all[0].verify(keys: [h.key.kid: other]) }
        // The JSON form parses back to the same checkpoint.
        let parsed = try Checkpoint(parsing: all[0].json.serialized)
        #expect(parsed == all[0])
        // The time-based trigger: a minute later the next batch signs one.
        h.clock.advance(seconds: 61)
        try await h.log.record(Harness.event(121))
        #expect(try h.log.latestCheckpoint()?.treeSize == 121)
    }

    @Test("inclusion and consistency proofs served by the log verify against signed roots")
    func proofs() async throws {
        let h = try Harness.make()
        try await h.fill(37)
        let first = try #require(try h.log.checkpoint())
        try await h.fill(70, from: 38)
        let second = try #require(try h.log.checkpoint())
        for seq: Int64 in [1, 2, 16, 17, 33, 37] {
            let p = try h.log.inclusionProof(seq: seq, treeSize: 37)
            #expect(p.root == first.rootHash)
            #expect(
                Merkle.verifyInclusion(leaf: p.leaf, index: seq - 1, treeSize: 37, proof: p.proof, root: first.rootHash)
            )
        }
        let whole = try h.log.inclusionProof(seq: 100)
        #expect(whole.root == second.rootHash && whole.treeSize == 107)
        let c = try h.log.consistencyProof(first: 37, second: 107)
        #expect(c.firstRoot == first.rootHash && c.secondRoot == second.rootHash)
        #expect(
            Merkle.verifyConsistency(
                first: 37, second: 107, firstRoot: first.rootHash, secondRoot: second.rootHash, proof: c.proof))
        #expect(throws: WardenError.self) { try h.log.inclusionProof(seq: 108) }
        #expect(throws: WardenError.self) { try h.log.consistencyProof(first: 0, second: 5) }
    }

    @Test("a reopened log continues the chain and the tree where it stopped")
    func recovery() async throws {
        let h = try Harness.make()
        try await h.fill(53)
        let before = try #require(try h.log.checkpoint())
        let again = try Harness.make(dir: h.dir, key: h.key)
        #expect(again.log.size == 53)
        try await again.fill(20, from: 54)
        #expect(try again.log.checkpoint()?.previous == before.digest)
        let v = try again.verify()
        #expect(v.ok && v.treeSize == 73 && v.checkpointsMatched == 2, "\(v.failure?.reason ?? "")")
    }

    @Test("the append-only triggers refuse updates and deletes without pruning")
    func triggers() async throws {
        let h = try Harness.make()
        try await h.fill(5)
        _ = try h.log.checkpoint()
        let q = try DatabaseQueue(path: h.path)
        #expect(throws: (any Error).self) {
            try q.write { db in try db.execute(sql: "UPDATE audit_log SET entry = 'x' WHERE seq = 2") }
        }
        #expect(throws: (any Error).self) {
            try q.write { db in try db.execute(sql: "DELETE FROM audit_log WHERE seq = 5") }
        }
        #expect(throws: (any Error).self) {
            try q.write { db in try db.execute(sql: "DELETE FROM audit_checkpoints") }
        }
    }

    /// A log of 200 entries with a checkpoint at 200 (also kept outside the database).
    func tamperable() async throws -> (Harness, Checkpoint) {
        let h = try Harness.make()
        try await h.fill(200)
        let cp = try #require(try h.log.checkpoint())
        #expect(try h.verify([cp]).ok)
        return (h, cp)
    }

    @Test("tampering: a modified field is located at its entry")
    func modified() async throws {
        let (h, cp) = try await tamperable()
        try h.tamper(
            "UPDATE audit_log SET entry = replace(entry, '\"decision\":\"deny\"', '\"decision\":\"allow\"') WHERE seq = 42"
        )
        let v = try h.verify([cp])
        #expect(v.failure?.seq == 42)
        #expect(v.failure?.reason.contains("modified") == true)
    }

    @Test("tampering: a deleted entry is located where the log jumps")
    func deleted() async throws {
        let (h, cp) = try await tamperable()
        try h.tamper("DELETE FROM audit_log WHERE seq = 42")
        let v = try h.verify([cp])
        #expect(v.failure?.seq == 42)
        #expect(v.failure?.reason.contains("missing") == true)
    }

    @Test("tampering: an inserted entry (with a correct chain value) is located")
    func inserted() async throws {
        let (h, cp) = try await tamperable()
        let (entry42, chain42) = try h.row(42)
        let time42 = AuditEvent.parseRFC3339(try JSONValue.parse(entry42)["time"]!.stringValue!)!
        let forged = Harness.event(9999).entryJSON(seq: 43, time: time42)
        let forgedChain = Merkle.chainHash(Hash32(bytes: chain42)!, Merkle.leafHash(forged))
        try h.tamper("UPDATE audit_log SET seq = -seq WHERE seq > 42")
        try h.tamper("UPDATE audit_log SET seq = -seq + 1 WHERE seq < 0")
        try h.tamper(
            "INSERT INTO audit_log (seq, entry, chain) VALUES (43, ?, ?)", arguments: [forged, forgedChain.data])
        let v = try h.verify([cp])
        #expect(v.failure?.seq == 44)
        #expect(v.failure?.reason.contains("says it is entry 43") == true)
    }

    @Test("tampering: reordered entries are located")
    func reordered() async throws {
        let (h, cp) = try await tamperable()
        let (e42, c42) = try h.row(42)
        let (e43, c43) = try h.row(43)
        try h.tamper(
            "UPDATE audit_log SET entry = ?, chain = ? WHERE seq = 42", arguments: [e43, c43])
        try h.tamper(
            "UPDATE audit_log SET entry = ?, chain = ? WHERE seq = 43", arguments: [e42, c42])
        let v = try h.verify([cp])
        #expect(v.failure?.seq == 42)
    }

    @Test("tampering: truncation is detected against a checkpoint kept outside the database")
    func truncated() async throws {
        let (h, cp) = try await tamperable()
        try h.tamper("DELETE FROM audit_log WHERE seq > 150")
        try h.tamper("DELETE FROM audit_checkpoints WHERE tree_size > 150")
        // Consistent on its own (nothing inside the database remembers the lost entries)...
        #expect(try h.verify().ok)
        // ...but not against the checkpoint kept elsewhere.
        let v = try h.verify([cp])
        #expect(v.failure?.seq == 151)
        #expect(v.failure?.reason.contains("truncated") == true)
    }

    @Test("tampering: a modified entry with its whole chain recomputed fails the signed root")
    func recomputed() async throws {
        let (h, cp) = try await tamperable()
        let q = try DatabaseQueue(path: h.path)
        try h.tamper("SELECT 1")  // drops the triggers
        try await q.write { db in
            var chain = Hash32(bytes: try Data.fetchOne(db, sql: "SELECT chain FROM audit_log WHERE seq = 41")!)!
            let rows = try Row.fetchAll(db, sql: "SELECT seq, entry FROM audit_log WHERE seq >= 42 ORDER BY seq")
            for row in rows {
                let seq: Int64 = row["seq"]
                var entry: String = row["entry"]
                if seq == 42 { entry = entry.replacingOccurrences(of: "\"deny\"", with: "\"allow\"") }
                chain = Merkle.chainHash(chain, Merkle.leafHash(entry))
                try db.execute(
                    sql: "UPDATE audit_log SET entry = ?, chain = ? WHERE seq = ?", arguments: [entry, chain.data, seq])
            }
        }
        let v = try h.verify([cp])
        #expect(v.failure != nil)
        #expect(v.failure?.reason.contains("root hash") == true)
        #expect(v.failure?.reason.contains("1...200") == true)
        // Removing the stored checkpoint does not help while one is kept outside.
        try h.tamper("DELETE FROM audit_checkpoints")
        #expect(try h.verify([cp]).failure != nil)
    }

    @Test("tampering: a removed or replaced checkpoint breaks the checkpoint chain")
    func checkpointChain() async throws {
        let h = try Harness.make(every: 40)
        try await h.fill(130)
        #expect(try h.verify().ok)
        try h.tamper("DELETE FROM audit_checkpoints WHERE tree_size = 80")
        let v = try h.verify()
        #expect(v.failure?.reason.contains("checkpoint chain") == true)
    }

    @Test("pruning keeps the log verifiable behind a signed checkpoint, and the log continues after it")
    func prune() async throws {
        let h = try Harness.make()
        try await h.fill(100)
        // Nothing is pruned past the latest checkpoint.
        #expect(try h.log.prune(through: 90) == 0)
        _ = try h.log.checkpoint()
        #expect(try h.log.prune(through: 90) == 80)
        try await h.fill(30, from: 101)
        let cp = try #require(try h.log.checkpoint())
        let v = try h.verify([cp])
        #expect(v.ok, "\(v.failure?.reason ?? "")")
        #expect(v.anchor == 80 && v.entries == 51 && v.treeSize == 131)
        #expect(throws: WardenError.self) { try h.log.inclusionProof(seq: 3) }
        let p = try h.log.inclusionProof(seq: 120)
        #expect(Merkle.verifyInclusion(leaf: p.leaf, index: 119, treeSize: 131, proof: p.proof, root: cp.rootHash))
        let pruned = try h.log.query(
            {
                var q = AuditLog.Query()
                q.action = "audit.prune"
                return q
            }())
        #expect(pruned.count == 1)
        // Reopened, it rebuilds its tree from the stored nodes and the remaining entries.
        let again = try Harness.make(dir: h.dir, key: h.key)
        try await again.fill(5, from: 200)
        _ = try again.log.checkpoint()
        #expect(try again.verify().ok)
        // Entries behind the anchor cannot come back, and the anchor cannot move back.
        let q = try DatabaseQueue(path: h.path)
        #expect(throws: (any Error).self) {
            try q.write { db in try db.execute(sql: "UPDATE audit_anchor SET tree_size = 16") }
        }
    }

    @Test("queries filter by agent, decision, kind and time")
    func queries() async throws {
        let h = try Harness.make()
        try await h.fill(30)
        var q = AuditLog.Query()
        q.agent = "spiffe://warden.local/agent/bot-1"
        let byAgent = try h.log.query(q)
        #expect(byAgent.count == 10 && byAgent.allSatisfy { $0.1.contains("bot-1") })
        q.decision = .deny
        #expect(try h.log.query(q).allSatisfy { $0.1.contains("\"deny\"") && $0.1.contains("bot-1") })
        var t = AuditLog.Query()
        let (e10, _) = try h.row(10)
        let time10 = AuditEvent.parseRFC3339(
            String(e10.split(separator: "\"")[5]))!
        t.since = time10
        #expect(try h.log.query(t).first?.0 == 10)
        t.until = time10 + 1
        #expect(try h.log.query(t).map(\.0) == [10])
        t = AuditLog.Query()
        t.after = 25
        t.limit = 3
        #expect(try h.log.query(t).map(\.0) == [26, 27, 28])
    }

    @Test("a failing write fails closed: callers get errors, health says why, and a later commit recovers")
    func failClosed() async throws {
        let h = try Harness.make()
        try await h.fill(3)
        try await h.failWrites(true)
        await #expect(throws: WardenError.self) { try await h.log.record(Harness.event(4)) }
        #expect(!h.log.health.healthy)
        #expect(h.log.health.lastError?.contains("disk full") == true)
        #expect(throws: WardenError.self) { try h.log.submit(Harness.event(5)) }
        // A store change whose audit record cannot be written is not stored either.
        var m = AgentManifest(name: "ghost", owner: "o@example.com")
        m.roles = []
        let record = AgentRecord(
            id: "ghost-id", spiffeID: try SPIFFEID.agent("ghost", trustDomain: "warden.local"), manifest: m,
            manifestDigest: "sha256:00", state: .pending, createdAt: 1, updatedAt: 1)
        #expect(throws: WardenError.self) {
            try h.store.register(record, joinTokenHash: "x", joinTokenExpiresAt: 2, actor: "admin")
        }
        #expect(try h.store.agent("ghost") == nil)
        try await h.failWrites(false)
        #expect(try await h.log.record(Harness.event(6)) == 4)
        #expect(h.log.health.healthy)
        try h.store.register(record, joinTokenHash: "x", joinTokenExpiresAt: 2, actor: "admin")
        var r = AuditLog.Query()
        r.action = "agent.register"
        #expect(try h.log.query(r).count == 1)
        #expect(try h.verify().ok)
    }

    @Test("OCSF: decisions are API Activity with the security-control outcome, token grants Authorize Session")
    func ocsf() throws {
        let deny = Harness.event(4).entryJSON(seq: 7, time: 1_795_000_000_123_456)
        let e = try #require(OCSF.event(deny))
        #expect(e["class_uid"]?.integerValue == 6003)
        #expect(e["activity_id"]?.integerValue == 1)  // POST
        #expect(e["type_uid"]?.integerValue == 600301)
        #expect(e["time"]?.integerValue == 1_795_000_000_123)
        #expect(e["status_id"]?.integerValue == 2 && e["action_id"]?.integerValue == 2)
        #expect(e["metadata"]?["sequence"]?.integerValue == 7)
        #expect(e["metadata"]?["version"]?.stringValue == "1.4.0")
        #expect(e["actor"]?["user"]?["uid"]?.stringValue == "spiffe://warden.local/agent/bot-1")
        #expect(e["api"]?["operation"]?.stringValue == "call")
        let token = AuditEvent(
            kind: .decision, action: "token.issue", actor: "spiffe://warden.local/agent/a",
            agent: "spiffe://warden.local/agent/a", resource: "http://127.0.0.1:8443", decision: .allow,
            details: [("scope", "route:tickets tool:kb/search")]
        ).entryJSON(seq: 1, time: 0)
        let t = try #require(OCSF.event(token))
        #expect(t["class_uid"]?.integerValue == 3003 && t["type_uid"]?.integerValue == 300301)
        #expect(t["privileges"] == .array([.string("route:tickets"), .string("tool:kb/search")]))
        #expect(t["user"]?["name"]?.stringValue == "a")
        #expect(OCSF.event("not json") == nil)
    }

    @Test("the file exporter writes every entry once, rotates by size and resumes after a restart")
    func fileExport() async throws {
        let h = try Harness.make()
        try await h.fill(120)
        let file = h.dir + "/export/audit.jsonl"
        try FileManager.default.createDirectory(atPath: h.dir + "/export", withIntermediateDirectories: true)
        let exporter = AuditFileExporter(log: h.log, path: file, format: .jsonl, maxBytes: 8192, keep: 50)
        #expect(try exporter.exportPending() == 120)
        try await h.fill(10, from: 121)
        let again = AuditFileExporter(log: h.log, path: file, format: .jsonl, maxBytes: 8192, keep: 50)
        #expect(try again.exportPending() == 130)
        var lines: [String] = []
        let names = try FileManager.default.contentsOfDirectory(atPath: h.dir + "/export").filter {
            !$0.hasSuffix(".seq")
        }
        #expect(names.count >= 2)
        for name in names {
            lines += try String(contentsOfFile: h.dir + "/export/" + name, encoding: .utf8).split(separator: "\n").map(
                String.init)
        }
        let seqs = lines.compactMap { AuditVerifier.seq(of: $0) }.sorted()
        #expect(seqs == Array(1...130))
    }
}

@Suite("Audit log crash safety")
struct AuditCrashTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    @Test("SIGKILL while appending at full speed loses no acknowledged event and the log verifies")
    func sigkill() async throws {
        let binary =
            ProcessInfo.processInfo.environment["WARDEN_AUDIT_BENCH_BIN"]
            ?? Self.root.appendingPathComponent(".build/debug/AuditBenchmark").path
        guard FileManager.default.isExecutableFile(atPath: binary) else {
            print("skipped: \(binary) is not built (swift build --build-tests builds it)")
            return
        }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("warden-crash-\(UUID().uuidString)")
            .path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: binary)
        p.arguments = ["--crash-child", dir]
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        // Read acknowledgements until enough arrived (bounded: at most 60 s), then kill without warning.
        var acked: [Int64: String] = [:]
        var buffer = Data()
        let deadline = ContinuousClock.now + .seconds(60)
        let handle = out.fileHandleForReading
        func consume() {
            while let nl = buffer.firstIndex(of: 10) {
                let line = String(decoding: buffer[buffer.startIndex..<nl], as: UTF8.self)
                buffer.removeSubrange(buffer.startIndex...nl)
                let parts = line.split(separator: " ")
                if parts.count == 3, parts[0] == "ack", let seq = Int64(parts[1]) { acked[seq] = String(parts[2]) }
            }
        }
        while acked.count < 3000 && ContinuousClock.now < deadline {
            let chunk = handle.availableData
            if chunk.isEmpty { break }
            buffer.append(chunk)
            consume()
        }
        kill(p.processIdentifier, SIGKILL)
        // What the child printed before it died was acknowledged too.
        buffer.append(handle.readDataToEndOfFile())
        consume()
        p.waitUntilExit()
        #expect(p.terminationReason == .uncaughtSignal)
        #expect(acked.count >= 3000, "only \(acked.count) acknowledgements before the deadline")

        let pem = try String(contentsOfFile: dir + "/checkpoint.pub", encoding: .utf8)
        let kid = try String(contentsOfFile: dir + "/checkpoint.kid", encoding: .utf8).trimmingCharacters(
            in: .whitespacesAndNewlines)
        let keys = [kid: try P256.Signing.PublicKey(pemRepresentation: pem)]
        let v = try AuditVerifier.verify(databasePath: dir + "/warden.sqlite", keys: keys)
        #expect(v.ok, "\(v.failure?.reason ?? "")")
        #expect(v.checkpointsMatched >= 1)
        let maxAcked = acked.keys.max() ?? 0
        #expect(v.treeSize >= maxAcked)
        // Every acknowledged event is stored under its number.
        let q = try DatabaseQueue(path: dir + "/warden.sqlite")
        let stored = try await q.read { db in
            try Dictionary(
                uniqueKeysWithValues: Row.fetchAll(db, sql: "SELECT seq, entry FROM audit_log").map {
                    (($0["seq"] as Int64), ($0["entry"] as String))
                })
        }
        let missing = acked.filter { seq, id in stored[seq]?.contains("\"message\":\"event \(id)\"") != true }
        #expect(missing.isEmpty, "\(missing.count) acknowledged events missing or different after the crash")
        // And the log reopens and continues.
        let store = try SQLiteStore(path: dir + "/warden.sqlite")
        let key = SigningKey(privateKey: P256.Signing.PrivateKey())
        let log = try AuditLog(
            store: store, settings: .init(issuer: "x", origin: "warden.local/audit"), signer: { key })
        #expect(try await log.record(Harness.event(1)) == v.treeSize + 1)
    }
}

@Suite("Audit log: what the review found")
struct AuditReviewTests {
    @Test("a planted checkpoint that does not describe the log stops the start")
    func plantedCheckpoint() async throws {
        let h = try Harness.make()
        try await h.fill(20)
        let forged = try Checkpoint.sign(
            key: h.key, issuer: "x", origin: "warden.local/audit", treeSize: 1_000_000, rootHash: .zero,
            chainHead: .zero, issuedAt: 1, previous: nil)
        try h.tamper(
            "INSERT INTO audit_checkpoints (tree_size, jws, created_at) VALUES (?, ?, 1)",
            arguments: [forged.treeSize, forged.jws])
        #expect(throws: WardenError.self) { try Harness.make(dir: h.dir, key: h.key) }
    }

    @Test("the pruning anchor moved without a covering checkpoint, or a checkpoint of another log, fails verification")
    func anchorAndOrigin() async throws {
        let h = try Harness.make()
        try await h.fill(40)
        try h.tamper("INSERT INTO audit_anchor (id, tree_size, chain) VALUES (1, 32, zeroblob(32))")
        try h.tamper("DELETE FROM audit_log WHERE seq <= 32")
        let v = try h.verify()
        #expect(v.failure?.reason.contains("no signed checkpoint covers the pruning point") == true)

        let other = try Harness.make()
        try await other.fill(3)
        let cp = try #require(try other.log.checkpoint())
        let v2 = try AuditVerifier.verify(
            databasePath: other.path, keys: other.keys, external: [cp], origin: "elsewhere.example/audit")
        #expect(v2.failure?.reason.contains("another log") == true)
    }

    @Test("a failing log recovers through its probe, which records the failure")
    func probe() async throws {
        let h = try Harness.make()
        try await h.fill(2)
        try await h.failWrites(true)
        await #expect(throws: WardenError.self) { try await h.log.record(Harness.event(3)) }
        await h.log.probe()
        #expect(!h.log.health.healthy)
        try await h.failWrites(false)
        await h.log.probe()
        #expect(h.log.health.healthy)
        var r = AuditLog.Query()
        r.action = "audit.recovered"
        #expect(try h.log.query(r).first?.1.contains("disk full") == true)
        // A flush with nothing queued proves nothing about writes.
        try await h.failWrites(true)
        await #expect(throws: WardenError.self) { try await h.log.record(Harness.event(4)) }
        await h.log.flush()
        #expect(!h.log.health.healthy)
    }

    @Test("impossible dates are refused")
    func dates() {
        #expect(AuditEvent.parseRFC3339("2026-02-31T00:00:00Z") == nil)
        #expect(AuditEvent.parseRFC3339("2024-02-29T00:00:00Z") != nil)
        #expect(AuditEvent.parseRFC3339("2026-11-24T10:00:00+24:00") == nil)
    }
}
