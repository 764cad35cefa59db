import NIOCore
import NIOHTTP1

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
    /// The request's upload when it may still run while the answer streams: ended (and waited for) when the body
    /// ends or fails.
    var upload: Upload?

    /// The same body, ending `upload` when it ends.
    func ending(_ upload: Upload) -> UpstreamResponseBody {
        var b = self
        b.upload = upload
        return b
    }

    package struct AsyncIterator: AsyncIteratorProtocol {
        var base: Producer.AsyncIterator
        var upload: Upload?
        package mutating func next() async throws -> ByteBuffer? {
            do {
                if let part = try await base.next() { return part }
            } catch {
                await finishUpload()
                throw error
            }
            await finishUpload()
            return nil
        }

        mutating func finishUpload() async {
            guard let u = upload else { return }
            upload = nil
            await u.end()
        }
    }

    package func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(base: producer.makeAsyncIterator(), upload: upload)
    }

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
