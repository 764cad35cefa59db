import Foundation
import WardenCore

// What the audit log keeps and how, as protocols the log owns: the seam a second database plugs into. `SQLiteStore`
// (WardenStore, through GRDB) implements them; nothing in this module names a database. Every operation runs inside
// a transaction of the database that also holds the changes being recorded, so that a change and its audit entry
// commit or roll back together, and the log's in-memory tip is published only when the transaction commits.

/// The audit log as the storage sees it: every change the storage records is appended here, in the change's own
/// write transaction. An append that throws rolls the change back: no unaudited change is ever stored.
package protocol AuditJournal: Sendable {
    func append(_ event: AuditEvent, in tx: any AuditTransaction) throws
}

/// A database that can hold the audit log.
package protocol AuditStorage: Sendable {
    /// Runs `body` in a write transaction (serialised with every other write), mapping failures to `storage`.
    func auditWrite<T>(_ body: (any AuditTransaction) throws -> T) throws(WardenError) -> T
    /// Runs `body` in a read transaction (a consistent snapshot).
    func auditRead<T>(_ body: (any AuditTransaction) throws -> T) throws(WardenError) -> T
    /// Attaches the log (once, at start-up): from then on every change the storage records is appended to it.
    func attach(journal: any AuditJournal)
}

/// Rows of the log read in one go (the verifier's chunks): sequence numbers, the entries' bytes end to end with their
/// end offsets, and each entry's stored chain value (nil when it is not 32 bytes).
package final class AuditRows: @unchecked Sendable {
    package var seqs: [Int64] = []
    package var chains: [Hash32?] = []
    package var offsets: [Int] = [0]
    package var bytes: [UInt8] = []
    /// Filled by the reader of the rows (leaf hashes), not by the storage.
    package var leaves: [Hash32] = []

    package init(capacity: Int) {
        seqs.reserveCapacity(capacity)
        chains.reserveCapacity(capacity)
        offsets.reserveCapacity(capacity + 1)
        bytes.reserveCapacity(capacity * 512)
    }

    package func append(seq: Int64, entry: UnsafeRawBufferPointer, chain: Hash32?) {
        seqs.append(seq)
        bytes.append(contentsOf: entry)
        offsets.append(bytes.count)
        chains.append(chain)
    }
}

/// The audit log's operations inside one transaction: entries (`seq`, the entry's canonical JSON, the chain value
/// after it), stored tree nodes (levels from ``AuditLog/storedLevel`` up), signed checkpoints (JWS by tree size) and
/// the pruning anchor (the tree size and chain value at the last pruning point).
package protocol AuditTransaction {
    // Reading
    func anchor() throws -> (size: Int64, chain: Data)?
    /// The largest stored sequence number (nil for no entries).
    func lastSeq() throws -> Int64?
    /// Entries from `seq` on with their chain values, in order (the log's tail at start-up).
    func entriesWithChain(from seq: Int64) throws -> [(seq: Int64, entry: String, chain: Data?)]
    /// The entries with `first <= seq < end`, in order, as their bytes; stops when `body` returns false.
    func forEachEntry(from first: Int64, below end: Int64, _ body: (Int64, UnsafeRawBufferPointer) throws -> Bool)
        throws
    /// Up to `limit` entries from `seq` on, appended to `rows`.
    func readRows(from seq: Int64, limit: Int, into rows: AuditRows) throws
    func chain(at seq: Int64) throws -> Data?
    func node(level: Int, index: Int64) throws -> Data?
    func latestCheckpoint() throws -> String?
    func checkpoints(from treeSize: Int64, limit: Int) throws -> [String]
    /// Every stored checkpoint with the tree size it is stored under, oldest first.
    func allCheckpoints() throws -> [(treeSize: Int64, jws: String)]
    func entries(after seq: Int64, limit: Int) throws -> [(Int64, String)]
    func entries(matching q: AuditLog.Query) throws -> [(Int64, String)]
    /// The `time` field of the newest entry.
    func latestEntryTime() throws -> String?
    /// The last sequence number whose entry's `time` is before `time` (RFC 3339, as entries write it); 0 when none.
    func lastSeq(before time: String) throws -> Int64
    // Writing
    func insertEntry(seq: Int64, entry: String, chain: Data) throws
    func insertNode(level: Int, index: Int64, hash: Data) throws
    func insertCheckpoint(treeSize: Int64, jws: String, at: Int64) throws
    func setAnchor(size: Int64, chain: Data) throws
    func deleteEntries(through seq: Int64) throws
    /// Runs `onCommit` after this transaction commits, or `onRollback` if it rolls back.
    func afterCommit(_ onCommit: @escaping @Sendable () -> Void, onRollback: @escaping @Sendable () -> Void)
}
