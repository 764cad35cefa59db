// Why this file is long: the log is one writer (group commit, hash chain, Merkle nodes, checkpoints) whose parts share
// one lock and one state; readers and exports already live in their own files.
import Cedar
import Crypto
import Dispatch
import Foundation
import Synchronization
import WardenCore
import WardenIdentity

/// The tamper-evident audit log (`docs/audit.md`): an append-only table of entries in the store's SQLite database,
/// each carrying its hash chain value; the RFC 9162 Merkle tree over the entries (complete subtrees of 16 leaves and
/// more are stored, smaller ones recomputed); and checkpoints (signed tree heads) written periodically with the
/// control plane's ES256 key.
///
/// Two ways in:
/// - inside a store write transaction (``append(_:in:)``, the ``AuditAppender`` the store calls): the record commits or
///   rolls back with the change it records, so an administrative change is never stored unaudited;
/// - through the group-commit writer (``record(_:)``, ``submit(_:)``): events queue up, a serial writer takes every
///   queued event into one transaction, one fsync (`synchronous=FULL`) makes the batch durable, then each caller is
///   answered. ``record(_:)`` returns only once the event is on disk.
///
/// When a write fails the log reports itself unhealthy (``health``), ``submit(_:)`` refuses events and callers deny
/// the requests that need a record (fail closed); the next successful commit makes it healthy again.
public final class AuditLog: AuditJournal {
    public struct Settings: Sendable {
        /// The issuer URL named in checkpoints.
        public var issuer: String
        /// `<trust domain>/audit`.
        public var origin: String
        /// Sign a checkpoint once this many entries are not covered by one...
        public var checkpointEvery: Int64 = 10_000
        /// ...or once the latest is this many seconds old and entries were added since.
        public var checkpointInterval: Int64 = 60
        /// Most events waiting for the writer; beyond it, events are refused (and the request denied).
        public var maxPending = 100_000
        /// Most events in one transaction.
        public var maxBatch = 8_192
        /// How long the writer lets events gather before it takes a batch, in microseconds. A commit (its `BEGIN`,
        /// WAL write and fsync) costs the same for one entry as for hundreds: under load, gathering for a millisecond
        /// makes batches of several entries instead of one or two, and nobody on the request path waits for it
        /// (``submit(_:)`` only queues; ``record(_:)`` and ``flush()`` wait at most this much longer).
        public var gatherMicros: UInt32 = 1_000

        public init(issuer: String, origin: String) {
            self.issuer = issuer
            self.origin = origin
        }
    }

    /// The writer's counters and condition, for `/readyz` and metrics.
    public struct Health: Sendable {
        public var healthy = true
        /// Why the last write failed, while unhealthy.
        public var lastError: String?
        public var appended: Int64 = 0
        public var batches: Int64 = 0
        public var failedBatches: Int64 = 0
        /// Events refused (queue full or log failing) or lost with a failed batch.
        public var rejected: Int64 = 0
        public var checkpoints: Int64 = 0
        /// Why the last checkpoint could not be signed or stored (nil once one succeeds).
        public var checkpointError: String?
        public var treeSize: Int64 = 0
    }

    /// Complete subtrees at this level (16 leaves) and above are stored in `audit_nodes`.
    public static let storedLevel = 4

    struct Tip: Sendable {
        var frontier = MerkleFrontier()
        var chain = Hash32.zero
        var lastTime: Int64 = 0
        var checkpointSize: Int64 = 0
        var checkpointTime: Int64 = 0
        var checkpointDigest: Hash32?
        var anchor: Int64 = 0
        var size: Int64 { frontier.size }
    }

    struct State {
        var committed: Tip
        /// The tip inside the open write transaction, published on commit and dropped on rollback.
        var staged: Tip?
    }

    struct Item {
        /// Nil for a flush barrier.
        var event: AuditEvent?
        var continuation: CheckedContinuation<Int64, any Error>?
    }

    struct Pending {
        var items: [Item] = []
        var draining = false
    }

    /// Where the log is kept (the data directory's SQLite database).
    package let storage: any AuditStorage
    public let settings: Settings
    private let signer: Mutex<(@Sendable () -> SigningKey)?>
    /// Microseconds since the Unix epoch.
    let wardenClock: any WardenClock

