import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import NIOTLS
import Synchronization

/// Where an upstream is: scheme, host and port, parsed once per route or MCP server.
package struct UpstreamEndpoint: Hashable, Sendable {
    package let tls: Bool
    /// The host without brackets (an IPv6 address as written inside them).
    package let host: String
    package let port: Int
    /// The `Host` header value: the host as written, with the port unless it is the scheme's default.
    package let authority: String

    /// From `scheme://host[:port]` (a route's base, see `RouteConfig.parseUpstream`), or a whole URL (its path is
    /// returned apart). Nil for anything but plain http(s) with a host.
    package init?(base: String) {
        guard let (endpoint, path) = Self.split(base), path == "/" else { return nil }
        self = endpoint
    }

    private init(tls: Bool, host: String, port: Int, authority: String) {
        self.tls = tls
        self.host = host
        self.port = port
        self.authority = authority
    }

    /// An absolute http(s) URL's endpoint and its path and query (`/` when empty).
    package static func split(_ url: String) -> (UpstreamEndpoint, path: String)? {
        let u = Substring(url)
        let tls: Bool
        let rest: Substring
        if u.lowercased().hasPrefix("https://") {
            (tls, rest) = (true, u.dropFirst(8))
        } else if u.lowercased().hasPrefix("http://") {
            (tls, rest) = (false, u.dropFirst(7))
        } else {
            return nil
        }
        let end = rest.firstIndex(where: { $0 == "/" || $0 == "?" || $0 == "#" }) ?? rest.endIndex
        let hostPort = rest[..<end]
        var path = String(rest[end...])
        if let fragment = path.firstIndex(of: "#") { path = String(path[..<fragment]) }
        guard !hostPort.isEmpty, !hostPort.contains("@") else { return nil }
        let host: Substring
        var portText: Substring?
        if hostPort.hasPrefix("[") {
            guard let close = hostPort.firstIndex(of: "]") else { return nil }
            host = hostPort[hostPort.index(after: hostPort.startIndex)..<close]
            let after = hostPort[hostPort.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else { return nil }
                portText = after.dropFirst()
            }
        } else if let colon = hostPort.lastIndex(of: ":") {
            host = hostPort[..<colon]
            portText = hostPort[hostPort.index(after: colon)...]
        } else {
            host = hostPort
        }
        let defaultPort = tls ? 443 : 80
        let port: Int
        if let portText {
            guard let p = Int(portText), (1...65535).contains(p) else { return nil }
            port = p
        } else {
            port = defaultPort
        }
        guard !host.isEmpty else { return nil }
        let written = hostPort.hasPrefix("[") ? "[\(host)]" : String(host)
        let endpoint = UpstreamEndpoint(
            tls: tls, host: String(host), port: port, authority: port == defaultPort ? written : "\(written):\(port)")
        return (endpoint, path.isEmpty ? "/" : path)
    }
}

/// A failed upstream exchange. The message names what failed, never the upstream's own error text.
package struct UpstreamError: Error, Sendable, CustomStringConvertible {
    package enum Kind: String, Sendable {
        /// No connection could be made.
        case connect
        /// No (complete) answer within the exchange's deadline, or the body stalled that long.
        case timeout
        /// The connection closed or failed during the exchange.
        case closed
        /// The upstream's answer broke HTTP/1.1 (or was larger than announced).
        case malformed
        /// The client is shut down.
        case shutdown
    }

    package let kind: Kind
    package let message: String
    /// Whether any of the upstream's answer had arrived (a request on a stale keep-alive connection gets nothing).
    package let answered: Bool
    /// Whether nothing of the request was written (the connection was found closed before the exchange began), so
    /// that it can be sent again elsewhere whatever its method, its body not read yet.
    package let unsent: Bool

    package init(_ kind: Kind, _ message: String, answered: Bool = false, unsent: Bool = false) {
        self.kind = kind
        self.message = message
        self.answered = answered
        self.unsent = unsent
    }

    package var timedOut: Bool { kind == .timeout }
    package var description: String { "\(kind.rawValue): \(message)" }
}

