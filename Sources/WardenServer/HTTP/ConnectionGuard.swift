import HTTPTypes
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import Logging
import NIOCore
import NIOHTTPTypes
import NIOSSL
import Synchronization
import WardenControlPlane
import WardenGateway

/// Connection limits against slow and idle clients (`limits:`): a deadline for reading each request's head, an idle
/// keep-alive timeout, and a cap on open connections per source address. Together with the listener's connection cap
/// and the decoder's bounds on header count and size, a client that opens sockets and sends nothing, or trickles a
/// header a byte at a time, holds them for seconds, not forever, and one source cannot take every slot.
public struct ConnectionLimits: Sendable {
    /// From the first byte of a request (or the connection's start) to the end of its head.
    public var headerTimeout: Duration
    /// Between the end of a response and the first byte of the next request on a kept-alive connection.
    public var idleTimeout: Duration
    /// Open connections per source address (an IPv4 address, an IPv6 /64; `SourceGuard.key`).
    public var maxPerSource: Int
    /// While Warden is ready to read more of a request body: the longest wait for its next bytes.
    public var bodyTimeout: Duration
    /// While a response cannot be written because the client does not read it: the longest wait.
    public var sendTimeout: Duration

    public init(
        headerTimeout: Duration = .seconds(10), idleTimeout: Duration = .seconds(60), maxPerSource: Int = 128,
        bodyTimeout: Duration = .seconds(30), sendTimeout: Duration = .seconds(30)
    ) {
        self.headerTimeout = headerTimeout
        self.idleTimeout = idleTimeout
        self.maxPerSource = maxPerSource
        self.bodyTimeout = bodyTimeout
        self.sendTimeout = sendTimeout
    }
}

extension GatewayLimits {
    /// The connection guard's settings.
    public var connectionLimits: ConnectionLimits {
        ConnectionLimits(
            headerTimeout: .seconds(headerTimeout), idleTimeout: .seconds(idleTimeout),
            maxPerSource: maxConnectionsPerSource, bodyTimeout: .seconds(bodyTimeout),
            sendTimeout: .seconds(sendTimeout))
    }
}

/// Counts open connections per source address and refuses those over the cap. Shared by one listener's connections.
public final class SourceConnections: Sendable {
    let counts = Mutex<[String: Int]>([:])
    let limit: Int
    /// Connections closed at once because their source had too many open.
    let refused = Atomic<Int>(0)
    /// Connections closed by the head or idle deadline.
    let timedOut = Atomic<Int>(0)

    public init(limit: Int) { self.limit = limit }

    /// Takes a slot for `source`; false when it has `limit` open already.
    func admit(_ source: String) -> Bool {
        counts.withLock { c in
            let n = c[source, default: 0]
            guard n < limit else { return false }
            c[source] = n + 1
            return true
        }
    }

    func release(_ source: String) {
        counts.withLock { c in
            guard let n = c[source] else { return }
            if n <= 1 { c[source] = nil } else { c[source] = n - 1 }
        }
    }

    /// Open connections of `source` (for tests and metrics).
    public func open(_ source: String) -> Int { counts.withLock { $0[source, default: 0] } }
    public var refusedCount: Int { refused.load(ordering: .relaxed) }
    public var timedOutCount: Int { timedOut.load(ordering: .relaxed) }
}

/// The server builder Warden's listeners use: HTTP/1.1 (optionally inside TLS) with header bounds from the decoder
/// and the connection guard in front.
public enum GuardedHTTPServer {
    /// Plain HTTP/1.1.
    public static func http1(
        limits: ConnectionLimits, headers: HTTP1Channel.Configuration.DecoderConfiguration, sources: SourceConnections
    ) -> HTTPServerBuilder {
        HTTPServerBuilder { responder in
            GuardedChannel(
                base: HTTP1Channel(responder: responder, configuration: configuration(headers)),
                limits: limits, sources: sources)
        }
    }

    /// HTTP/1.1 over TLS.
    public static func tls(
        limits: ConnectionLimits, headers: HTTP1Channel.Configuration.DecoderConfiguration, sources: SourceConnections,
        tlsConfiguration: TLSConfiguration
    ) throws -> HTTPServerBuilder {
        // Checked once here, so that the builder below cannot fail for a configuration error.
        _ = try TLSChannel(
            HTTP1Channel(responder: { _, _, _ in }, configuration: configuration(headers)),
            tlsConfiguration: tlsConfiguration)
        return HTTPServerBuilder { responder in
            GuardedChannel(
                base: try TLSChannel(
                    HTTP1Channel(responder: responder, configuration: configuration(headers)),
                    tlsConfiguration: tlsConfiguration),
                limits: limits, sources: sources)
        }
    }

    static func configuration(_ headers: HTTP1Channel.Configuration.DecoderConfiguration) -> HTTP1Channel.Configuration
    {
        var c = HTTP1Channel.Configuration()
        c.httpDecoder = headers
        return c
    }
}

