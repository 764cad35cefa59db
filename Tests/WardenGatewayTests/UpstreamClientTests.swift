import Crypto
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import Synchronization
import Testing
import WardenIdentity
import X509

@testable import WardenGateway

/// A raw HTTP/1.1 upstream on loopback whose answers are scripted, to see what the data path's client does with
/// keep-alive, closes, silence, malformed answers and large bodies.
final class ScriptedUpstream: Sendable {
    enum Behaviour: Sendable {
        /// `Content-Length` answer, keep-alive.
        case reply(String)
        /// The same, then the connection is closed without saying so.
        case replyThenClose(String)
        /// `Connection: close`, then closed.
        case replyConnectionClose(String)
        /// Never answers.
        case silent
        /// Not HTTP.
        case garbage
        /// A chunked body of `chunks` x 64 KiB, written only as fast as the client reads.
        case chunked(chunks: Int)
        /// Full duplex: a chunked answer begun at the request's head, each piece of the request's body (its raw
        /// chunked framing) sent back as one chunk as it arrives, the answer ended at the request's last chunk.
        case echo
        /// At the request's head, before reading its body: a complete answer (status 413 and this body), the connection
        /// left open; the body's bytes are kept (``received``) and never answered.
        case refuseEarly(String)
        /// Reads a chunked request body to its last chunk, then answers with this body.
        case replyAfterBody(String)
    }

    let behaviour: Behaviour
    /// TLS in front of the script (an upstream reached over https).
    let tls: NIOSSLContext?
    let connections = Atomic<Int>(0)
    let closed = Atomic<Int>(0)
    let bytesWritten = Atomic<Int>(0)
    let requestHeads = Mutex<[String]>([])
    /// What followed the first request's head (``Behaviour/echo`` and ``Behaviour/refuseEarly(_:)``).
    let received = Mutex<String>("")
    private let channel = Mutex<(any Channel)?>(nil)

    init(_ behaviour: Behaviour, tls: NIOSSLContext? = nil) {
        self.behaviour = behaviour
        self.tls = tls
    }

    var port: Int { channel.withLock { $0?.localAddress?.port ?? 0 } }
    var endpoint: UpstreamEndpoint { UpstreamEndpoint(base: "\(tls == nil ? "http" : "https")://127.0.0.1:\(port)")! }

    func start() async throws {
        let bootstrap = ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { [self] channel in
                self.connections.add(1, ordering: .relaxed)
                channel.closeFuture.whenComplete { _ in self.closed.add(1, ordering: .relaxed) }
                return channel.eventLoop.makeCompletedFuture {
                    if let tls = self.tls {
                        try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls))
                    }
                    try channel.pipeline.syncOperations.addHandler(Handler(upstream: self))
                }
            }
        let c = try await bootstrap.bind(host: "127.0.0.1", port: 0).get()
        channel.withLock { $0 = c }
    }

    func stop() async {
        try? await channel.withLock({ $0 })?.close()
    }

    final class Handler: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer
        let upstream: ScriptedUpstream
        var pending = ""
        /// After the head, for behaviours that read a body: everything else is body.
        var inBody = false

        init(upstream: ScriptedUpstream) { self.upstream = upstream }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let text = String(buffer: unwrapInboundIn(data))
            if inBody {
                body(context, text)
                return
            }
            pending += text
            // Requests here have no body (but for `echo` and `refuseEarly`): each head ends at the blank line.
            while let end = pending.range(of: "\r\n\r\n") {
                let head = String(pending[..<end.lowerBound])
                pending = String(pending[end.upperBound...])
                upstream.requestHeads.withLock { $0.append(head) }
                answer(context)
                switch upstream.behaviour {
                case .echo, .refuseEarly, .replyAfterBody:
                    inBody = true
                    let rest = pending
                    pending = ""
                    if !rest.isEmpty { body(context, rest) }
                    return
                default: break
                }
            }
        }

        func body(_ context: ChannelHandlerContext, _ text: String) {
            let all = upstream.received.withLock { r in
                r += text
                return r
            }
            switch upstream.behaviour {
            case .echo:
                _ = send(context, String(text.utf8.count, radix: 16) + "\r\n" + text + "\r\n")
                if all.hasSuffix("\r\n0\r\n\r\n") { _ = send(context, "0\r\n\r\n") }
            case .replyAfterBody(let body) where all.hasSuffix("\r\n0\r\n\r\n"):
                _ = send(context, "HTTP/1.1 200 OK\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)")
            default: break
            }
        }

        func send(_ context: ChannelHandlerContext, _ text: String) -> EventLoopFuture<Void> {
            upstream.bytesWritten.add(text.utf8.count, ordering: .relaxed)
            return context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: text)))
        }

        func answer(_ context: ChannelHandlerContext) {
            let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
            switch upstream.behaviour {
            case .reply(let body):
                _ = send(context, "HTTP/1.1 200 OK\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)")
            case .replyThenClose(let body):
                send(context, "HTTP/1.1 200 OK\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)").whenComplete {
                    _ in bound.value.close(promise: nil)
                }
            case .replyConnectionClose(let body):
                send(
                    context, "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"
                ).whenComplete { _ in bound.value.close(promise: nil) }
            case .silent:
                break
            case .garbage:
                _ = send(context, "this is not HTTP at all\r\n\r\n")
            case .chunked(let chunks):
                let chunk = String(repeating: "z", count: 64 * 1024)
                let frame = String(chunk.utf8.count, radix: 16) + "\r\n" + chunk + "\r\n"
                func next(_ left: Int) {
                    guard left > 0 else {
                        _ = send(bound.value, "0\r\n\r\n")
                        return
                    }
                    // The next chunk only once this one is in the socket: a client that stops reading stops this.
                    send(bound.value, frame).whenSuccess { next(left - 1) }
                }
                send(context, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n").whenSuccess { next(chunks) }
            case .echo:
                _ = send(context, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            case .refuseEarly(let body):
                _ = send(context, "HTTP/1.1 413 Content Too Large\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)")
            case .replyAfterBody:
                break
            }
        }
    }
}

