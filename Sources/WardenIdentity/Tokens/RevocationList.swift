import Synchronization

/// Revoked token ids (`jti`), held in memory for O(1) checks on every request. An entry is kept until the longest
/// token that could carry its `jti` has expired, then pruned, so the set stays bounded by the revocations of the
/// last few minutes. Loaded from the store at start and updated on each write.
public final class RevocationList: Sendable {
    private let revoked = Mutex<[String: Int64]>([:])

    public init() {}

    /// Records `jti` as revoked until `until` (seconds since the Unix epoch).
    public func revoke(jti: String, until: Int64) {
        revoked.withLock { r in r[jti] = max(r[jti] ?? 0, until) }
    }

    /// Whether `jti` is revoked.
    public func isRevoked(_ jti: String) -> Bool {
        revoked.withLock { $0[jti] != nil }
    }

    /// Drops entries that expired before `now`; returns how many remain.
    @discardableResult
    public func prune(now: Int64) -> Int {
        revoked.withLock { r in
            r = r.filter { $0.value > now }
            return r.count
        }
    }

    public var count: Int { revoked.withLock { $0.count } }
}