    /// Microseconds since the Unix epoch.
    func clock() -> Int64 { wardenClock.wallMicros }
    private let state: Mutex<State>
    private let pending = Mutex(Pending())
    private let healthState = Mutex(Health())
    private let subscribers = Mutex(Subscribers())

    struct Subscribers {
        var streams: [UUID: AsyncStream<Int64>.Continuation] = [:]
        var closed = false
    }
    private let queue = DispatchQueue(label: "warden.audit.writer")

    /// Opens the log in `store` (recovering its tip from the database) and attaches it to the store, so every event
    /// the store records is audited in the same transaction.
    package init(
        store: any AuditStorage, settings: Settings, signer: (@Sendable () -> SigningKey)?,
        clock: any WardenClock = SystemClock()
    ) throws(WardenError) {
        self.storage = store
        self.settings = settings
        self.signer = Mutex(signer)
        self.wardenClock = clock
        var tip = try storage.auditRead { tx in try Self.loadTip(tx) }
        // The interval counts from the latest checkpoint, or from now when there is none yet.
        if tip.checkpointSize == 0 { tip.checkpointTime = clock.seconds }
        state = Mutex(State(committed: tip, staged: nil))
        healthState.withLock { $0.treeSize = tip.size }
        storage.attach(journal: self)
    }

    /// Sets the key source for checkpoints (the control plane's current signing key). Until one is set, periodic
    /// checkpoints wait and explicit ones fail.
    public func use(signer: @escaping @Sendable () -> SigningKey) { self.signer.withLock { $0 = signer } }

    // MARK: Recovery

    static func loadTip(_ tx: any AuditTransaction) throws -> Tip {
        var tip = Tip()
        if let anchor = try tx.anchor() {
            tip.anchor = anchor.size
            guard let chain = Hash32(bytes: anchor.chain) else {
                throw WardenError(.storage, "the audit pruning anchor is damaged; run `warden audit verify`")
            }
            tip.chain = chain
        }
        let last = try tx.lastSeq() ?? tip.anchor
        let size = max(last, tip.anchor)
        var nodes: [Hash32] = []
        for (level, index) in MerkleFrontier.subtrees(of: size) {
            nodes.append(try subtreeHash(tx, level: level, index: index))
        }
        guard let frontier = MerkleFrontier(size: size, nodes: nodes) else {
            throw WardenError(.storage, "the audit tree cannot be rebuilt")
        }
        tip.frontier = frontier
        if size > tip.anchor {
            let rows = try tx.entriesWithChain(from: size - 1)
            guard let lastRow = rows.last, lastRow.seq == size else {
                throw WardenError(.storage, "the audit log is damaged at its end; run `warden audit verify`")
            }
            let previous: Hash32? =
                rows.count == 2
                ? Hash32(bytes: rows[0].chain ?? Data()) : (size - 1 == tip.anchor ? tip.chain : nil)
            let entry = lastRow.entry
            guard let previous, let stored = Hash32(bytes: lastRow.chain ?? Data()),
                Merkle.chainHash(previous, Merkle.leafHash(entry)) == stored
            else {
                throw WardenError(
                    .storage,
                    "the audit log's last entry (\(size)) does not follow its chain; run `warden audit verify`")
            }
            tip.chain = stored
            if let (_, time) = AuditVerifier.prefix(ArraySlice(entry.utf8)),
                let micros = AuditEvent.parseRFC3339(String(decoding: time, as: UTF8.self))
            {
                tip.lastTime = micros
            }
        }
        if let jws = try tx.latestCheckpoint() {
            // The latest checkpoint steers what is signed and pruned next: it must describe this log. A planted or
            // stale one, or a tree rebuilt from altered nodes, stops the start (verify says what is wrong).
            let cp = try Checkpoint(parsing: jws)
            let damaged = WardenError(
                .storage,
                "the latest audit checkpoint (tree size \(cp.treeSize)) does not match the log (\(size) entries); "
                    + "run `warden audit verify`")
            guard cp.treeSize <= size else { throw damaged }
            let root: Hash32
            let chain: Hash32?
            if cp.treeSize == size {
                root = tip.frontier.root
                chain = tip.chain
            } else {
                root = try Merkle.rangeHash(0, cp.treeSize) { level, index throws(WardenError) in
                    do { return try subtreeHash(tx, level: level, index: index) } catch let e as WardenError {
                        throw e
                    } catch { throw WardenError(.storage, "the audit tree could not be read") }
                }
                chain =
                    cp.treeSize == tip.anchor
                    ? tip.chain
                    : try tx.chain(at: cp.treeSize).flatMap { Hash32(bytes: $0) }
            }
            guard root == cp.rootHash, chain == cp.chainHead else { throw damaged }
            tip.checkpointSize = cp.treeSize
            tip.checkpointTime = cp.issuedAt
            tip.checkpointDigest = cp.digest
        }
        return tip
    }