/// The upstream's answer: its head, and its body read whole (a known length up to the exchange's `bufferUpTo`) or
/// streamed with backpressure (the connection reads only as fast as the body is consumed).
package struct UpstreamResponse: Sendable {
    package let head: HTTPResponseHead
    package let body: Body

    package enum Body: Sendable {
        case buffered(ByteBuffer)
        case streamed(UpstreamResponseBody)
    }

    /// The body as it arrives: one part when it was read whole.
    package var parts: UpstreamResponseBody.Parts { UpstreamResponseBody.Parts(body: body) }

    /// The whole body, at most `limit` bytes.
    package func collect(upTo limit: Int) async throws -> ByteBuffer {
        switch body {
        case .buffered(let b):
            guard b.readableBytes <= limit else { throw UpstreamError(.malformed, "the body is larger than \(limit)") }
            return b
        case .streamed(let s):
            var out = ByteBuffer()
            for try await chunk in s {
                guard out.readableBytes + chunk.readableBytes <= limit else {
                    throw UpstreamError(.malformed, "the body is larger than \(limit) bytes")
                }
                out.writeImmutableBuffer(chunk)
            }
            return out
        }
    }
}

/// A streamed upstream body. Dropping it before its end closes the upstream connection (it cannot be reused with a
/// body half read).
package struct UpstreamResponseBody: AsyncSequence, Sendable {
    package typealias Element = ByteBuffer
    typealias Producer = NIOThrowingAsyncSequenceProducer<
        ByteBuffer, any Error, NIOAsyncSequenceProducerBackPressureStrategies.HighLowWatermark, UpstreamBodyDelegate
    >
    let producer: Producer

    package struct AsyncIterator: AsyncIteratorProtocol {
        var base: Producer.AsyncIterator
        package mutating func next() async throws -> ByteBuffer? { try await base.next() }
    }

    package func makeAsyncIterator() -> AsyncIterator { AsyncIterator(base: producer.makeAsyncIterator()) }

    /// A response body of either kind as a sequence of parts.
    package struct Parts: AsyncSequence, Sendable {
        package typealias Element = ByteBuffer
        let body: UpstreamResponse.Body

        package struct AsyncIterator: AsyncIteratorProtocol {
            var whole: ByteBuffer?
            var stream: UpstreamResponseBody.AsyncIterator?
            package mutating func next() async throws -> ByteBuffer? {
                if let w = whole {
                    whole = nil
                    return w
                }
                return try await stream?.next()
            }
        }

        package func makeAsyncIterator() -> AsyncIterator {
            switch body {
            case .buffered(let b): AsyncIterator(whole: b, stream: nil)
            case .streamed(let s): AsyncIterator(whole: nil, stream: s.makeAsyncIterator())
            }
        }
    }
}

/// Tells the connection's handler, on its event loop, that the body's reader wants more or is gone.
struct UpstreamBodyDelegate: NIOAsyncSequenceProducerDelegate {
    let handler: NIOLoopBound<UpstreamHandler>
    let exchange: Int

    func produceMore() {
        let (handler, exchange) = (handler, exchange)
        handler.eventLoop.execute { handler.value.produceMore(exchange) }
    }

    func didTerminate() {
        let (handler, exchange) = (handler, exchange)
        handler.eventLoop.execute { handler.value.bodyAbandoned(exchange) }
    }
}