/// Waits until `value` stops changing for a while (at most `limit`), and returns it.
func settled(_ value: () -> Int, limit: Duration = .seconds(10)) async throws -> Int {
    let clock = ContinuousClock()
    let end = clock.now + limit
    var last = value()
    var stableSince = clock.now
    while clock.now < end {
        try await Task.sleep(for: .milliseconds(20))
        let v = value()
        if v != last {
            last = v
            stableSince = clock.now
        } else if clock.now - stableSince >= .milliseconds(300) {
            break
        }
    }
    return last
}

@Suite("The data path's upstream client (a scripted upstream on loopback)")
struct UpstreamClientTests {
    func withUpstream(_ b: ScriptedUpstream.Behaviour, _ body: (ScriptedUpstream, UpstreamClient) async throws -> Void)
        async throws
    {
        let upstream = ScriptedUpstream(b)
        try await upstream.start()
        let client = UpstreamClient()
        do {
            try await body(upstream, client)
        } catch {
            await client.shutdown()
            await upstream.stop()
            throw error
        }
        await client.shutdown()
        await upstream.stop()
    }

    func get(_ uri: String) -> HTTPRequestHead { HTTPRequestHead(version: .http1_1, method: .GET, uri: uri) }

    func text(_ r: UpstreamResponse) async throws -> String { String(buffer: try await r.collect(upTo: 1 << 20)) }

    @Test("keep-alive: exchanges share one connection; the target goes out byte for byte with the upstream's Host")
    func keepAlive() async throws {
        try await withUpstream(.reply("ok")) { upstream, client in
            let target = "/v1/a%2Fb/..%2E;x=1/%7E?q=%41&r"
            for _ in 0..<5 {
                let r = try await client.execute(
                    upstream.endpoint, head: get(target), timeout: .seconds(5), bufferUpTo: 1024)
                #expect(r.head.status == .ok)
                #expect(try await text(r) == "ok")
            }
            #expect(upstream.connections.load(ordering: .relaxed) == 1)
            let heads = upstream.requestHeads.withLock { $0 }
            #expect(heads.count == 5)
            let lines = heads.first?.components(separatedBy: "\r\n") ?? []
            #expect(lines.first == "GET \(target) HTTP/1.1")
            #expect(lines.contains("Host: 127.0.0.1:\(upstream.port)"))
        }
    }

    @Test("an upstream that closes after answering, or says Connection: close, gets a new connection next time")
    func closes() async throws {
        for behaviour in [ScriptedUpstream.Behaviour.replyThenClose("ok"), .replyConnectionClose("ok")] {
            try await withUpstream(behaviour) { upstream, client in
                for _ in 0..<3 {
                    let r = try await client.execute(
                        upstream.endpoint, head: get("/x"), timeout: .seconds(5), bufferUpTo: 1024)
                    #expect(try await text(r) == "ok")
                }
                #expect(upstream.connections.load(ordering: .relaxed) == 3)
            }
        }
    }