    /// The hash of a complete aligned subtree: stored from level ``storedLevel`` up, recomputed from its entries below.
    static func subtreeHash(_ tx: any AuditTransaction, level: Int, index: Int64) throws -> Hash32 {
        if level >= storedLevel {
            guard let data = try tx.node(level: level, index: index), let h = Hash32(bytes: data) else {
                throw WardenError(.notFound, "the audit tree has no node at level \(level), index \(index)")
            }
            return h
        }
        let first = (index << level) + 1
        let count = Int64(1) << level
        var frontier = MerkleFrontier()
        var expected = first
        try tx.forEachEntry(from: first, below: first + count) { seq, bytes in
            guard seq == expected else { return false }
            frontier.append(Merkle.leafHash(bytes))
            expected += 1
            return true
        }
        guard frontier.size == count else {
            throw WardenError(.notFound, "audit entries \(first)...\(first + count - 1) are not all present (pruned?)")
        }
        return frontier.root
    }

    // MARK: Appending inside a transaction

    /// Runs `body` on the tip of the open write transaction; the result is published when the transaction commits.
    func mutate<T>(_ tx: any AuditTransaction, _ body: (inout Tip) throws -> T) throws -> T {
        try state.withLock { s in
            var tip = s.staged ?? s.committed
            let first = s.staged == nil
            let result = try body(&tip)
            s.staged = tip
            if first {
                tx.afterCommit(
                    { [self] in
                        let size = self.state.withLock { s in
                            if let staged = s.staged { s.committed = staged }
                            s.staged = nil
                            return s.committed.size
                        }
                        self.healthState.withLock { $0.treeSize = size }
                        self.notify(size)
                    },
                    onRollback: { [self] in self.state.withLock { $0.staged = nil } })
            }
            return result
        }
    }

    /// Appends `event` inside the caller's write transaction (``AuditAppender``). Must not be called inside a
    /// savepoint that may roll back on its own.
    package func append(_ event: AuditEvent, in tx: any AuditTransaction) throws {
        let seq = try mutate(tx) { tip in try appendEntry(event, tx, &tip) }
        // Told the number once the entry is durable: a transaction that rolls back gives its number to another entry.
        if let ticket = event.ticket { tx.afterCommit({ ticket.set(seq) }, onRollback: {}) }
    }

    /// Appends one entry at the tip (its ticket, if any, is the caller's to set once the transaction commits).
    func appendEntry(_ event: AuditEvent, _ tx: any AuditTransaction, _ tip: inout Tip) throws -> Int64 {
        let seq = tip.size + 1
        let time = max(clock(), tip.lastTime)
        var entry = event.entryJSON(seq: seq, time: time)
        let leaf = entry.withUTF8 { Merkle.leafHash(UnsafeRawBufferPointer($0)) }
        let chain = Merkle.chainHash(tip.chain, leaf)
        try tx.insertEntry(seq: seq, entry: entry, chain: chain.data)
        var nodes: [(Int, Int64, Hash32)] = []
        tip.frontier.append(leaf) { level, index, hash in
            if level >= Self.storedLevel { nodes.append((level, index, hash)) }
        }
        for (level, index, hash) in nodes {
            try tx.insertNode(level: level, index: index, hash: hash.data)
        }
        tip.chain = chain
        tip.lastTime = time
        return seq
    }