/// The HTTP/1.1 client of the data path: keep-alive connections per upstream, each exchange written and read on the
/// connection's event loop by one handler, the response handed over once (its head and a small body together) rather
/// than through a general client's per-request state machines. Request bodies stream from the agent with
/// backpressure (each part is written before the next is read); response bodies stream with backpressure too.
///
/// Bounded everywhere: connect timeout, a deadline per exchange (until the head of a streamed answer, until the end of
/// a buffered one), a stall limit on streamed bodies, at most `maxIdlePerEndpoint` idle connections kept per
/// upstream, each closed after `idleTimeout`.
package final class UpstreamClient: Sendable {
    let group: any EventLoopGroup
    let connectTimeout: TimeAmount
    let idleTimeout: TimeAmount
    let maxIdlePerEndpoint: Int
    let tlsContext: NIOSSLContext?
    private let idle = Mutex<[UpstreamEndpoint: [UpstreamConnection]]>([:])
    private let closed = Atomic<Bool>(false)

    package init(
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton, connectTimeout: TimeAmount = .seconds(5),
        idleTimeout: TimeAmount = .seconds(60), maxIdlePerEndpoint: Int = 256,
        tls: TLSConfiguration = .makeClientConfiguration()
    ) {
        self.group = group
        self.connectTimeout = connectTimeout
        self.idleTimeout = idleTimeout
        self.maxIdlePerEndpoint = maxIdlePerEndpoint
        // Upstream TLS: by default the system's roots, the upstream's name verified against its certificate (a DNS
        // name, or an IP address against an IP SAN).
        self.tlsContext = try? NIOSSLContext(configuration: tls)
    }

    /// Closes every idle connection; exchanges started later fail.
    package func shutdown() async {
        closed.store(true, ordering: .relaxed)
        let all = idle.withLock { i in
            defer { i.removeAll() }
            return i.values.flatMap { $0 }
        }
        for c in all { try? await c.channel.close() }
    }

    /// One exchange: `head` (its target sent exactly as given; `Host` is set here from the endpoint) and the body,
    /// none, `bytes`, or `stream` (read one part at a time, each written before the next is asked for). A request
    /// that found its reused keep-alive connection closed before any answer is sent once more on a new connection
    /// when it has no body and a safe method (the upstream never saw it), and so is any request whose connection
    /// was found closed before anything of it was written (its body not read yet).
    package func execute(
        _ endpoint: UpstreamEndpoint, head: HTTPRequestHead, bytes: ByteBuffer? = nil,
        stream: (any AsyncSequence<ByteBuffer, any Error> & Sendable)? = nil, timeout: TimeAmount, bufferUpTo: Int,
        timeoutCoversBody: Bool = false
    ) async throws(UpstreamError) -> UpstreamResponse {
        var head = head
        head.headers.replaceOrAdd(name: "Host", value: endpoint.authority)
        let retryable =
            stream == nil && (bytes?.readableBytes ?? 0) == 0 && [.GET, .HEAD, .OPTIONS].contains(head.method)
        var attempt = 0
        while true {
            let (connection, reused) = try await acquire(endpoint)
            do throws(UpstreamError) {
                return try await exchange(
                    on: connection, head: head, bytes: bytes, stream: stream, timeout: timeout, bufferUpTo: bufferUpTo,
                    wholeBody: timeoutCoversBody)
            } catch {
                guard attempt == 0, error.kind == .closed, !error.answered, error.unsent || (reused && retryable)
                else { throw error }
                attempt += 1
            }
        }
    }

    private func exchange(
        on connection: UpstreamConnection, head: HTTPRequestHead, bytes: ByteBuffer?,
        stream: (any AsyncSequence<ByteBuffer, any Error> & Sendable)?, timeout: TimeAmount, bufferUpTo: Int,
        wholeBody: Bool
    ) async throws(UpstreamError) -> UpstreamResponse {
        let channel = connection.channel
        let promise = channel.eventLoop.makePromise(of: UpstreamResponse.self)
        let handler = connection.handler
        // Streaming: the agent's body is read only once the head is written (a connection found closed first leaves
        // it unread, and the request can go elsewhere).
        let started = stream == nil ? nil : channel.eventLoop.makePromise(of: Void.self)
        // Head, and a body given whole, in one hand-over to the event loop.
        channel.eventLoop.execute {
            handler.value.start(
                promise, started: started, head: head, bytes: bytes, timeout: timeout, bufferUpTo: bufferUpTo,
                wholeBody: wholeBody)
        }
        if let stream, let started {
            do {
                try await started.futureResult.get()
            } catch {
                throw UpstreamError(.closed, "the connection closed", unsent: true)
            }
            do {
                for try await part in stream where part.readableBytes > 0 {
                    try await channel.writeAndFlush(HTTPClientRequestPart.body(.byteBuffer(part))).get()
                }
                try await channel.writeAndFlush(HTTPClientRequestPart.end(nil)).get()
            } catch {
                // The agent's body failed (too large, cut off) or the connection did: the upstream must not take a
                // truncated request for a whole one, so the connection goes.
                channel.close(promise: nil)
            }
        }
        do {
            // A cancelled caller ends its exchange (and the connection) rather than wait for the deadline.
            return try await withTaskCancellationHandler {
                try await promise.futureResult.get()
            } onCancel: {
                channel.eventLoop.execute {
                    let h = handler.value
                    guard let current = h.promise, current.futureResult === promise.futureResult else { return }
                    h.fail(UpstreamError(.closed, "the exchange was cancelled", answered: h.answered))
                }
            }
        } catch let e as UpstreamError {
            throw e
        } catch {
            throw UpstreamError(.closed, "the upstream connection failed")
        }
    }

    /// An idle connection to `endpoint` (reused: true), or a new one.
    private func acquire(_ endpoint: UpstreamEndpoint) async throws(UpstreamError) -> (UpstreamConnection, Bool) {
        guard !closed.load(ordering: .relaxed) else { throw UpstreamError(.shutdown, "the client is shut down") }
        while let c = idle.withLock({ $0[endpoint]?.popLast() }) {
            if c.usable.load(ordering: .relaxed), c.channel.isActive { return (c, true) }
        }
        return (try await connect(endpoint), false)
    }

    private func connect(_ endpoint: UpstreamEndpoint) async throws(UpstreamError) -> UpstreamConnection {
        let loop = group.next()
        let bound = loop.makePromise(of: NIOLoopBound<UpstreamHandler>.self)
        let tls = endpoint.tls ? tlsContext : nil
        if endpoint.tls, tls == nil {
            throw UpstreamError(.connect, "TLS to upstreams is unavailable (no client context)")
        }
        // TLS: the connection is made when the handshake is (the certificate verified), within the connect timeout.
        let handshake = tls == nil ? nil : loop.makePromise(of: Void.self)
        let bootstrap = ClientBootstrap(group: loop)
            .connectTimeout(connectTimeout)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { [weak self] channel in
                do {
                    let sync = channel.pipeline.syncOperations
                    if let tls {
                        // SNI carries host names only: an upstream named by its address is sent none, and NIOSSL
                        // then verifies the certificate against the address it connected to (an IP SAN).
                        let name = (try? SocketAddress(ipAddress: endpoint.host, port: 0)) == nil ? endpoint.host : nil
                        try sync.addHandler(try NIOSSLClientHandler(context: tls, serverHostname: name))
                        if let handshake { try sync.addHandler(HandshakeWaiter(handshake)) }
                    }
                    try sync.addHTTPClientHandlers()
                    let handler = UpstreamHandler(
                        released: { [weak self] connection in self?.release(connection) },
                        closed: { [weak self] channel in self?.forget(channel, endpoint: endpoint) })
                    try sync.addHandler(handler)
                    bound.succeed(NIOLoopBound(handler, eventLoop: channel.eventLoop))
                    return channel.eventLoop.makeSucceededVoidFuture()
                } catch {
                    bound.fail(error)
                    return channel.eventLoop.makeFailedFuture(error)
                }
            }
        do {
            let channel = try await bootstrap.connect(host: endpoint.host, port: endpoint.port).get()
            if let handshake {
                let limit = channel.eventLoop.scheduleTask(in: connectTimeout) {
                    handshake.fail(UpstreamError(.timeout, "the TLS handshake with the upstream timed out"))
                }
                do {
                    try await handshake.futureResult.get()
                    limit.cancel()
                } catch {
                    limit.cancel()
                    channel.close(promise: nil)
                    throw (error as? UpstreamError)
                        ?? UpstreamError(
                            .connect, "the TLS handshake with the upstream failed (its certificate was not accepted)")
                }
            }
            let handler = try await bound.futureResult.get()
            let connection = UpstreamConnection(
                channel: channel, handler: handler, endpoint: endpoint, idleTimeout: idleTimeout)
            // Before the first exchange's start (the loop runs its tasks in order); not on a connection that already
            // closed (its handler would keep it alive).
            channel.eventLoop.execute {
                let h = handler.value
                if case .closed = h.phase {
                    connection.usable.store(false, ordering: .relaxed)
                } else if h.context?.channel.isActive == true {
                    h.connection = connection
                } else {
                    connection.usable.store(false, ordering: .relaxed)
                }
            }
            return connection
        } catch {
            bound.fail(UpstreamError(.connect, "no connection"))
            handshake?.fail(UpstreamError(.connect, "no connection"))
            if let error = error as? UpstreamError { throw error }
            if case ChannelError.connectTimeout = error {
                throw UpstreamError(.timeout, "the connection to the upstream timed out")
            }
            throw UpstreamError(.connect, "the upstream refused or could not be reached")
        }
    }

    /// A connection whose exchange ended cleanly goes back to the idle list (on its event loop).
    private func release(_ connection: UpstreamConnection) {
        let kept = idle.withLock { i -> Bool in
            guard !closed.load(ordering: .relaxed), connection.usable.load(ordering: .relaxed),
                i[connection.endpoint, default: []].count < maxIdlePerEndpoint
            else { return false }
            i[connection.endpoint, default: []].append(connection)
            return true
        }
        if !kept { connection.channel.close(promise: nil) }
    }

    /// Removes a connection that closed from the idle list.
    private func forget(_ channel: any Channel, endpoint: UpstreamEndpoint) {
        idle.withLock { i in i[endpoint]?.removeAll { $0.channel === channel } }
    }
}

