import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import NIOTLS
import Synchronization

/// The HTTP/1.1 client of the data path: keep-alive connections per upstream, each exchange written and read on the
/// connection's event loop by one handler, the response handed over once (its head and a small body together) rather
/// than through a general client's per-request state machines. Request bodies stream from the agent with
/// backpressure (each part is written before the next is read); response bodies stream with backpressure too.
///
/// Bounded everywhere: connect timeout, a deadline per exchange from the request's end (until the head of a streamed
/// answer, until the end of a buffered one), a stall limit on streamed bodies both ways (an upload may take longer
/// than the deadline while it moves), at most `maxIdlePerEndpoint` idle connections kept per upstream, each closed
/// after `idleTimeout`.
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
        let safe = head.method == .GET || head.method == .HEAD || head.method == .OPTIONS
        let retryable = safe && stream == nil && (bytes?.readableBytes ?? 0) == 0
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
        var upload: Upload?
        if let stream, let started {
            do {
                try await started.futureResult.get()
            } catch {
                throw UpstreamError(.closed, "the connection closed", unsent: true)
            }
            // The upload runs beside the wait for the answer: an upstream may answer before it has read the whole
            // body (an early refusal, or a full-duplex stream that answers as it reads), and its answer is not held
            // back until the agent has sent everything.
            upload = Upload(channel: channel, stream: stream)
        }
        let response: UpstreamResponse
        do {
            // A cancelled caller ends its exchange (and the connection) rather than wait for the deadline.
            response = try await withTaskCancellationHandler {
                try await promise.futureResult.get()
            } onCancel: {
                channel.eventLoop.execute {
                    let h = handler.value
                    guard let current = h.promise, current.futureResult === promise.futureResult else { return }
                    h.fail(UpstreamError(.closed, "the exchange was cancelled", answered: h.answered))
                }
            }
        } catch {
            await upload?.end()
            throw (error as? UpstreamError) ?? UpstreamError(.closed, "the upstream connection failed")
        }
        guard let upload else { return response }
        switch response.body {
        case .buffered:
            // The whole answer is in: what is left of the upload goes (the connection closes unless the request ended).
            await upload.end()
            return response
        case .streamed(let body):
            // The upload may go on while the answer streams; it is over when the answer's body ends.
            return UpstreamResponse(head: response.head, body: .streamed(body.ending(upload)))
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

/// A request body streaming to the upstream in its own task, beside the wait for the answer. Each part is written
/// before the next is read. A body that fails (too large, cut off), a connection that fails, or an upload stopped
/// before the body's end (``end()``, once the answer is over) closes the connection instead of ending the request:
/// the upstream must never take a truncated request for a whole one.
final class Upload: Sendable {
    let task: Task<Void, Never>
    /// 0 while the body is read; 1 once it was read to its end; 2 once stopped before that.
    private let state: Progress

    final class Progress: Sendable {
        let value = Atomic<Int>(0)
        /// From reading to `to`; false when the other side's change came first.
        func leave(to: Int) -> Bool { value.compareExchange(expected: 0, desired: to, ordering: .relaxed).exchanged }
    }

    init(channel: any Channel, stream: any AsyncSequence<ByteBuffer, any Error> & Sendable) {
        let state = Progress()
        self.state = state
        task = Task {
            do {
                for try await part in stream where part.readableBytes > 0 {
                    try await channel.writeAndFlush(HTTPClientRequestPart.body(.byteBuffer(part))).get()
                }
                // Some sequences end quietly when their reader is cancelled: a body whose reading was stopped first
                // did not end, whatever its sequence says.
                guard state.leave(to: 1) else { throw CancellationError() }
                try await channel.writeAndFlush(HTTPClientRequestPart.end(nil)).get()
            } catch {
                channel.close(promise: nil)
            }
        }
    }

    /// Stops the upload if its body is still being read (it is read no further) and returns once the upload is over,
    /// so that nothing reads the agent's body after the exchange. A body already read to its end is left to end.
    func end() async {
        if state.leave(to: 2) { task.cancel() }
        await task.value
    }

    /// An answer's body dropped unread stops the upload too.
    deinit { if state.leave(to: 2) { task.cancel() } }
}
