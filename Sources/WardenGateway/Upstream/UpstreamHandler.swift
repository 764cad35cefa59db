import NIOCore
import NIOHTTP1

/// Runs one exchange at a time on its connection, on the event loop: writes the request it is given, reads the
/// answer, and hands the connection back when both ended cleanly and both sides allow keep-alive.
final class UpstreamHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundIn = HTTPClientRequestPart
    typealias OutboundOut = HTTPClientRequestPart

    enum Phase {
        /// In the idle list (or just made).
        case idle
        /// The request is written; no answer yet.
        case awaitingHead
        /// A body of known, small length is being read whole.
        case buffering(HTTPResponseHead, ByteBuffer)
        /// The body streams to the consumer.
        case streaming(UpstreamResponseBody.Producer.Source)
        /// The answer ended; waiting for the request to finish before the connection is reused.
        case answered
        case closed
    }

    let released: (UpstreamConnection) -> Void
    let closed: (any Channel) -> Void
    var phase = Phase.idle {
        didSet { if case .closed = phase { connection?.usable.store(false, ordering: .relaxed) } }
    }
    var context: ChannelHandlerContext?
    var connection: UpstreamConnection?
    /// The current exchange's number (a late signal from an earlier body is ignored).
    var exchange = 0
    var promise: EventLoopPromise<UpstreamResponse>?
    var bufferUpTo = 0
    var timeout = TimeAmount.seconds(30)
    var requestEnded = false
    /// Whether the deadline covers a streamed body too (else only a stall limit does).
    var wholeBody = false
    var keepAlive = true
    var answered = false
    /// Streaming: whether the consumer wants more, and whether a read is held back until it does.
    var demand = true
    var heldRead = false
    var lastRead = NIODeadline.now()
    /// When the last part of a streamed request body was handed to the connection (the one before it was written).
    var lastUpload = NIODeadline.now()
    /// When the streamed request body began, and how many of its bytes were handed over since.
    var uploadStart = NIODeadline.now()
    var uploaded: Int64 = 0
    /// The slowest average rate a streamed request body may keep once older than twice the timeout (bytes per
    /// second): a trickle that never quite stalls cannot hold a connection and a route's slot for ever.
    static let minimumUploadRate: Int64 = 1_024
    /// The exchange's deadline, from the request's end: until the answer's head, or the whole buffered answer (with
    /// `wholeBody`, until the answer's end).
    var timer: Scheduled<Void>?
    /// While a request body streams: the stall limit of the upload (no part for the exchange's timeout).
    var uploadTimer: Scheduled<Void>?
    /// The stall limit of a streamed body.
    var stallTimer: Scheduled<Void>?
    var idleTimer: Scheduled<Void>?

    init(released: @escaping (UpstreamConnection) -> Void, closed: @escaping (any Channel) -> Void) {
        self.released = released
        self.closed = closed
    }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }

    /// The event loop's clock (a test's loop can advance it).
    var now: NIODeadline { context?.eventLoop.now ?? .now() }

    /// Starts an exchange: the head (and a whole body, and the end unless a body streams after it: `started`) is
    /// written at once; `started` succeeds once it is.
    func start(
        _ promise: EventLoopPromise<UpstreamResponse>, started: EventLoopPromise<Void>?, head: HTTPRequestHead,
        bytes: ByteBuffer?, timeout: TimeAmount, bufferUpTo: Int, wholeBody: Bool
    ) {
        guard case .idle = phase, let context, context.channel.isActive else {
            let error = UpstreamError(.closed, "the connection closed", unsent: true)
            started?.fail(error)
            promise.fail(error)
            return
        }
        let endsRequest = started == nil
        idleTimer?.cancel()
        idleTimer = nil
        exchange &+= 1
        self.promise = promise
        self.bufferUpTo = bufferUpTo
        self.timeout = timeout
        requestEnded = false
        keepAlive = head.isKeepAlive
        answered = false
        demand = true
        heldRead = false
        self.wholeBody = wholeBody
        phase = .awaitingHead
        // A request given whole is over once written: the answer's deadline starts now. A streamed body is bounded by
        // progress instead (an upload may rightly take longer than the deadline), and the deadline starts at its end.
        if endsRequest {
            armDeadline()
        } else {
            lastUpload = now
            uploadStart = lastUpload
            uploaded = 0
            armUploadTimer()
        }
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        if let bytes, bytes.readableBytes > 0 {
            context.write(wrapOutboundOut(.body(.byteBuffer(bytes))), promise: nil)
        }
        if endsRequest {
            context.write(wrapOutboundOut(.end(nil)), promise: nil)
            requestEnded = true
        }
        context.flush()
        started?.succeed(())
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .body(let part):
            lastUpload = now
            uploaded += Int64(part.readableBytes)
        case .end:
            requestEnded = true
            uploadTimer?.cancel()
            uploadTimer = nil
            switch phase {
            case .awaitingHead, .buffering: armDeadline()
            case .streaming where wholeBody: armDeadline()
            default: break  // The answer streams already (it came during the upload): its stall limit covers it.
            }
        case .head:
            break
        }
        context.write(data, promise: promise)
    }

    /// The answer's deadline, from now (the request's end).
    func armDeadline() {
        guard let context else { return }
        let number = exchange
        timer?.cancel()
        timer = context.eventLoop.assumeIsolated().scheduleTask(in: timeout) { [weak self] in
            guard let self, self.exchange == number else { return }
            switch self.phase {
            case .awaitingHead, .buffering:
                self.fail(UpstreamError(.timeout, "no answer in time", answered: self.answered))
            case .streaming where self.wholeBody:
                self.fail(UpstreamError(.timeout, "no complete answer in time", answered: true))
            default: break
            }
        }
    }

    /// While the request's body streams: a pause of the exchange's timeout with no part handed over (an upstream that
    /// takes no more, or an agent that sends no more) fails the exchange, and so does an average rate below
    /// ``minimumUploadRate`` once the upload is older than twice the timeout.
    func armUploadTimer() {
        guard let context else { return }
        let number = exchange
        uploadTimer = context.eventLoop.assumeIsolated().scheduleTask(deadline: lastUpload + timeout) {
            [weak self] in
            guard let self, self.exchange == number, !self.requestEnded else { return }
            switch self.phase {
            case .idle, .closed, .answered: return
            default: break
            }
            let now = self.now
            let elapsed = now - self.uploadStart
            if now - self.lastUpload >= self.timeout {
                self.fail(UpstreamError(.timeout, "the upload stalled", answered: self.answered))
            } else if elapsed > self.timeout * 2,
                Double(self.uploaded) < Double(Self.minimumUploadRate) * Double(elapsed.nanoseconds) / 1e9
            {
                self.fail(UpstreamError(.timeout, "the upload is too slow", answered: self.answered))
            } else {
                self.armUploadTimer()
            }
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        answered = true
        switch (unwrapInboundIn(data), phase) {
        case (.head(let head), .awaitingHead):
            if head.status == .switchingProtocols {
                fail(UpstreamError(.malformed, "the upstream switched protocols", answered: true))
                return
            }
            keepAlive = keepAlive && head.isKeepAlive
            let length = head.headers.first(name: "content-length").flatMap { Int($0) }
            if let length, length <= bufferUpTo {
                phase = .buffering(head, context.channel.allocator.buffer(capacity: length))
                return
            }
            if !wholeBody {
                // The head is in: the deadline's work is done (the body has its stall limit).
                timer?.cancel()
                timer = nil
            }
            let made = UpstreamResponseBody.Producer.makeSequence(
                backPressureStrategy: .init(lowWatermark: 2, highWatermark: 8), finishOnDeinit: false,
                delegate: UpstreamBodyDelegate(
                    handler: NIOLoopBound(self, eventLoop: context.eventLoop), exchange: exchange))
            phase = .streaming(made.source)
            lastRead = now
            armStallTimer()
            let p = promise
            promise = nil
            p?.succeed(UpstreamResponse(head: head, body: .streamed(UpstreamResponseBody(producer: made.sequence))))
        case (.body(var part), .buffering(let head, var buffer)):
            phase = .idle  // (no copy of the buffer while it grows)
            buffer.writeBuffer(&part)
            guard buffer.readableBytes <= bufferUpTo else {
                fail(UpstreamError(.malformed, "the body is longer than announced", answered: true))
                return
            }
            phase = .buffering(head, buffer)
        case (.body(let part), .streaming(let source)):
            lastRead = now
            switch source.yield(part) {
            case .produceMore: break
            case .stopProducing: demand = false
            case .dropped: abandon()
            }
        case (.end, .buffering(let head, let buffer)):
            let p = promise
            promise = nil
            phase = .answered
            finishExchange()
            p?.succeed(UpstreamResponse(head: head, body: .buffered(buffer)))
        case (.end, .streaming(let source)):
            phase = .answered
            source.finish()
            finishExchange()
        default:
            // An answer nobody asked for (before a request, or after one ended).
            fail(UpstreamError(.malformed, "the upstream sent an unexpected answer", answered: true))
        }
    }

    /// The answer ended: reuse the connection when the request ended too and both allow it, else close it (an
    /// upstream that answered before the request's body ended gets no more of it).
    func finishExchange() {
        guard case .answered = phase, let context else { return }
        cancelExchangeTimers()
        guard keepAlive, requestEnded else {
            phase = .closed
            context.close(promise: nil)
            return
        }
        phase = .idle
        let idleTimeout = connection?.idleTimeout ?? .seconds(60)
        idleTimer = context.eventLoop.assumeIsolated().scheduleTask(in: idleTimeout) { [weak self] in
            guard let self, case .idle = self.phase else { return }
            self.phase = .closed
            self.context?.close(promise: nil)
        }
        if let connection { released(connection) }
    }

    func read(context: ChannelHandlerContext) {
        if case .streaming = phase, !demand {
            heldRead = true
            return
        }
        context.read()
    }

    func produceMore(_ number: Int) {
        guard number == exchange, case .streaming = phase else { return }
        demand = true
        lastRead = now
        if heldRead, let context {
            heldRead = false
            context.read()
        }
    }

    /// The body's reader is gone before its end: the connection cannot be reused.
    func bodyAbandoned(_ number: Int) {
        guard number == exchange, case .streaming = phase else { return }
        abandon()
    }

    func abandon() {
        phase = .closed
        cancelExchangeTimers()
        context?.close(promise: nil)
    }

    /// The exchange is over: its deadline and stall limits go.
    func cancelExchangeTimers() {
        timer?.cancel()
        timer = nil
        stallTimer?.cancel()
        stallTimer = nil
        uploadTimer?.cancel()
        uploadTimer = nil
    }

    /// While a body streams, a stall (no bytes for the exchange's timeout while the reader waits) fails it.
    func armStallTimer() {
        guard let context else { return }
        let number = exchange
        stallTimer = context.eventLoop.assumeIsolated().scheduleTask(deadline: lastRead + timeout) { [weak self] in
            guard let self, self.exchange == number, case .streaming = self.phase else { return }
            if self.demand, self.now - self.lastRead >= self.timeout {
                self.fail(UpstreamError(.timeout, "the upstream's body stalled", answered: true))
            } else {
                if !self.demand { self.lastRead = self.now }
                self.armStallTimer()
            }
        }
    }

    /// Ends the exchange with `error` and closes the connection.
    func fail(_ error: UpstreamError) {
        let previous = phase
        phase = .closed
        cancelExchangeTimers()
        idleTimer?.cancel()
        idleTimer = nil
        switch previous {
        case .streaming(let source): source.finish(error)
        default: break
        }
        let p = promise
        promise = nil
        p?.fail(error)
        context?.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        if case .closed = phase {
        } else if case .idle = phase {
            phase = .closed
        } else {
            fail(UpstreamError(.closed, "the upstream closed the connection", answered: answered))
        }
        idleTimer?.cancel()
        closed(context.channel)
        connection = nil
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        switch phase {
        case .idle, .closed:
            phase = .closed
            context.close(promise: nil)
        default:
            fail(UpstreamError(.closed, "the upstream connection failed", answered: answered))
        }
    }
}
