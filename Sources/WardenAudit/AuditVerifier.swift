import Cedar
import Crypto
import Dispatch
import Foundation
import Synchronization
import WardenCore

/// The outcome of verifying an audit log.
public struct AuditVerification: Sendable {
    public struct Failure: Sendable, Hashable {
        /// The entry where the log stops being trustworthy, when one can be named.
        public var seq: Int64?
        public var reason: String
    }

    /// Entries recomputed (those after the pruning anchor).
    public var entries: Int64 = 0
    /// Entries pruned behind a signed checkpoint.
    public var anchor: Int64 = 0
    public var treeSize: Int64 = 0
    public var rootHash = Merkle.emptyRoot
    public var chainHead = Hash32.zero
    /// Checkpoints whose signature and place in the checkpoint chain were checked.
    public var checkpoints = 0
    /// Checkpoints (stored or given) whose root hash and chain head were compared with the recomputed log.
    public var checkpointsMatched = 0
    public var failure: Failure?

    public var ok: Bool { failure == nil }

    public var json: JSONValue {
        var pairs: [(String, JSONValue)] = [
            ("ok", .bool(ok)), ("entries", .number(String(entries))), ("pruned", .number(String(anchor))),
            ("tree_size", .number(String(treeSize))), ("root_hash", .string(rootHash.hex)),
            ("chain_head", .string(chainHead.hex)), ("checkpoints", .number(String(checkpoints))),
            ("checkpoints_matched", .number(String(checkpointsMatched))),
        ]
        if let failure {
            pairs.append(
                (
                    "failure",
                    .object([
                        ("seq", failure.seq.map { .number(String($0)) } ?? .null), ("reason", .string(failure.reason)),
                    ])
                ))
        }
        return .object(pairs)
    }
}

/// Recomputes an audit log from its database: the hash chain entry by entry, the Merkle tree, every stored checkpoint
/// (signature, checkpoint chain, root hash and chain head) and any checkpoint kept outside the database. Reports the
/// first thing that does not hold, with the entry where it happens: a modified entry, a removed one (a gap), an
/// inserted or moved one (an entry that names another position), entries altered with their chain recomputed (a
/// signed root that no longer matches) and a truncated log (a signed checkpoint larger than the log).
public enum AuditVerifier {
    struct Target {
        var size: Int64
        var root: Hash32
        var chain: Hash32
        var label: String
    }

