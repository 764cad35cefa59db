import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The one source of time: every component takes a `WardenClock` (tokens, proofs, revocations, audit entries,
/// policies' `context.time`, rate limits, the risk engine, tool pins, caches). Two readings of one clock:
/// - ``wallMicros``, the calendar time that credentials, records and policies carry;
/// - ``monotonicMicros``, for intervals that decide something (rate-limit refills, cache ages, back-offs): it never
///   jumps when the system's time is set.
///
/// Tests and simulations use a ``ManualClock`` and move both readings together. Only measurements of how long Warden
/// itself took (latency metrics, containment times) read `ContinuousClock` directly: they are not decisions.
public protocol WardenClock: Sendable {
    /// Microseconds since the Unix epoch.
    var wallMicros: Int64 { get }
    /// Microseconds since an arbitrary start; never decreases.
    var monotonicMicros: Int64 { get }
}

extension WardenClock {
    /// Whole seconds since the Unix epoch (what JWTs, proofs and the audit log's second fields use).
    public var seconds: Int64 { wallMicros >= 0 ? wallMicros / 1_000_000 : (wallMicros - 999_999) / 1_000_000 }
    /// Seconds since the Unix epoch, with the fraction.
    public var wallSeconds: Double { Double(wallMicros) / 1_000_000 }
    /// Monotonic seconds, with the fraction.
    public var monotonicSeconds: Double { Double(monotonicMicros) / 1_000_000 }
}

/// The system's clocks: `CLOCK_REALTIME` and `CLOCK_MONOTONIC`.
public struct SystemClock: WardenClock {
    public init() {}

    public var wallMicros: Int64 { Self.read(CLOCK_REALTIME) }
    public var monotonicMicros: Int64 { Self.read(CLOCK_MONOTONIC) }

    static func read(_ id: clockid_t) -> Int64 {
        var ts = timespec()
        clock_gettime(id, &ts)
        return Int64(ts.tv_sec) * 1_000_000 + Int64(ts.tv_nsec) / 1000
    }
}

/// A clock that moves only when told to (tests, simulations): both readings advance together.
public final class ManualClock: WardenClock {
    private let micros: Mutex<(wall: Int64, monotonic: Int64)>

    /// Starts at `seconds` since the Unix epoch (the monotonic reading starts at the same value).
    public convenience init(seconds: Int64 = 1_800_000_000) { self.init(wallSeconds: Double(seconds)) }

    public init(wallSeconds: Double) {
        let m = Int64((wallSeconds * 1_000_000).rounded())
        micros = Mutex((m, m))
    }

    public var wallMicros: Int64 { micros.withLock { $0.wall } }
    public var monotonicMicros: Int64 { micros.withLock { $0.monotonic } }

    /// Moves both readings forward by `seconds`.
    public func advance(seconds: Double) {
        let d = Int64((seconds * 1_000_000).rounded())
        micros.withLock {
            $0.wall += d
            $0.monotonic += max(0, d)
        }
    }

    /// Sets the wall reading (a simulation jumps to an event's time); the monotonic one moves forward by as much,
    /// and never back.
    public func set(wallSeconds: Double) {
        let m = Int64((wallSeconds * 1_000_000).rounded())
        micros.withLock {
            $0.monotonic += max(0, m - $0.wall)
            $0.wall = m
        }
    }
}