    // No wall-clock bound on the call: with the whole suite in parallel on two cores a continuation can wait long
    // for a thread. The outcome says which way it ended (only the exchange's deadline gives this error; without it
    // the call would never end, which the time limit catches).
    @Test(
        "silence fails the exchange at its deadline, and that connection is closed, not reused",
        .timeLimit(.minutes(3)))
    func silence() async throws {
        try await withUpstream(.silent) { upstream, client in
            do throws(UpstreamError) {
                _ = try await client.execute(
                    upstream.endpoint, head: get("/x"), timeout: .milliseconds(200), bufferUpTo: 1024)
                Issue.record("a silent upstream answered")
            } catch {
                #expect(error.kind == .timeout && error.message == "no answer in time")
            }
            let closed = try await settled { upstream.closed.load(ordering: .relaxed) }
            #expect(closed == 1)
        }
    }

    @Test(
        "a cancelled caller ends its exchange at once (not at the deadline), and that connection is closed",
        .timeLimit(.minutes(3)))
    func cancellation() async throws {
        try await withUpstream(.silent) { upstream, client in
            let call = Task { () async throws(UpstreamError) -> UpstreamResponse in
                // A deadline past the test's time limit: only the cancellation can end this in time.
                try await client.execute(
                    upstream.endpoint, head: get("/x"), timeout: .seconds(3_600), bufferUpTo: 1024)
            }
            // Cancelled once the upstream has the request (bounded wait).
            let deadline = ContinuousClock.now + .seconds(10)
            while upstream.requestHeads.withLock({ $0.isEmpty }), ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(5))
            }
            call.cancel()
            let result = await call.result
            guard case .failure(let error) = result else {
                Issue.record("a silent upstream answered")
                return
            }
            #expect((error as? UpstreamError)?.kind == .closed)
            #expect((error as? UpstreamError)?.message == "the exchange was cancelled")
            let closed = try await settled { upstream.closed.load(ordering: .relaxed) }
            #expect(closed == 1)
        }
    }

    @Test("an answer that is not HTTP fails the exchange")
    func garbage() async throws {
        try await withUpstream(.garbage) { upstream, client in
            await #expect(throws: UpstreamError.self) {
                _ = try await client.execute(upstream.endpoint, head: get("/x"), timeout: .seconds(5), bufferUpTo: 1024)
            }
        }
    }

    @Test("no upstream listening: a connect error, quickly")
    func refused() async throws {
        let client = UpstreamClient()
        defer { Task { await client.shutdown() } }
        do {
            _ = try await client.execute(
                UpstreamEndpoint(base: "http://127.0.0.1:1")!, head: get("/x"), timeout: .seconds(5), bufferUpTo: 1024)
            Issue.record("port 1 answered")
        } catch {
            #expect(error.kind == .connect)
        }
    }

    @Test("a large chunked body streams whole; a reader that stops holds the upstream back; dropping it closes")
    func backpressure() async throws {
        try await withUpstream(.chunked(chunks: 256)) { upstream, client in
            // Read whole: 16 MiB arrive intact.
            let r = try await client.execute(
                upstream.endpoint, head: get("/all"), timeout: .seconds(5), bufferUpTo: 1024)
            guard case .streamed = r.body else {
                Issue.record("a chunked body was buffered")
                return
            }
            #expect(try await r.collect(upTo: 32 << 20).readableBytes == 256 * 64 * 1024)
            // A reader that takes one part and stops: the upstream can write no more than the sockets and the
            // client's small window hold, far from the 16 MiB it has.
            let before = upstream.bytesWritten.load(ordering: .relaxed)
            let slow = try await client.execute(
                upstream.endpoint, head: get("/slow"), timeout: .seconds(5), bufferUpTo: 1024)
            guard case .streamed(let body) = slow.body else {
                Issue.record("a chunked body was buffered")
                return
            }
            var iterator: UpstreamResponseBody.AsyncIterator? = body.makeAsyncIterator()
            #expect(try await iterator?.next() != nil)
            let written = try await settled { upstream.bytesWritten.load(ordering: .relaxed) } - before
            #expect(written < 12 << 20, "the upstream wrote \(written) bytes for a reader that stopped")
            // Dropping the body closes that connection (it cannot be reused half read).
            let closedBefore = upstream.closed.load(ordering: .relaxed)
            iterator = nil
            _ = iterator
            let closedAfter = try await settled { upstream.closed.load(ordering: .relaxed) }
            #expect(closedAfter == closedBefore + 1)
        }
    }

    func post(_ uri: String) -> HTTPRequestHead {
        var head = HTTPRequestHead(version: .http1_1, method: .POST, uri: uri)
        head.headers.add(name: "Transfer-Encoding", value: "chunked")
        return head
    }

    // Before: the answer was handed over only once the upload had ended, so a full-duplex exchange (each part sent
    // once the echo of the one before is back) never ended.
    @Test(
        "full duplex: the answer streams while the body uploads; the body ends whole, then the answer",
        .timeLimit(.minutes(3)))
    func fullDuplex() async throws {
        try await withUpstream(.echo) { upstream, client in
            let (agent, body) = AsyncThrowingStream<ByteBuffer, any Error>.makeStream()
            body.yield(ByteBuffer(string: "first"))
            let r = try await client.execute(
                upstream.endpoint, head: post("/duplex"), stream: agent, timeout: .seconds(60), bufferUpTo: 0)
            guard case .streamed(let answer) = r.body else {
                Issue.record("a chunked answer was buffered")
                return
            }
            var echo = ""
            var iterator = answer.makeAsyncIterator()
            for (part, next) in [("first", "second"), ("second", "third")] {
                while !echo.contains(part), let b = try await iterator.next() { echo += String(buffer: b) }
                #expect(echo.contains(part))
                body.yield(ByteBuffer(string: next))
            }
            body.finish()
            while let b = try await iterator.next() { echo += String(buffer: b) }
            // The upload ended with its last chunk (the upstream saw it, and then ended its answer), in order.
            #expect(echo == "5\r\nfirst\r\n6\r\nsecond\r\n5\r\nthird\r\n0\r\n\r\n")
            #expect(upstream.received.withLock { $0 } == echo)
        }
    }

    // Before: the answer waited for the agent's whole body; an agent that stopped sending held it forever.
    @Test(
        "an answer before the body is read is handed over at once; the upload stops, unended, and the connection closes",
        .timeLimit(.minutes(3)))
    func earlyAnswer() async throws {
        try await withUpstream(.refuseEarly("too large")) { upstream, client in
            let (agent, body) = AsyncThrowingStream<ByteBuffer, any Error>.makeStream()
            body.yield(ByteBuffer(string: "part one"))
            // The agent sends nothing more and never ends its body.
            let r = try await client.execute(
                upstream.endpoint, head: post("/upload"), stream: agent, timeout: .seconds(3_600), bufferUpTo: 1024)
            #expect(r.head.status.code == 413)
            #expect(try await text(r) == "too large")
            // The upload was over when the answer was handed over: what the agent sends next is read by nobody...
            // (its stream was cancelled, or what is yielded now stays in it, unread).
            let after = body.yield(ByteBuffer(string: "part two"))
            body.finish()
            var left = ""
            for try await b in agent { left += String(buffer: b) }
            if case .terminated = after {
            } else {
                #expect(left.hasSuffix("part two"))
            }
            // ...and the upstream never saw the request end (no last chunk): the connection closed instead.
            let closed = try await settled { upstream.closed.load(ordering: .relaxed) }
            #expect(closed == 1)
            let seen = upstream.received.withLock { $0 }
            #expect(!seen.contains("0\r\n\r\n"), "the upstream was told a cut-off body had ended: \(seen)")
        }
    }

    @Test(
        "an upload that stops moving fails at its stall limit, and that connection is closed", .timeLimit(.minutes(3)))
    func stalledUpload() async throws {
        try await withUpstream(.replyAfterBody("stored")) { upstream, client in
            let (agent, body) = AsyncThrowingStream<ByteBuffer, any Error>.makeStream()
            body.yield(ByteBuffer(string: "part one"))
            // Nothing more, and no end: only the upload's stall limit can end this.
            do throws(UpstreamError) {
                _ = try await client.execute(
                    upstream.endpoint, head: post("/store"), stream: agent, timeout: .milliseconds(300),
                    bufferUpTo: 1024)
                Issue.record("a stalled upload was answered")
            } catch {
                #expect(error.kind == .timeout && error.message == "the upload stalled")
            }
            body.finish()
            let closed = try await settled { upstream.closed.load(ordering: .relaxed) }
            #expect(closed == 1)
            #expect(!upstream.received.withLock { $0 }.contains("0\r\n\r\n"))
        }
    }

    @Test("https to an upstream named by its IP address: verified against the certificate's IP SAN, refused without")
    func tlsByAddress() async throws {
        let ca = try CertificateAuthority.generate(trustDomain: "upstream.test")
        func nio(_ c: Certificate) throws -> NIOSSLCertificate {
            try NIOSSLCertificate(bytes: Array(try c.serializeAsPEM().pemString.utf8), format: .pem)
        }
        var client = TLSConfiguration.makeClientConfiguration()
        client.trustRoots = .certificates([try nio(ca.root)])
        // The first certificate names 127.0.0.1 (an IP SAN); the second only a DNS name.
        for (hosts, accepted) in [(["127.0.0.1"], true), (["upstream.test"], false)] {
            let key = P256.Signing.PrivateKey()
            let cert = try ca.issueServerCertificate(key: key, hosts: hosts)
            let server = try NIOSSLContext(
                configuration: .makeServerConfiguration(
                    certificateChain: [.certificate(try nio(cert)), .certificate(try nio(ca.intermediate))],
                    privateKey: .privateKey(
                        try NIOSSLPrivateKey(bytes: Array(key.pemRepresentation.utf8), format: .pem))))
            let upstream = ScriptedUpstream(.reply("over tls"), tls: server)
            try await upstream.start()
            let pool = UpstreamClient(tls: client)
            let outcome: Result<UpstreamResponse, UpstreamError>
            do throws(UpstreamError) {
                outcome = .success(
                    try await pool.execute(upstream.endpoint, head: get("/x"), timeout: .seconds(10), bufferUpTo: 1024))
            } catch {
                outcome = .failure(error)
            }
            switch outcome {
            case .success(let r):
                #expect(accepted, "a certificate without the address was accepted")
                #expect(try await text(r) == "over tls")
            case .failure(let error):
                #expect(!accepted, "\(error)")
                #expect(error.kind == .connect)
                #expect(upstream.requestHeads.withLock { $0.isEmpty })
            }
            await pool.shutdown()
            await upstream.stop()
        }
    }

    @Test("endpoints: default ports, IPv6 brackets, and what is not a plain http(s) URL")
    func endpoints() {
        let a = UpstreamEndpoint.split("https://api.example.com/v1/mcp?x=1#f")
        #expect(a?.0.authority == "api.example.com" && a?.0.port == 443 && a?.0.tls == true)
        #expect(a?.path == "/v1/mcp?x=1")
        let b = UpstreamEndpoint(base: "http://[::1]:8080")
        #expect(b?.host == "::1" && b?.port == 8080 && b?.authority == "[::1]:8080")
        #expect(UpstreamEndpoint(base: "http://h:80")?.authority == "h")
        for bad in ["ftp://h", "http://", "http://u@h", "http://h:0", "http://h:99999", "http://[::1", "h:80"] {
            #expect(UpstreamEndpoint.split(bad) == nil, "\(bad)")
        }
    }
}

