import Crypto
import Foundation
import GRDB
import GRDBSQLite
import WardenAudit
import WardenCore

// The audit log's storage in SQLite (``AuditStorage``, owned by WardenAudit): its tables are created by the store's
// `v2-audit` migration, with every other table, and its operations run in the store's transactions, so an agent's
// transition and its `agent.state` entry commit together.

extension SQLiteStore: AuditStorage {
    package func auditWrite<T>(_ body: (any AuditTransaction) throws -> T) throws(WardenError) -> T {
        try write { db in try body(SQLiteAuditTransaction(db: db)) }
    }

    package func auditRead<T>(_ body: (any AuditTransaction) throws -> T) throws(WardenError) -> T {
        try read { db in try body(SQLiteAuditTransaction(db: db)) }
    }
}

/// The audit log's operations on one GRDB transaction.
struct SQLiteAuditTransaction: AuditTransaction {
    let db: Database

    func anchor() throws -> (size: Int64, chain: Data)? {
        try Row.fetchOne(db, sql: "SELECT tree_size, chain FROM audit_anchor WHERE id = 1").map {
            (size: $0["tree_size"], chain: ($0["chain"] as Data?) ?? Data())
        }
    }

    func lastSeq() throws -> Int64? { try Int64.fetchOne(db, sql: "SELECT max(seq) FROM audit_log") }

    func entriesWithChain(from seq: Int64) throws -> [(seq: Int64, entry: String, chain: Data?)] {
        try Row.fetchAll(
            db, sql: "SELECT seq, entry, chain FROM audit_log WHERE seq >= ? ORDER BY seq", arguments: [seq]
        ).map { (seq: $0["seq"], entry: $0["entry"], chain: $0["chain"]) }
    }

    func forEachEntry(
        from first: Int64, below end: Int64, _ body: (Int64, UnsafeRawBufferPointer) throws -> Bool
    ) throws {
        let rows = try Row.fetchCursor(
            db, sql: "SELECT seq, entry FROM audit_log WHERE seq >= ? AND seq < ? ORDER BY seq",
            arguments: [first, end])
        while let row = try rows.next() {
            let seq: Int64 = row[0]
            let more = try row.withUnsafeData(atIndex: 1) { data in
                try (data ?? Data()).withUnsafeBytes { try body(seq, $0) }
            }
            if !more { return }
        }
    }

    func readRows(from seq: Int64, limit: Int, into rows: AuditRows) throws {
        // The verifier reads the whole log through here: straight from the statement, no row objects.
        let statement = try db.cachedStatement(
            sql: "SELECT seq, entry, chain FROM audit_log WHERE seq >= ? ORDER BY seq LIMIT ?")
        let raw = statement.sqliteStatement
        sqlite3_reset(raw)
        sqlite3_bind_int64(raw, 1, seq)
        sqlite3_bind_int64(raw, 2, Int64(limit))
        defer { sqlite3_reset(raw) }
        while true {
            let rc = sqlite3_step(raw)
            if rc == SQLITE_DONE { return }
            guard rc == SQLITE_ROW else {
                throw WardenError(.storage, "the audit log could not be read (SQLite error \(rc))")
            }
            let count = Int(sqlite3_column_bytes(raw, 1))
            let entry = UnsafeRawBufferPointer(start: sqlite3_column_blob(raw, 1), count: count)
            let c = sqlite3_column_blob(raw, 2)
            rows.append(
                seq: sqlite3_column_int64(raw, 0), entry: entry,
                chain: c != nil && sqlite3_column_bytes(raw, 2) == 32 ? Hash32(pointer: UnsafeRawPointer(c!)) : nil)
        }
    }

    func chain(at seq: Int64) throws -> Data? {
        try Data.fetchOne(db, sql: "SELECT chain FROM audit_log WHERE seq = ?", arguments: [seq])
    }

    func node(level: Int, index: Int64) throws -> Data? {
        try Data.fetchOne(
            db, sql: "SELECT hash FROM audit_nodes WHERE level = ? AND idx = ?", arguments: [level, index])
    }

    func latestCheckpoint() throws -> String? {
        try String.fetchOne(db, sql: "SELECT jws FROM audit_checkpoints ORDER BY tree_size DESC LIMIT 1")
    }

    func checkpoints(from treeSize: Int64, limit: Int) throws -> [String] {
        try String.fetchAll(
            db, sql: "SELECT jws FROM audit_checkpoints WHERE tree_size >= ? ORDER BY tree_size LIMIT ?",
            arguments: [treeSize, limit])
    }