/// A child channel that puts the connection guard in front of `base` and counts the connection against its source.
struct GuardedChannel<Base: ServerChildChannel>: ServerChildChannel {
    typealias Value = Base.Value
    let base: Base
    let limits: ConnectionLimits
    let sources: SourceConnections

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        let source = SourceGuard.key(channel.remoteAddress?.ipAddress)
        let admitted = sources.admit(source)
        if admitted {
            let sources = self.sources
            channel.closeFuture.whenComplete { _ in sources.release(source) }
        }
        return base.setup(channel: channel, logger: logger).flatMapThrowing { value in
            guard admitted else {
                // Over the source's cap: closed before a byte is read (the server's loop sees an ended connection).
                sources.refused.add(1, ordering: .relaxed)
                channel.close(promise: nil)
                return value
            }
            let guardHandler = ConnectionGuardHandler(limits: limits, sources: sources)
            let ops = channel.pipeline.syncOperations
            try ops.addHandler(guardHandler, position: .first)
            let state = try ops.handler(type: HTTPConnectionStateHandler.self)
            try ops.addHandler(RequestWatcher(guardHandler), position: .before(state))
            return value
        }
    }

    func handle(value: Value, logger: Logger) async {
        await base.handle(value: value, logger: logger)
    }
}

/// Sees the connection's raw bytes (before TLS and HTTP decoding) and enforces its deadlines; the `RequestWatcher`
/// behind the HTTP decoder tells it when a request's head and body are complete and when a response has ended.
///
/// - Waiting for a request: the head deadline (from the connection's start, or from the first byte of a later
///   request) or the idle timeout (a kept-alive connection with nothing sent yet).
/// - Reading a body: each time Warden asks for more bytes (NIO's `read`), the client has `bodyTimeout` to send
///   some. Time during which Warden does not ask (its handler, or a slow upstream, applies backpressure) is not the
///   client's and is not counted.
/// - Answering: no deadline while Warden works (the upstream deadline bounds it), except `sendTimeout` while the
///   client does not take what is ready to be written.
final class ConnectionGuardHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let limits: ConnectionLimits
    let sources: SourceConnections
    /// Requests whose head arrived and whose response has not ended.
    var requests = 0
    /// Of them, those whose body is still arriving.
    var bodies = 0
    /// Bytes of a request's head have arrived (none of its head complete yet).
    var readingHead = false
    /// No request has been read yet (the head deadline runs from the connection's start).
    var first = true
    /// The armed deadline is the send timeout.
    var stalled = false
    var timer: Scheduled<Void>?
    var context: ChannelHandlerContext?

    init(limits: ConnectionLimits, sources: SourceConnections) {
        self.limits = limits
        self.sources = sources
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        // A new connection gets the head deadline for its first request, whether or not it sends anything.
        arm(limits.headerTimeout)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        cancel()
        self.context = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        cancel()
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if requests == 0 {
            if !readingHead {
                readingHead = true
                // The head deadline runs from the first byte (from the connection's start for its first request).
                if !first { arm(limits.headerTimeout) }
            }
        } else if bodies > 0, !stalled {
            // Progress on the body: the next `read` starts the wait again.
            cancel()
        }
        context.fireChannelRead(data)
    }

    func read(context: ChannelHandlerContext) {
        // Warden is ready for more of a body: from now on, the wait is the client's.
        if bodies > 0, !stalled { arm(limits.bodyTimeout) }
        context.read()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if !context.channel.isWritable, requests > 0 {
            stalled = true
            arm(limits.sendTimeout)
        } else if context.channel.isWritable, stalled {
            stalled = false
            cancel()
        }
        context.fireChannelWritabilityChanged()
    }

    /// A request's head is complete; its body, if any, follows.
    func headReceived() {
        requests += 1
        bodies += 1
        readingHead = false
        first = false
        if !stalled { cancel() }
    }

    /// A request's body is complete: no deadline while it is served (the upstream deadline bounds it).
    func bodyEnded() {
        guard bodies > 0 else { return }
        bodies -= 1
        if bodies == 0, !stalled { cancel() }
    }

    /// A response has been written whole: with nothing else outstanding, the idle deadline starts.
    func responseEnded() {
        guard requests > 0 else { return }
        requests -= 1
        if requests == 0 {
            stalled = false
            if !readingHead { arm(limits.idleTimeout) }
        }
    }

    func cancel() {
        timer?.cancel()
        timer = nil
    }

    func arm(_ after: Duration) {
        timer?.cancel()
        guard let context else { return }
        let nanos = after.components.seconds * 1_000_000_000 + after.components.attoseconds / 1_000_000_000
        let channel = context.channel
        let sources = self.sources
        timer = context.eventLoop.scheduleTask(in: .nanoseconds(nanos)) {
            sources.timedOut.add(1, ordering: .relaxed)
            channel.close(promise: nil)
        }
    }
}

/// Behind the HTTP decoder: reports complete request heads and finished responses to the connection guard.
final class RequestWatcher: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    let guardHandler: ConnectionGuardHandler

    init(_ guardHandler: ConnectionGuardHandler) { self.guardHandler = guardHandler }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head: guardHandler.headReceived()
        case .end: guardHandler.bodyEnded()
        case .body: break
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = unwrapOutboundIn(data) { guardHandler.responseEnded() }
        context.write(data, promise: promise)
    }
}
