import AsyncHTTPClient
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

/// Tracks the upload of the agent's body: started when the upstream client begins reading it, finished when that
/// reading ends (end of body, error, or the iterator dropped).
final class BodyUpload: Sendable {
    struct State {
        var started = false
        var done = false
        var waiter: CheckedContinuation<Void, Never>?
    }

    let state = Mutex(State())
    /// Bytes of the agent's body handed to the upstream so far.
    let bytes = Atomic<Int64>(0)

    func start() { state.withLock { $0.started = true } }

    func finish() {
        let waiter = state.withLock { s -> CheckedContinuation<Void, Never>? in
            s.done = true
            defer { s.waiter = nil }
            return s.waiter
        }
        waiter?.resume()
    }

    /// Waits until the upload finished, when one started (at most `limit`).
    func finished(within limit: Duration) async {
        guard state.withLock({ $0.started && !$0.done }) else { return }
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                    let resumeNow = self.state.withLock { s -> Bool in
                        if s.done { return true }
                        s.waiter = c
                        return false
                    }
                    if resumeNow { c.resume() }
                }
            }
            group.addTask { try? await Task.sleep(for: limit) }
            _ = await group.next()
            // Whichever came first; a waiter left behind is resumed so its task ends.
            self.finish()
            group.cancelAll()
        }
    }
}

/// A request body that fails once more than `limit` bytes have passed (a chunked body that grows too large is cut,
/// and the upstream sees an aborted request). With a known length it ends after that many bytes without asking the
/// agent's stream again, and it reports the end of the upload to `upload`.
struct LimitedBody<Base: AsyncSequence & Sendable>: AsyncSequence, Sendable where Base.Element == ByteBuffer {
    typealias Element = ByteBuffer
    let base: Base
    let limit: Int
    let expected: Int?
    let upload: BodyUpload

    struct TooLarge: Error {}

    /// Reports the end of the upload when the iterator goes away, whatever the reason.
    final class Ending: Sendable {
        let upload: BodyUpload
        init(_ upload: BodyUpload) {
            self.upload = upload
            upload.start()
        }
        deinit { upload.finish() }
    }

    struct AsyncIterator: AsyncIteratorProtocol {
        var base: Base.AsyncIterator
        let limit: Int
        let expected: Int?
        let ending: Ending
        var seen = 0
        mutating func next() async throws -> ByteBuffer? {
            if let expected, seen >= expected {
                ending.upload.finish()
                return nil
            }
            do {
                guard let b = try await base.next() else {
                    ending.upload.finish()
                    return nil
                }
                seen += b.readableBytes
                if seen > limit { throw TooLarge() }
                ending.upload.bytes.add(Int64(b.readableBytes), ordering: .relaxed)
                return b
            } catch {
                ending.upload.finish()
                throw error
            }
        }
    }

    func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(base: base.makeAsyncIterator(), limit: limit, expected: expected, ending: Ending(upload))
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