/// Fulfils `promise` when the TLS handshake completes, fails it when the connection errs or closes first; then
/// passes everything on.
final class HandshakeWaiter: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny
    let promise: EventLoopPromise<Void>

    init(_ promise: EventLoopPromise<Void>) { self.promise = promise }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case TLSUserEvent.handshakeCompleted = event { promise.succeed(()) }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        promise.fail(error)
        context.fireErrorCaught(error)
    }

    func channelInactive(context: ChannelHandlerContext) {
        promise.fail(UpstreamError(.connect, "the upstream closed the connection during the TLS handshake"))
        context.fireChannelInactive()
    }
}

/// A keep-alive connection and its handler.
final class UpstreamConnection: Sendable {
    let channel: any Channel
    let handler: NIOLoopBound<UpstreamHandler>
    let endpoint: UpstreamEndpoint
    let idleTimeout: TimeAmount
    /// False once its handler has begun to close it (a TLS close waits for the peer's close_notify, and the channel
    /// stays active meanwhile): the pool hands it out no more.
    let usable = Atomic<Bool>(true)

    init(
        channel: any Channel, handler: NIOLoopBound<UpstreamHandler>, endpoint: UpstreamEndpoint,
        idleTimeout: TimeAmount
    ) {
        self.channel = channel
        self.handler = handler
        self.endpoint = endpoint
        self.idleTimeout = idleTimeout
    }
}

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
    /// The exchange's deadline (until the request is written and the answer's head, or whole buffered answer, read;
    /// with `wholeBody`, until the answer's end).
    var timer: Scheduled<Void>?
    /// The stall limit of a streamed body.
    var stallTimer: Scheduled<Void>?
    var idleTimer: Scheduled<Void>?

    init(released: @escaping (UpstreamConnection) -> Void, closed: @escaping (any Channel) -> Void) {
        self.released = released
        self.closed = closed
    }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }

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
        let number = exchange
        timer = context.eventLoop.assumeIsolated().scheduleTask(in: timeout) { [weak self] in
            guard let self, self.exchange == number else { return }
            switch self.phase {
            case .awaitingHead, .buffering:
                self.fail(UpstreamError(.timeout, "no answer in time", answered: self.answered))
            case .streaming where !self.requestEnded || self.wholeBody:
                self.fail(UpstreamError(.timeout, "no complete answer in time", answered: true))
            default: break
            }
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
        if case .end = unwrapOutboundIn(data) {
            requestEnded = true
            if case .streaming = phase, !wholeBody {
                // The head arrived during the upload: the deadline's work is done.
                timer?.cancel()
                timer = nil
            }
        }
        context.write(data, promise: promise)
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
            if requestEnded, !wholeBody {
                timer?.cancel()
                timer = nil
            }
            let made = UpstreamResponseBody.Producer.makeSequence(
                backPressureStrategy: .init(lowWatermark: 2, highWatermark: 8), finishOnDeinit: false,
                delegate: UpstreamBodyDelegate(
                    handler: NIOLoopBound(self, eventLoop: context.eventLoop), exchange: exchange))
            phase = .streaming(made.source)
            lastRead = .now()
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
            lastRead = .now()
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
        timer?.cancel()
        timer = nil
        stallTimer?.cancel()
        stallTimer = nil
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
        lastRead = .now()
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
        timer?.cancel()
        stallTimer?.cancel()
        context?.close(promise: nil)
    }

    /// While a body streams, a stall (no bytes for the exchange's timeout while the reader waits) fails it.
    func armStallTimer() {
        guard let context else { return }
        let number = exchange
        stallTimer = context.eventLoop.assumeIsolated().scheduleTask(deadline: lastRead + timeout) { [weak self] in
            guard let self, self.exchange == number, case .streaming = self.phase else { return }
            if self.demand, NIODeadline.now() - self.lastRead >= self.timeout {
                self.fail(UpstreamError(.timeout, "the upstream's body stalled", answered: true))
            } else {
                if !self.demand { self.lastRead = .now() }
                self.armStallTimer()
            }
        }
    }

    /// Ends the exchange with `error` and closes the connection.
    func fail(_ error: UpstreamError) {
        let previous = phase
        phase = .closed
        timer?.cancel()
        timer = nil
        stallTimer?.cancel()
        stallTimer = nil
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
