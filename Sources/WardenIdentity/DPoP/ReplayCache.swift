import Synchronization

/// A bounded set of recently seen proof identifiers (DPoP `jti`s), each remembered until it expires.
///
/// Bounded in time (entries expire after `ttl`) and in size (`capacity`). When the cache is full of live entries it
/// refuses new ones (fail closed) rather than forgetting one that could then be replayed.
public final class ReplayCache: Sendable {
    /// What happened to an identifier offered to the cache.
    public enum Outcome: Sendable, Equatable {
        /// First time seen; now remembered.
        case fresh
        /// Seen before and not yet expired: a replay.
        case replayed
        /// The cache is full of live entries; the proof must be refused.
        case full
    }

    private struct State {
        var expiry: [String: Int64] = [:]
        var order: [(String, Int64)] = []
        var head = 0
    }

    private let state = Mutex(State())
    public let capacity: Int
    public let ttlSeconds: Int64

    public init(capacity: Int = 100_000, ttlSeconds: Int64 = 300) {
        self.capacity = max(1, capacity)
        self.ttlSeconds = max(1, ttlSeconds)
    }

    /// Records `id` at time `now` (seconds since the epoch) unless it was seen within the TTL.
    public func check(_ id: String, now: Int64) -> Outcome {
        state.withLock { s in
            // Drop expired entries from the front (insertion order is expiry order, since the TTL is fixed).
            while s.head < s.order.count, s.order[s.head].1 <= now {
                let (key, exp) = s.order[s.head]
                if s.expiry[key] == exp { s.expiry[key] = nil }
                s.head += 1
            }
            if s.head > 1024 && s.head * 2 > s.order.count {
                s.order.removeFirst(s.head)
                s.head = 0
            }
            if let exp = s.expiry[id], exp > now { return .replayed }
            guard s.expiry.count < capacity else { return .full }
            let exp = now + ttlSeconds
            s.expiry[id] = exp
            s.order.append((id, exp))
            return .fresh
        }
    }

    /// The number of live entries.
    public var count: Int { state.withLock { $0.expiry.count } }
}