    /// Verifies the log in `tx` (a read transaction). `origin` (`<trust domain>/audit`), when given, is the log every
    /// checkpoint must be for.
    package static func verify(
        _ tx: any AuditTransaction, keys: [String: P256.Signing.PublicKey], external: [Checkpoint] = [],
        origin expected: String? = nil
    ) throws -> AuditVerification {
        var result = AuditVerification()
        func fail(_ seq: Int64?, _ reason: String) -> AuditVerification {
            result.failure = .init(seq: seq, reason: reason)
            return result
        }
        // The pruning anchor.
        var chain = Hash32.zero
        if let stored = try tx.anchor() {
            result.anchor = stored.size
            guard let c = Hash32(bytes: stored.chain) else {
                return fail(nil, "the pruning anchor's chain value is not 32 bytes")
            }
            chain = c
        }
        let anchor = result.anchor

        // The checkpoint chain.
        var targets: [Int64: Target] = [:]
        var previous: Checkpoint?
        var origin = expected
        for row in try tx.allCheckpoints() {
            let size = row.treeSize
            let cp: Checkpoint
            do { cp = try Checkpoint(parsing: row.jws) } catch {
                return fail(nil, "the checkpoint stored at tree size \(size) cannot be parsed: \(error.message)")
            }
            guard cp.treeSize == size else {
                return fail(nil, "the checkpoint stored at tree size \(size) is signed for tree size \(cp.treeSize)")
            }
            do { try cp.verify(keys: keys) } catch { return fail(nil, error.message) }
            if let previous {
                guard cp.previous == previous.digest else {
                    return fail(
                        nil,
                        "the checkpoint chain is broken between tree sizes \(previous.treeSize) and \(size): "
                            + "a checkpoint was removed, inserted or replaced")
                }
                guard cp.issuedAt >= previous.issuedAt else {
                    return fail(nil, "the checkpoint at tree size \(size) is older than the one before it")
                }
            } else if cp.previous != nil {
                return fail(nil, "the first stored checkpoint (tree size \(size)) names a predecessor that is missing")
            }
            if let origin, origin != cp.origin {
                return fail(nil, "the checkpoint at tree size \(size) is for another log (\(cp.origin))")
            }
            origin = cp.origin
            previous = cp
            result.checkpoints += 1
            targets[size] = Target(size: size, root: cp.rootHash, chain: cp.chainHead, label: "signed checkpoint")
        }
        for cp in external {
            do { try cp.verify(keys: keys) } catch {
                return fail(nil, "the checkpoint kept outside the database: \(error.message)")
            }
            if let origin, origin != cp.origin {
                return fail(nil, "the checkpoint kept outside the database is for another log (\(cp.origin))")
            }
            if let t = targets[cp.treeSize] {
                guard t.root == cp.rootHash && t.chain == cp.chainHead else {
                    return fail(
                        nil,
                        "the checkpoint kept outside the database disagrees with the stored checkpoint at tree size "
                            + "\(cp.treeSize): the stored one was replaced")
                }
                continue  // the same checkpoint, already counted
            }
            guard cp.treeSize >= anchor else {
                return fail(
                    nil,
                    "the checkpoint kept outside the database covers \(cp.treeSize) entries, but the log says entries "
                        + "up to \(anchor) were pruned: it cannot be checked (was the pruning anchor moved?)")
            }
            origin = cp.origin
            result.checkpoints += 1
            targets[cp.treeSize] = Target(
                size: cp.treeSize, root: cp.rootHash, chain: cp.chainHead, label: "checkpoint kept outside the database"
            )
        }
        let pendingTargets = targets.values.filter { $0.size >= anchor && $0.size > 0 }.sorted { $0.size < $1.size }
        // Entries are only pruned behind a signed checkpoint, and the pruning itself is an entry after the anchor.
        if anchor > 0 && pendingTargets.isEmpty {
            return fail(
                anchor + 1, "entries up to \(anchor) were pruned but no signed checkpoint covers the pruning point")
        }

        // The tree at the pruning point, from the stored nodes.
        var nodes: [Hash32] = []
        for (level, index) in MerkleFrontier.subtrees(of: anchor) {
            guard level >= AuditLog.storedLevel, let data = try tx.node(level: level, index: index),
                let h = Hash32(bytes: data)
            else {
                return fail(anchor + 1, "the tree nodes at the pruning point (\(anchor) entries) are missing")
            }
            nodes.append(h)
        }
        var frontier = MerkleFrontier(size: anchor, nodes: nodes)!
        let scan = Scan(
            expected: anchor + 1, chain: chain, frontier: frontier, targets: pendingTargets, lastMatched: anchor)
        // A checkpoint exactly at the pruning point is checked before any entry.
        scan.checkTarget(at: anchor)

        // The entries, in chunks, in a two-stage pipeline: this thread reads a chunk and hashes its leaves while a
        // second thread runs the sequential checks (chain, positions, times, tree, checkpoints) on the previous one.
        let checker = DispatchQueue(label: "warden.audit.verify")
        let slots = DispatchSemaphore(value: 2)
        var from = anchor + 1
        while scan.failure == nil && !scan.stopped.load(ordering: .relaxed) {
            let chunk = Chunk(capacity: chunkSize)
            do { try tx.readRows(from: from, limit: chunkSize, into: chunk) } catch {
                checker.sync {}
                throw error
            }
            let n = chunk.seqs.count
            if n == 0 { break }
            chunk.leaves.reserveCapacity(n)
            chunk.bytes.withUnsafeBytes { all in
                for i in 0..<n {
                    chunk.leaves.append(
                        Merkle.leafHash(UnsafeRawBufferPointer(rebasing: all[chunk.offsets[i]..<chunk.offsets[i + 1]])))
                }
            }
            slots.wait()
            checker.async {
                scan.consume(chunk)
                slots.signal()
            }
            if n < chunkSize { break }
            from = chunk.seqs[n - 1] + 1
        }
        checker.sync {}
        result.entries = scan.entries
        result.checkpointsMatched += scan.matched
        if let f = scan.failure { return fail(f.seq, f.reason) }
        frontier = scan.frontier
        chain = scan.chain
        result.treeSize = frontier.size
        result.rootHash = frontier.root
        result.chainHead = chain
        if scan.nextTarget < pendingTargets.count {
            let t = pendingTargets[pendingTargets.count - 1]
            return fail(
                frontier.size + 1,
                "the log is truncated: the \(t.label) covers \(t.size) entries but the log ends at \(frontier.size)")
        }
        if anchor > 0 && frontier.size == anchor {
            return fail(anchor + 1, "the log ends at the pruning point: the pruning's own entry is missing")
        }
        return result
    }

    /// Entries read at a time; a chunk is the rows read, with their leaf hashes.
    static let chunkSize = 8_192
    typealias Chunk = AuditRows

