import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing

@testable import WardenGateway

/// The upstream handler's timers on an embedded event loop whose clock the test advances: deadlines and stall limits
/// judged by the loop's time, not the wall clock (the same exchange through a real socket depends on how soon a busy
/// machine runs each task).
@Suite("The upstream handler's deadlines and stall limits (an embedded event loop's clock)")
struct UpstreamHandlerTests {
    /// An active embedded channel with a handler, and an exchange started on it with a streamed body of `timeout`.
    func streamed(timeout: TimeAmount) throws -> (
        EmbeddedEventLoop, EmbeddedChannel, EventLoopFuture<UpstreamResponse>
    ) {
        let loop = EmbeddedEventLoop()
        let handler = UpstreamHandler(released: { _ in }, closed: { _ in })
        let channel = EmbeddedChannel(handler: handler, loop: loop)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        let promise = loop.makePromise(of: UpstreamResponse.self)
        let started = loop.makePromise(of: Void.self)
        var head = HTTPRequestHead(version: .http1_1, method: .POST, uri: "/store")
        head.headers.add(name: "Transfer-Encoding", value: "chunked")
        handler.start(
            promise, started: started, head: head, bytes: nil, timeout: timeout, bufferUpTo: 1024, wholeBody: false)
        #expect(throws: Never.self) { try started.futureResult.wait() }
        return (loop, channel, promise.futureResult)
    }

    func part(_ bytes: Int) -> HTTPClientRequestPart { .body(.byteBuffer(ByteBuffer(repeating: 0x78, count: bytes))) }

    /// The exchange's error, or nil while it runs (or when it succeeded). The embedded loop runs callbacks at once, on
    /// the test's thread.
    func failure(_ f: EventLoopFuture<UpstreamResponse>) -> UpstreamError? {
        let seen = Seen()
        f.whenFailure { seen.error = $0 as? UpstreamError }
        return seen.error
    }

    /// What a callback saw (`@unchecked`: written and read on the test's thread only, where the embedded loop runs).
    final class Seen: @unchecked Sendable {
        var error: UpstreamError?
    }

    @Test("an upload that moves may take longer than the deadline; the deadline runs from the request's end")
    func slowUpload() throws {
        let (loop, channel, answer) = try streamed(timeout: .seconds(4))
        // Five parts of 8 KiB 1.5 s apart: 6 s in all against a 4 s deadline, each pause within it.
        for i in 0..<5 {
            if i > 0 { loop.advanceTime(by: .milliseconds(1_500)) }
            try channel.writeOutbound(part(8 * 1024))
            #expect(failure(answer) == nil, "failed at part \(i)")
        }
        try channel.writeOutbound(HTTPClientRequestPart.end(nil))
        // The deadline starts now: 3.9 s later it has not passed.
        loop.advanceTime(by: .milliseconds(3_900))
        #expect(failure(answer) == nil)
        try channel.writeInbound(HTTPClientResponsePart.head(HTTPResponseHead(version: .http1_1, status: .ok)))
        try channel.writeInbound(HTTPClientResponsePart.end(nil))
        #expect(try answer.wait().head.status == .ok)
    }

    @Test("without its answer, the deadline passes the timeout after the request's end")
    func deadlineFromEnd() throws {
        let (loop, channel, answer) = try streamed(timeout: .seconds(2))
        loop.advanceTime(by: .milliseconds(1_500))
        try channel.writeOutbound(part(4096))
        loop.advanceTime(by: .milliseconds(1_500))
        try channel.writeOutbound(HTTPClientRequestPart.end(nil))
        loop.advanceTime(by: .milliseconds(1_999))
        #expect(failure(answer) == nil)
        loop.advanceTime(by: .milliseconds(1))
        #expect(failure(answer)?.message == "no answer in time")
    }

    @Test("an upload with no part for the timeout stalls")
    func stalled() throws {
        let (loop, channel, answer) = try streamed(timeout: .seconds(1))
        try channel.writeOutbound(part(100))
        loop.advanceTime(by: .milliseconds(999))
        #expect(failure(answer) == nil)
        loop.advanceTime(by: .milliseconds(1))
        #expect(failure(answer)?.message == "the upload stalled")
        #expect(!channel.isActive)
    }

    // A review found that a trickle which never quite stalls held a connection and a route's slot for ever.
    @Test("an upload that trickles under 1 KiB/s fails once older than twice the timeout; a faster one goes on")
    func trickle() throws {
        // One byte every 50 ms (20 bytes/s): never a pause of the timeout.
        let (loop, channel, answer) = try streamed(timeout: .seconds(1))
        for _ in 0..<39 {
            loop.advanceTime(by: .milliseconds(50))
            try channel.writeOutbound(part(1))
        }
        #expect(failure(answer) == nil, "before twice the timeout")
        for _ in 0..<40 {
            loop.advanceTime(by: .milliseconds(50))
            if failure(answer) == nil { try channel.writeOutbound(part(1)) }
        }
        #expect(failure(answer)?.message == "the upload is too slow")
        // 2 KiB every 500 ms (4 KiB/s) for 10 s: not too slow.
        let (fastLoop, fast, fastAnswer) = try streamed(timeout: .seconds(1))
        for _ in 0..<20 {
            fastLoop.advanceTime(by: .milliseconds(500))
            try fast.writeOutbound(part(2048))
        }
        #expect(failure(fastAnswer) == nil)
    }
}