    func allCheckpoints() throws -> [(treeSize: Int64, jws: String)] {
        try Row.fetchAll(db, sql: "SELECT tree_size, jws FROM audit_checkpoints ORDER BY tree_size").map {
            (treeSize: $0["tree_size"], jws: $0["jws"])
        }
    }

    func entries(after seq: Int64, limit: Int) throws -> [(Int64, String)] {
        try Row.fetchAll(
            db, sql: "SELECT seq, entry FROM audit_log WHERE seq > ? ORDER BY seq LIMIT ?", arguments: [seq, limit]
        ).map { ($0[0], $0[1]) }
    }

    func entries(matching q: AuditLog.Query) throws -> [(Int64, String)] {
        var clauses = ["seq > ?"]
        var args: [any DatabaseValueConvertible] = [q.after]
        for (field, value) in [
            ("agent", q.agent), ("decision", q.decision?.rawValue), ("kind", q.kind?.rawValue), ("action", q.action),
        ] {
            if let value {
                clauses.append("json_extract(entry, '$.\(field)') = ?")
                args.append(value)
            }
        }
        if let s = q.since {
            clauses.append("json_extract(entry, '$.time') >= ?")
            args.append(AuditEvent.rfc3339(micros: s))
        }
        if let u = q.until {
            clauses.append("json_extract(entry, '$.time') < ?")
            args.append(AuditEvent.rfc3339(micros: u))
        }
        let sql = "SELECT seq, entry FROM audit_log WHERE \(clauses.joined(separator: " AND ")) ORDER BY seq LIMIT ?"
        args.append(max(1, min(q.limit, 10_000)))
        return try Row.fetchAll(db, sql: sql, arguments: StatementArguments(args)).map { ($0[0], $0[1]) }
    }

    func latestEntryTime() throws -> String? {
        try String.fetchOne(db, sql: "SELECT json_extract(entry, '$.time') FROM audit_log ORDER BY seq DESC LIMIT 1")
    }

    func lastSeq(before time: String) throws -> Int64 {
        try Int64.fetchOne(
            db, sql: "SELECT max(seq) FROM audit_log WHERE json_extract(entry, '$.time') < ?", arguments: [time]) ?? 0
    }

    func insertEntry(seq: Int64, entry: String, chain: Data) throws {
        try db.cachedStatement(sql: "INSERT INTO audit_log (seq, entry, chain) VALUES (?, ?, ?)")
            .execute(arguments: [seq, entry, chain])
    }

    func insertNode(level: Int, index: Int64, hash: Data) throws {
        try db.cachedStatement(sql: "INSERT INTO audit_nodes (level, idx, hash) VALUES (?, ?, ?)")
            .execute(arguments: [level, index, hash])
    }

    func insertCheckpoint(treeSize: Int64, jws: String, at: Int64) throws {
        try db.execute(
            sql: "INSERT INTO audit_checkpoints (tree_size, jws, created_at) VALUES (?, ?, ?)",
            arguments: [treeSize, jws, at])
    }

    func setAnchor(size: Int64, chain: Data) throws {
        try db.execute(
            sql: """
                INSERT INTO audit_anchor (id, tree_size, chain) VALUES (1, ?, ?)
                ON CONFLICT(id) DO UPDATE SET tree_size = excluded.tree_size, chain = excluded.chain
                """, arguments: [size, chain])
    }

    func deleteEntries(through seq: Int64) throws {
        try db.execute(sql: "DELETE FROM audit_log WHERE seq <= ?", arguments: [seq])
    }

    func afterCommit(_ onCommit: @escaping @Sendable () -> Void, onRollback: @escaping @Sendable () -> Void) {
        db.afterNextTransaction(onCommit: { _ in onCommit() }, onRollback: { _ in onRollback() })
    }
}

extension AuditVerifier {
    /// Opens `databasePath` read-only and verifies it.
    public static func verify(
        databasePath: String, keys: [String: P256.Signing.PublicKey], external: [Checkpoint] = [],
        origin: String? = nil
    ) throws(WardenError) -> AuditVerification {
        guard FileManager.default.fileExists(atPath: databasePath) else {
            throw WardenError(.notFound, "no database at \(databasePath)")
        }
        var config = Configuration()
        config.readonly = true
        do {
            let queue = try DatabaseQueue(path: databasePath, configuration: config)
            return try queue.read { db in
                try verify(SQLiteAuditTransaction(db: db), keys: keys, external: external, origin: origin)
            }
        } catch let e as WardenError {
            throw e
        } catch {
            throw WardenError(.storage, "cannot read the audit log in \(databasePath): \(error)")
        }
    }
}
