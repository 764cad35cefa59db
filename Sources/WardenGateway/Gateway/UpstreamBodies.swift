import Cedar
import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import NIOHTTP1
import Synchronization
import WardenAudit
import WardenControlPlane
import WardenCore
import WardenIdentity
import WardenRisk

/// A request body that fails once more than `limit` bytes have passed (a chunked body that grows too large is cut,
/// and the upstream sees an aborted request). With a known length it ends after that many bytes without asking the
/// agent's stream again, and fails when the agent's stream ends short of it (the upstream must never be left
/// waiting for bytes a later request would supply). The bytes that passed are counted in `sent`.
struct LimitedBody<Base: AsyncSequence & Sendable>: AsyncSequence, Sendable where Base.Element == ByteBuffer {
    typealias Element = ByteBuffer
    let base: Base
    let limit: Int
    let expected: Int?
    let sent: Counter

    /// Bytes of the agent's body handed to the upstream so far.
    final class Counter: Sendable {
        let bytes = Atomic<Int64>(0)
        var value: Int64 { bytes.load(ordering: .relaxed) }
    }

    struct TooLarge: Error {}
    struct CutShort: Error {}

    struct AsyncIterator: AsyncIteratorProtocol {
        var base: Base.AsyncIterator
        let limit: Int
        let expected: Int?
        let sent: Counter
        var seen = 0
        mutating func next() async throws -> ByteBuffer? {
            if let expected, seen >= expected { return nil }
            guard let b = try await base.next() else {
                if let expected, seen < expected { throw CutShort() }
                return nil
            }
            seen += b.readableBytes
            if seen > limit || expected.map({ seen > $0 }) == true { throw TooLarge() }
            sent.bytes.add(Int64(b.readableBytes), ordering: .relaxed)
            return b
        }
    }

    func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(base: base.makeAsyncIterator(), limit: limit, expected: expected, sent: sent)
    }
}

/// How often a streaming response's bytes are reported to the risk engine while it lasts.
let interimReportBytes: Int64 = 8 << 20

/// The upstream's response body, counting the bytes that pass and releasing the route's in-flight slot when it ends,
/// fails or is dropped unread.
struct ReleasingBody<Base: AsyncSequence & Sendable>: AsyncSequence, Sendable where Base.Element == ByteBuffer {
    typealias Element = ByteBuffer
    let base: Base
    let release: Release

    /// Called once when the body ends, fails or is dropped, with the bytes that passed and not yet reported; and
    /// while it streams, every ``interimReportBytes``, with the bytes since the last report (`onProgress`), so that a long
    /// transfer is seen while it lasts, not only at its end.
    final class Release: Sendable {
        let done = Atomic<Bool>(false)
        let bytes = Atomic<Int64>(0)
        let reported = Atomic<Int64>(0)
        let onEnd: @Sendable (Int64) -> Void
        let onProgress: (@Sendable (Int64) -> Void)?

        init(onProgress: (@Sendable (Int64) -> Void)? = nil, _ onEnd: @escaping @Sendable (Int64) -> Void) {
            self.onEnd = onEnd
            self.onProgress = onProgress
        }

        func fire() {
            if !done.exchange(true, ordering: .relaxed) {
                onEnd(bytes.load(ordering: .relaxed) - reported.load(ordering: .relaxed))
            }
        }

        /// `n` more bytes passed: an interim report when enough have since the last one (one iterator reads a body).
        func passed(_ n: Int) {
            let total = bytes.add(Int64(n), ordering: .relaxed).newValue
            guard let onProgress else { return }
            let last = reported.load(ordering: .relaxed)
            if total - last >= interimReportBytes {
                reported.store(total, ordering: .relaxed)
                onProgress(total - last)
            }
        }

        deinit { fire() }
    }

    struct AsyncIterator: AsyncIteratorProtocol {
        var base: Base.AsyncIterator
        let release: Release
        mutating func next() async throws -> ByteBuffer? {
            do {
                guard let b = try await base.next() else {
                    release.fire()
                    return nil
                }
                release.passed(b.readableBytes)
                return b
            } catch {
                release.fire()
                throw error
            }
        }
    }

    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(base: base.makeAsyncIterator(), release: release) }
}
