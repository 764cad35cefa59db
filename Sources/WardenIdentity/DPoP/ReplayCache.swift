import Synchronization

/// A bounded set of recently seen proof identifiers (DPoP `jti`s, assertion `jti`s), each remembered until it expires.
///
/// Bounded in time (entries expire after `ttl`), in size (`capacity`) and, optionally, per partition (a key or a
/// client: `perPartitionCapacity`), so one caller cannot fill the cache for everybody. When full (overall or for a
/// partition) it refuses new entries (fail closed) rather than forgetting one that could then be replayed.
///
/// Compact, so that a cache large enough for tens of thousands of proofs a second stays small: an identifier is kept
/// as a 64-bit keyed hash (SipHash with a key drawn per cache), partitions are interned, and the expiry queue is a
/// flat array: about 70 bytes per live entry with the table's and the queue's slack (measured by `IdentityBenchmark`:
/// 20,000 proofs a second held for the default 66 s window, 1,320,000 entries, add 88 MiB of resident memory, flat
/// after that). A hash collision can only make a fresh identifier look like a replay (a refusal, never an
/// acceptance: a replayed identifier always hashes to the same value); with a secret key nobody can aim one, and by
/// chance it happens about once in 10^13 checks of a full cache.
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

    /// A live identifier's record.
    private struct Record {
        let expiry: Int64
        let partition: UInt32
    }

    /// An entry in expiry order.
    private struct Pending {
        let key: UInt64
        let expiry: Int64
    }

    private static let noPartition = UInt32.max

    private struct State {
        /// Live identifiers (by keyed hash) and when each expires.
        var live: [UInt64: Record] = [:]
        /// Insertion order, which is expiry order (the TTL is fixed); `head` is the oldest not yet dropped.
        var order: [Pending] = []
        var head = 0
        /// Interned partitions: name → index, each index's live entries, free indices.
        var partitionIndex: [String: UInt32] = [:]
        var partitionNames: [String] = []
        var partitionCounts: [Int] = []
        var freePartitions: [UInt32] = []

        mutating func intern(_ name: String) -> UInt32 {
            if let i = partitionIndex[name] { return i }
            let i: UInt32
            if let reused = freePartitions.popLast() {
                i = reused
                partitionNames[Int(i)] = name
                partitionCounts[Int(i)] = 0
            } else {
                i = UInt32(partitionNames.count)
                partitionNames.append(name)
                partitionCounts.append(0)
            }
            partitionIndex[name] = i
            return i
        }

        mutating func release(_ i: UInt32) {
            guard i != ReplayCache.noPartition else { return }
            partitionCounts[Int(i)] -= 1
            if partitionCounts[Int(i)] <= 0 {
                partitionIndex[partitionNames[Int(i)]] = nil
                partitionNames[Int(i)] = ""
                freePartitions.append(i)
            }
        }
    }

    private let state = Mutex(State())
    private let hashKey: (UInt64, UInt64)
    public let capacity: Int
    public let ttlSeconds: Int64
    public let perPartitionCapacity: Int

    public init(capacity: Int = 100_000, ttlSeconds: Int64 = 300, perPartitionCapacity: Int? = nil) {
        self.capacity = max(1, capacity)
        self.ttlSeconds = max(1, ttlSeconds)
        self.perPartitionCapacity = max(1, perPartitionCapacity ?? capacity)
        var rng = SystemRandomNumberGenerator()
        hashKey = (rng.next(), rng.next())
    }

    /// The identifier's keyed 64-bit hash.
    private func key(_ id: String) -> UInt64 {
        var h = Hasher()
        h.combine(hashKey.0)
        h.combine(hashKey.1)
        var id = id
        id.withUTF8 { h.combine(bytes: UnsafeRawBufferPointer($0)) }
        return UInt64(bitPattern: Int64(h.finalize()))
    }

    /// Records `id` at time `now` (seconds since the epoch) unless it was seen within the TTL. `partition` names who
    /// it belongs to (for the per-partition bound).
    public func check(_ id: String, now: Int64, partition: String? = nil) -> Outcome {
        let k = key(id)
        return state.withLock { s in
            // Drop expired entries from the front (insertion order is expiry order, since the TTL is fixed).
            while s.head < s.order.count, s.order[s.head].expiry <= now {
                let e = s.order[s.head]
                // The entry's own record (not a later one for the same key, made after this one expired).
                if let r = s.live[e.key], r.expiry == e.expiry {
                    s.live[e.key] = nil
                    s.release(r.partition)
                }
                s.head += 1
            }
            if s.head > 1024 && s.head * 2 > s.order.count {
                s.order.removeFirst(s.head)
                s.head = 0
            }
            if let r = s.live[k] {
                if r.expiry > now { return .replayed }
                // Expired but still queued behind a later expiry (the clock stepped back): forgotten now.
                s.live[k] = nil
                s.release(r.partition)
            }
            guard s.live.count < capacity else { return .full }
            var p = Self.noPartition
            if let partition {
                if let i = s.partitionIndex[partition], s.partitionCounts[Int(i)] >= perPartitionCapacity {
                    return .full
                }
                p = s.intern(partition)
                s.partitionCounts[Int(p)] += 1
            }
            let exp = now + ttlSeconds
            s.live[k] = Record(expiry: exp, partition: p)
            s.order.append(Pending(key: k, expiry: exp))
            return .fresh
        }
    }

    /// The number of live entries.
    public var count: Int { state.withLock { $0.live.count } }
}