    /// Signs a checkpoint of the current tip when forced or due (enough new entries, or old enough); returns it.
    func checkpointIfDue(_ tx: any AuditTransaction, _ tip: inout Tip, force: Bool) throws -> Checkpoint? {
        let size = tip.size
        guard size > 0, size > tip.checkpointSize else { return nil }
        let now = clock() / 1_000_000
        guard
            force || size - tip.checkpointSize >= settings.checkpointEvery
                || now - tip.checkpointTime >= settings.checkpointInterval
        else { return nil }
        guard let signer = signer.withLock({ $0 }) else {
            if force { throw WardenError(.storage, "no key to sign audit checkpoints with") }
            return nil
        }
        let cp = try Checkpoint.sign(
            key: signer(), issuer: settings.issuer, origin: settings.origin, treeSize: size,
            rootHash: tip.frontier.root, chainHead: tip.chain, issuedAt: now, previous: tip.checkpointDigest)
        try tx.insertCheckpoint(treeSize: size, jws: cp.jws, at: now)
        tip.checkpointSize = size
        tip.checkpointTime = now
        tip.checkpointDigest = cp.digest
        healthState.withLock { $0.checkpoints += 1 }
        return cp
    }

    // MARK: Group commit

    /// Appends `event` and returns its sequence number once it is durably stored (group commit).
    @discardableResult
    public func record(_ event: AuditEvent) async throws(WardenError) -> Int64 {
        do {
            return try await withCheckedThrowingContinuation { c in enqueue(Item(event: event, continuation: c)) }
        } catch let e as WardenError {
            throw e
        } catch {
            throw WardenError(.storage, "the audit log could not be written")
        }
    }

    /// Queues `event` without waiting for it to be written. Refused (`storage_error`) while the log is failing or
    /// its queue is full, so that the caller can deny the request it was going to allow.
    public func submit(_ event: AuditEvent) throws(WardenError) {
        let healthy = healthState.withLock { h in
            if !h.healthy { h.rejected += 1 }
            return h.healthy
        }
        guard healthy else { throw WardenError(.storage, "the audit log is failing") }
        guard enqueue(Item(event: event, continuation: nil)) else {
            throw WardenError(.storage, "the audit log's queue is full")
        }
    }

    /// Returns once every event queued before the call is on disk (or its batch failed).
    public func flush() async {
        _ = try? await withCheckedThrowingContinuation { c in enqueue(Item(event: nil, continuation: c)) }
    }

    @discardableResult
    private func enqueue(_ item: Item) -> Bool {
        let (accepted, schedule) = pending.withLock { p -> (Bool, Bool) in
            guard p.items.count < settings.maxPending else { return (false, false) }
            p.items.append(item)
            if p.draining { return (true, false) }
            p.draining = true
            return (true, true)
        }
        if !accepted {
            healthState.withLock { $0.rejected += 1 }
            item.continuation?.resume(throwing: WardenError(.storage, "the audit log's queue is full"))
        }
        if schedule { queue.async { self.drain() } }
        return accepted
    }

    private func drain() {
        while true {
            if settings.gatherMicros > 0 { usleep(settings.gatherMicros) }
            let batch: [Item] = pending.withLock { p in
                if p.items.isEmpty {
                    p.draining = false
                    return []
                }
                if p.items.count <= settings.maxBatch {
                    defer { p.items = [] }
                    return p.items
                }
                let rest = Array(p.items[settings.maxBatch...])
                p.items.removeSubrange(settings.maxBatch...)
                defer { p.items = rest }
                return p.items
            }
            if batch.isEmpty { return }
            write(batch)
        }
    }