    /// The sequential checks, run on the checker thread only (`stopped` is read by the reader).
    final class Scan: @unchecked Sendable {
        var expected: Int64
        var chain: Hash32
        var frontier: MerkleFrontier
        var lastTime: [UInt8] = []
        var entries: Int64 = 0
        var matched = 0
        let targets: [Target]
        private(set) var nextTarget: Int
        var lastMatched: Int64
        private(set) var failure: AuditVerification.Failure?
        let stopped = Atomic<Bool>(false)

        init(expected: Int64, chain: Hash32, frontier: MerkleFrontier, targets: [Target], lastMatched: Int64) {
            self.expected = expected
            self.chain = chain
            self.frontier = frontier
            self.targets = targets
            self.nextTarget = 0
            self.lastMatched = lastMatched
            lastTime.reserveCapacity(64)
        }

        func stop(_ seq: Int64?, _ reason: String) {
            failure = .init(seq: seq, reason: reason)
            stopped.store(true, ordering: .relaxed)
        }

        func consume(_ chunk: Chunk) {
            guard failure == nil else { return }
            for i in 0..<chunk.seqs.count {
                let seq = chunk.seqs[i]
                guard seq == expected else {
                    return stop(
                        expected,
                        "entry \(expected) is missing: the log jumps from \(expected - 1) to \(seq) (entries were removed)"
                    )
                }
                let entry = chunk.bytes[chunk.offsets[i]..<chunk.offsets[i + 1]]
                guard let (named, time) = AuditVerifier.prefix(entry) else {
                    return stop(seq, "entry \(seq) is not a well-formed audit entry")
                }
                guard named == seq else {
                    return stop(
                        seq,
                        "the entry stored at position \(seq) says it is entry \(named): entries were moved, inserted "
                            + "or removed")
                }
                guard let stored = chunk.chains[i] else { return stop(seq, "entry \(seq) has no valid chain value") }
                let next = Merkle.chainHash(chain, chunk.leaves[i])
                guard next == stored else {
                    return stop(
                        seq,
                        "entry \(seq) does not match its hash chain: its contents were modified (or the entry before "
                            + "it was replaced)")
                }
                guard !time.lexicographicallyPrecedes(lastTime) else {
                    return stop(seq, "entry \(seq) is older than the entry before it: entries were reordered")
                }
                lastTime.removeAll(keepingCapacity: true)
                lastTime.append(contentsOf: time)
                chain = next
                frontier.append(chunk.leaves[i])
                entries += 1
                expected = seq + 1
                checkTarget(at: seq)
                if failure != nil { return }
            }
        }

        /// Compares the checkpoint at tree size `size`, if one is due there, with the recomputed log.
        func checkTarget(at size: Int64) {
            guard nextTarget < targets.count, targets[nextTarget].size == size else { return }
            let t = targets[nextTarget]
            guard frontier.root == t.root && chain == t.chain else {
                return stop(
                    nil,
                    "the entries up to \(t.size) do not produce the root hash of the \(t.label) at tree size "
                        + "\(t.size): entries \(lastMatched + 1)...\(t.size) were altered, removed or inserted "
                        + "and their hash chain recomputed")
            }
            lastMatched = t.size
            matched += 1
            nextTarget += 1
        }
    }

    /// `{"seq":N,"time":"…"` at the start of an entry: N and the time's bytes.
    static func prefix(_ entry: ArraySlice<UInt8>) -> (Int64, ArraySlice<UInt8>)? {
        let head = Array("{\"seq\":".utf8)
        guard entry.count > head.count + 12, entry.prefix(head.count).elementsEqual(head) else { return nil }
        var i = entry.startIndex + head.count
        var n: Int64 = 0
        var digits = 0
        while i < entry.endIndex, entry[i] >= 48, entry[i] <= 57, digits < 18 {
            n = n * 10 + Int64(entry[i] - 48)
            i += 1
            digits += 1
        }
        let timeKey = Array(",\"time\":\"".utf8)
        guard digits > 0, entry[i...].starts(with: timeKey) else { return nil }
        let start = i + timeKey.count
        guard let end = entry[start...].firstIndex(of: UInt8(ascii: "\"")) else { return nil }
        return (n, entry[start..<end])
    }
}

extension AuditVerifier {
    /// The sequence number an exported JSON-lines entry names, or nil.
    public static func seq(of line: String) -> Int64? {
        prefix(ArraySlice(line.utf8)).map(\.0)
    }
}

extension AuditLog {
    /// Verifies the log as stored now (one consistent snapshot) against `keys`, the `external` checkpoints an auditor
    /// kept, and the log's `origin`.
    public func verify(keys: [String: P256.Signing.PublicKey], external: [Checkpoint] = [], origin: String)
        throws(WardenError) -> AuditVerification
    {
        try storage.auditRead { tx in try AuditVerifier.verify(tx, keys: keys, external: external, origin: origin) }
    }
}
