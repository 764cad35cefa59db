import Foundation
import Synchronization
import WardenCore

/// Token buckets in memory, per key (an agent, or an agent on a route), sharded to keep lock hold times short.
/// Bounded: a shard holds at most `capacity / shards` buckets; when full it drops the buckets that have refilled (a
/// full bucket is the same as none), and if none has, the request is refused (fail closed; it cannot happen with fewer
/// active keys than the capacity).
public final class RateLimiter: Sendable {
    struct Bucket {
        var tokens: Double
        var updated: Double
        var limit: RateLimit
    }

    struct Shard {
        var buckets: [String: Bucket] = [:]
        /// When the full shard was last swept (a sweep is O(shard); at most one a second).
        var lastSweep = -Double.infinity
    }

    final class Locked: Sendable {
        let shard = Mutex(Shard())
    }

    private let shards: [Locked]
    private let perShard: Int
    /// Buckets refill on the clock's monotonic reading.
    let clock: any WardenClock

    public init(capacity: Int = 200_000, shards: Int = 16, clock: any WardenClock = SystemClock()) {
        self.shards = (0..<shards).map { _ in Locked() }
        self.perShard = max(1, capacity / shards)
        self.clock = clock
    }

    private func shard(_ key: String) -> Locked {
        var h = Hasher()
        h.combine(key)
        return shards[Int(UInt(bitPattern: h.finalize()) % UInt(shards.count))]
    }

    /// Takes one token from `key`'s bucket: nil when allowed, else the seconds until a token is available.
    public func take(_ key: String, _ limit: RateLimit) -> Double? {
        let now = clock.monotonicSeconds
        return shard(key).shard.withLock { s -> Double? in
            var b = s.buckets[key] ?? Bucket(tokens: limit.burst, updated: now, limit: limit)
            if b.limit != limit {
                // Limits changed: keep the level, within the new burst.
                b.limit = limit
                b.tokens = min(b.tokens, limit.burst)
            }
            b.tokens = min(limit.burst, b.tokens + max(0, now - b.updated) * limit.perSecond)
            b.updated = now
            guard b.tokens >= 1 else {
                s.buckets[key] = b
                return (1 - b.tokens) / limit.perSecond
            }
            b.tokens -= 1
            if s.buckets[key] == nil && s.buckets.count >= perShard {
                if now - s.lastSweep >= 1 {
                    s.lastSweep = now
                    s.buckets = s.buckets.filter { _, v in
                        v.tokens + (now - v.updated) * v.limit.perSecond < v.limit.burst
                    }
                }
                guard s.buckets.count < perShard else { return 1 }
            }
            s.buckets[key] = b
            return nil
        }
    }

    /// The seconds until `key`'s bucket has a token again, without taking one; nil when it has one (or none exists).
    public func peek(_ key: String, _ limit: RateLimit) -> Double? {
        let now = clock.monotonicSeconds
        return shard(key).shard.withLock { s -> Double? in
            guard let b = s.buckets[key] else { return nil }
            let tokens = min(limit.burst, b.tokens + max(0, now - b.updated) * limit.perSecond)
            return tokens >= 1 ? nil : (1 - tokens) / limit.perSecond
        }
    }

    /// Gives back a token taken by ``take(_:_:)`` (when a second bucket refused the request).
    public func refund(_ key: String) {
        shard(key).shard.withLock { s in
            guard var b = s.buckets[key] else { return }
            b.tokens = min(b.limit.burst, b.tokens + 1)
            s.buckets[key] = b
        }
    }

    /// Buckets held (for tests and metrics).
    public var count: Int { shards.reduce(0) { $0 + $1.shard.withLock { $0.buckets.count } } }
}