    private func write(_ batch: [Item]) {
        var events: Int64 = 0
        var queuedOnly: Int64 = 0
        for item in batch where item.event != nil {
            events += 1
            if item.continuation == nil { queuedOnly += 1 }
        }
        do {
            let seqs: [Int64] = try storage.auditWrite { tx in
                try mutate(tx) { tip in
                    var seqs: [Int64] = []
                    seqs.reserveCapacity(batch.count)
                    for item in batch {
                        if let e = item.event {
                            seqs.append(try appendEntry(e, tx, &tip))
                        } else {
                            seqs.append(tip.size)
                        }
                    }
                    return seqs
                }
            }
            // Only a batch that wrote something shows that writes work again (a flush barrier alone proves nothing).
            healthState.withLock { h in
                if events > 0 {
                    h.healthy = true
                    h.lastError = nil
                }
                h.appended += events
                h.batches += 1
            }
            // Signed in its own transaction (a signing problem never fails the events just written), before the
            // callers hear back, so that a due checkpoint covers what they were told is stored.
            if events > 0 { checkpointIfDue() }
            // The batch committed: each entry's number is final (one pass here, not a commit hook per entry).
            for (item, seq) in zip(batch, seqs) {
                item.event?.ticket?.set(seq)
                item.continuation?.resume(returning: seq)
            }
        } catch {
            let reason = error.message
            let lost = queuedOnly
            healthState.withLock { h in
                h.healthy = false
                h.lastError = reason
                h.failedBatches += 1
                h.rejected += lost
            }
            let failure = WardenError(.storage, "the audit log could not be written: \(reason)")
            for item in batch { item.continuation?.resume(throwing: failure) }
        }
    }

    /// The writer's condition and counters.
    public var health: Health { healthState.withLock { $0 } }

    /// Entries committed so far (the tree size).
    public var size: Int64 { state.withLock { $0.committed.size } }

    // MARK: Checkpoints

    /// Signs a checkpoint now if entries were added since the latest; returns the latest checkpoint.
    @discardableResult
    public func checkpoint() throws(WardenError) -> Checkpoint? {
        try storage.auditWrite { tx in _ = try mutate(tx) { tip in try checkpointIfDue(tx, &tip, force: true) } }
        return try latestCheckpoint()
    }

    /// Signs a checkpoint when one is due (after a batch, and from the periodic timer). A failure is reported in
    /// ``Health/checkpointError`` and retried at the next occasion; it does not stop appends.
    public func checkpointIfDue() {
        let due = state.withLock { s in
            let tip = s.committed
            return tip.size > tip.checkpointSize
                && (tip.size - tip.checkpointSize >= settings.checkpointEvery
                    || clock() / 1_000_000 - tip.checkpointTime >= settings.checkpointInterval)
        }
        guard due else { return }
        do {
            try storage.auditWrite { tx in _ = try mutate(tx) { tip in try checkpointIfDue(tx, &tip, force: false) } }
            healthState.withLock { $0.checkpointError = nil }
        } catch {
            healthState.withLock { $0.checkpointError = error.message }
        }
    }

    /// While the log is failing, tries to write an entry saying so (the periodic timer calls it): its success is what
    /// makes the log healthy again, since refusals (``submit(_:)``) are not queued meanwhile.
    public func probe() async {
        let h = health
        guard !h.healthy else { return }
        _ = try? await record(
            AuditEvent(
                kind: .system, action: "audit.recovered", actor: "system", resource: "audit-log",
                message: "the audit log accepts writes again after a failure: \(h.lastError ?? "write error")",
                details: [("rejected_events", String(h.rejected))]))
    }

    public func latestCheckpoint() throws(WardenError) -> Checkpoint? {
        try storage.auditRead { tx in
            try tx.latestCheckpoint().map { text throws(WardenError) in try Checkpoint(parsing: text) }
        }
    }

    /// Checkpoints oldest first, from tree size `from` on.
    public func checkpoints(from: Int64 = 0, limit: Int = 1000) throws(WardenError) -> [Checkpoint] {
        try storage.auditRead { tx in
            try tx.checkpoints(from: from, limit: limit).map { text throws(WardenError) in try Checkpoint(parsing: text)
            }
        }
    }

    // MARK: Reading

    /// A filter for ``query(_:)``.
    public struct Query: Sendable {
        public var agent: String?
        public var decision: AuditEvent.Decision?
        public var kind: AuditEvent.Kind?
        public var action: String?
        /// Microseconds since the epoch, inclusive.
        public var since: Int64?
        /// Microseconds since the epoch, exclusive.
        public var until: Int64?
        /// Only entries after this sequence number.
        public var after: Int64 = 0
        public var limit = 100

        public init() {}

