import Synchronization

/// A bounded set of recently seen proof identifiers (DPoP `jti`s, assertion `jti`s), each remembered until it expires.
///
/// Bounded in time (entries expire after `ttl`), in size (`capacity`) and, optionally, per partition (a key or a
/// client: `perPartitionCapacity`), so one caller cannot fill the cache for everybody. When full (overall or for a
/// partition) it refuses new entries (fail closed) rather than forgetting one that could then be replayed.
public final class ReplayCache: Sendable {
    /// What happened to an identifier offered to the cache.
    public enum Outcome: Sendable, Equatable {
        /// First time seen; now remembered.
        case fresh
        /// Seen before and not yet expired: a replay.
        case replayed
        /// The cache (or the caller's share of it) is full of live entries; the proof must be refused.
        case full
    }

    private struct Entry {
        let id: String
        let expiry: Int64
        let partition: String?
    }

    private struct State {
        var expiry: [String: Int64] = [:]
        var perPartition: [String: Int] = [:]
        var order: [Entry] = []
        var head = 0
    }

    private let state = Mutex(State())
    public let capacity: Int
    public let ttlSeconds: Int64
    public let perPartitionCapacity: Int

    public init(capacity: Int = 100_000, ttlSeconds: Int64 = 300, perPartitionCapacity: Int? = nil) {
        self.capacity = max(1, capacity)
        self.ttlSeconds = max(1, ttlSeconds)
        self.perPartitionCapacity = max(1, perPartitionCapacity ?? capacity)
    }

    /// Records `id` at time `now` (seconds since the epoch) unless it was seen within the TTL. `partition` names who
    /// it belongs to (for the per-partition bound).
    public func check(_ id: String, now: Int64, partition: String? = nil) -> Outcome {
        state.withLock { s in
            // Drop expired entries from the front (insertion order is expiry order, since the TTL is fixed).
            while s.head < s.order.count, s.order[s.head].expiry <= now {
                let e = s.order[s.head]
                if s.expiry[e.id] == e.expiry {
                    s.expiry[e.id] = nil
                    if let p = e.partition {
                        let left = (s.perPartition[p] ?? 1) - 1
                        s.perPartition[p] = left > 0 ? left : nil
                    }
                }
                s.head += 1
            }
            if s.head > 1024 && s.head * 2 > s.order.count {
                s.order.removeFirst(s.head)
                s.head = 0
            }
            if let exp = s.expiry[id], exp > now { return .replayed }
            guard s.expiry.count < capacity else { return .full }
            if let partition {
                guard (s.perPartition[partition] ?? 0) < perPartitionCapacity else { return .full }
                s.perPartition[partition, default: 0] += 1
            }
            let exp = now + ttlSeconds
            s.expiry[id] = exp
            s.order.append(Entry(id: id, expiry: exp, partition: partition))
            return .fresh
        }
    }

    /// The number of live entries.
    public var count: Int { state.withLock { $0.expiry.count } }
}