@Suite("Opening an MCP server's session over HTTP (a scripted upstream on loopback)")
struct MCPSessionOpeningTests {
    // Before: a caller waited for the shared initialization whatever happened to it, so a session opening whose
    // deadline passed during `initialize` still waited for `notifications/initialized` too (up to twice the timeout).
    @Test(
        "a caller that gives up stops waiting for the shared initialization at once; the initialization goes on",
        .timeLimit(.minutes(3)))
    func cancelledWaiter() async throws {
        let scripted = ScriptedUpstream(.silent)
        try await scripted.start()
        let client = UpstreamClient()
        // Each exchange's own deadline is past the test's time limit: only the caller's cancellation can end its wait.
        let server = HTTPUpstream(
            url: "http://127.0.0.1:\(scripted.port)/mcp", http: client, timeout: 3_600, maxBytes: 1 << 20,
            credential: { nil })
        let waiter = Task { () async throws(UpstreamFailure) -> HTTPUpstream.Session in try await server.establish() }
        let deadline = ContinuousClock.now + .seconds(10)
        while scripted.requestHeads.withLock({ $0.isEmpty }), ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(5))
        }
        #expect(scripted.requestHeads.withLock { $0.count } == 1)
        waiter.cancel()
        switch await waiter.result {
        case .success: Issue.record("a silent server opened a session")
        case .failure(let e): #expect((e as? UpstreamFailure)?.kind == "unavailable")
        }
        // The initialization itself still runs for other callers: its request is still open at the server.
        #expect(server.starting.withLock { $0 != nil })
        #expect(scripted.closed.load(ordering: .relaxed) == 0)
        await scripted.stop()
        await client.shutdown()
    }
}