        /// The filter the admin API's query parameters and the CLI's options name: `since` (a sequence number,
        /// inclusive, or an RFC 3339 time), `until` (RFC 3339, exclusive), `decision`, `kind`, `action`, `agent`
        /// (taken as given).
        public init(
            since: String? = nil, until: String? = nil, agent: String? = nil, decision: String? = nil,
            kind: String? = nil, action: String? = nil
        ) throws(WardenError) {
            if let since {
                if let seq = Int64(since), seq >= 0 {
                    after = max(0, seq - 1)
                } else if let t = AuditEvent.parseRFC3339(since) {
                    self.since = t
                } else {
                    throw WardenError(.invalidRequest, "since must be a sequence number or an RFC 3339 time")
                }
            }
            if let until {
                guard let t = AuditEvent.parseRFC3339(until) else {
                    throw WardenError(.invalidRequest, "until must be an RFC 3339 time")
                }
                self.until = t
            }
            if let decision {
                guard let d = AuditEvent.Decision(rawValue: decision) else {
                    throw WardenError(.invalidRequest, "decision must be allow or deny")
                }
                self.decision = d
            }
            if let kind {
                guard let k = AuditEvent.Kind(rawValue: kind) else {
                    throw WardenError(.invalidRequest, "kind must be decision, admin, lifecycle or system")
                }
                self.kind = k
            }
            self.agent = agent
            self.action = action
        }
    }

    /// Entries matching `q`, by sequence number, as `(seq, entry JSON)`.
    public func query(_ q: Query) throws(WardenError) -> [(Int64, String)] {
        try storage.auditRead { tx in try tx.entries(matching: q) }
    }

    /// Entries after `seq`, in order, at most `limit`.
    public func entries(after seq: Int64, limit: Int = 1000) throws(WardenError) -> [(Int64, String)] {
        try storage.auditRead { tx in try tx.entries(after: seq, limit: limit) }
    }

    /// The time of the newest entry, microseconds since the epoch (nil for an empty log). Every decision is an entry,
    /// so this is a high-water mark of the clock of whoever wrote the log last (the restart guard uses it).
    public func latestTime() throws(WardenError) -> Int64? {
        let text = try storage.auditRead { tx in try tx.latestEntryTime() }
        return text.flatMap(AuditEvent.parseRFC3339)
    }

    /// The last sequence number whose entry is older than `micros` (0 when none).
    public func lastSeq(before micros: Int64) throws(WardenError) -> Int64 {
        try storage.auditRead { tx in try tx.lastSeq(before: AuditEvent.rfc3339(micros: micros)) }
    }

    /// A stream of the tree size after each commit (latest only when the reader is slow). Ends when the caller stops
    /// iterating.
    /// Nil when ``maxSubscribers`` readers already follow the log, or after ``finishUpdates()``.
    public func updates() -> AsyncStream<Int64>? {
        let id = UUID()
        let (stream, continuation) = AsyncStream<Int64>.makeStream(bufferingPolicy: .bufferingNewest(1))
        let added = subscribers.withLock { s in
            guard !s.closed, s.streams.count < Self.maxSubscribers else { return false }
            s.streams[id] = continuation
            return true
        }
        guard added else { return nil }
        continuation.onTermination = { [weak self] _ in _ = self?.subscribers.withLock { $0.streams[id] = nil } }
        continuation.yield(size)
        return stream
    }

    /// Most concurrent followers (`/tail` connections, exporters).
    public static let maxSubscribers = 64

    /// Ends every stream from ``updates()`` (at shutdown, so open tails let the server stop) and refuses new ones.
    public func finishUpdates() {
        let streams = subscribers.withLock { s in
            s.closed = true
            defer { s.streams = [:] }
            return Array(s.streams.values)
        }
        for c in streams { c.finish() }
    }

    private func notify(_ size: Int64) {
        for c in subscribers.withLock({ Array($0.streams.values) }) { c.yield(size) }
    }

    // MARK: Proofs

    /// Runs `body` on a snapshot of the tree: its size (entries, pruned ones included) and its subtree hashes.
    func withTree<T>(_ body: (Int64, Merkle.SubtreeHash) throws(WardenError) -> T) throws(WardenError) -> T {
        try storage.auditRead { tx in
            let anchor = try tx.anchor()?.size ?? 0
            let size = max(anchor, try tx.lastSeq() ?? 0)
            return try body(size) { level, index throws(WardenError) in
                do { return try Self.subtreeHash(tx, level: level, index: index) } catch let e as WardenError {
                    throw e
                } catch { throw WardenError(.storage, "the audit tree could not be read") }
            }
        }
    }

    /// The inclusion proof of entry `seq` in the tree of `treeSize` entries (default: the whole log).
    public func inclusionProof(seq: Int64, treeSize: Int64? = nil) throws(WardenError) -> InclusionProof {
        try withTree { size, sub throws(WardenError) in
            let n = treeSize ?? size
            guard n >= 1, n <= size else {
                throw WardenError(.invalidRequest, "tree_size must be between 1 and \(size)")
            }
            guard seq >= 1, seq <= n else { throw WardenError(.invalidRequest, "seq must be between 1 and \(n)") }
            return InclusionProof(
                seq: seq, treeSize: n, leaf: try sub(0, seq - 1), root: try Merkle.rangeHash(0, n, sub),
                proof: try Merkle.inclusionProof(leaf: seq - 1, treeSize: n, sub))
        }
    }

    /// The consistency proof between tree sizes `first` and `second` (default: the whole log).
    public func consistencyProof(first: Int64, second: Int64? = nil) throws(WardenError) -> ConsistencyProof {
        try withTree { size, sub throws(WardenError) in
            let n = second ?? size
            guard first >= 1, first <= n, n <= size else {
                throw WardenError(.invalidRequest, "need 1 <= first <= second <= \(size)")
            }
            return ConsistencyProof(
                first: first, second: n, firstRoot: try Merkle.rangeHash(0, first, sub),
                secondRoot: try Merkle.rangeHash(0, n, sub),
                proof: try Merkle.consistencyProof(first: first, second: n, sub))
        }
    }

    // MARK: Retention

    /// Deletes the entries up to `cutoff`, but only behind the latest signed checkpoint and down to a multiple of 16
    /// (so the stored tree keeps every node later proofs and verification need). The chain value at the pruning
    /// point is kept as the anchor, checkpoints and tree nodes stay, and the pruning itself is an audit entry.
    /// Returns the new anchor (the number of entries pruned so far).
    @discardableResult
    public func prune(through cutoff: Int64, actor: String = "system") throws(WardenError) -> Int64 {
        try storage.auditWrite { tx in
            try mutate(tx) { tip in
                let behind = min(cutoff, tip.checkpointSize)
                let point = behind - behind % (Int64(1) << Self.storedLevel)
                guard point > tip.anchor else { return tip.anchor }
                guard let data = try tx.chain(at: point) else {
                    throw WardenError(.storage, "audit entry \(point) is missing; run `warden audit verify`")
                }
                try tx.setAnchor(size: point, chain: data)
                try tx.deleteEntries(through: point)
                let previous = tip.anchor
                tip.anchor = point
                _ = try appendEntry(
                    AuditEvent(
                        kind: .system, action: "audit.prune", actor: actor, resource: "audit-log",
                        message: "entries \(previous + 1)...\(point) pruned behind a signed checkpoint",
                        details: [("anchor", String(point))]), tx, &tip)
                return point
            }
        }
    }
}

/// An RFC 9162 inclusion proof of one entry, as the admin API and `warden audit proof` print it.
public struct InclusionProof: Sendable {
    public let seq: Int64
    public let treeSize: Int64
    public let leaf: Hash32
    public let root: Hash32
    public let proof: [Hash32]

    public var json: JSONValue {
        .object([
            ("seq", .number(String(seq))), ("leaf_index", .number(String(seq - 1))),
            ("tree_size", .number(String(treeSize))), ("leaf_hash", .string(leaf.hex)),
            ("root_hash", .string(root.hex)), ("proof", .array(proof.map { .string($0.hex) })),
        ])
    }
}

/// An RFC 9162 consistency proof between two tree sizes.
public struct ConsistencyProof: Sendable {
    public let first: Int64
    public let second: Int64
    public let firstRoot: Hash32
    public let secondRoot: Hash32
    public let proof: [Hash32]

    public var json: JSONValue {
        .object([
            ("first", .number(String(first))), ("second", .number(String(second))),
            ("first_root", .string(firstRoot.hex)), ("second_root", .string(secondRoot.hex)),
            ("proof", .array(proof.map { .string($0.hex) })),
        ])
    }
}
