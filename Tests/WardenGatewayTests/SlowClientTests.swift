import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import HummingbirdTesting
import NIOCore
import Testing
import WardenCore

@testable import WardenGateway

#if canImport(Glibc)
    import Glibc
#endif

/// A blocking TCP socket on loopback, bound to a chosen source address (any of 127.0.0.0/8), for clients that
/// misbehave in ways an HTTP client library will not.
final class RawSocket {
    let fd: Int32

    init(from source: String, to port: Int) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw WardenError(.io, "socket() failed") }
        var local = sockaddr_in()
        local.sin_family = sa_family_t(AF_INET)
        inet_pton(AF_INET, source, &local.sin_addr)
        var remote = sockaddr_in()
        remote.sin_family = sa_family_t(AF_INET)
        remote.sin_port = in_port_t(UInt16(port).bigEndian)
        inet_pton(AF_INET, "127.0.0.1", &remote.sin_addr)
        let bound = withUnsafePointer(to: &local) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        let connected = withUnsafePointer(to: &remote) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard bound == 0, connected == 0 else {
            close(fd)
            throw WardenError(.io, "cannot connect from \(source)")
        }
    }

    deinit { close(fd) }

    func send(_ text: String) { _ = text.withCString { Glibc.send(fd, $0, strlen($0), Int32(MSG_NOSIGNAL)) } }

    /// Whether the server closed the connection (EOF or reset) within `seconds`; what it sent before is skipped.
    func closed(within seconds: Double) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        var buffer = [UInt8](repeating: 0, count: 4096)
        while Date() < deadline {
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let left = max(1, Int32(deadline.timeIntervalSinceNow * 1000))
            guard poll(&pfd, 1, left) > 0 else { continue }
            let n = recv(fd, &buffer, buffer.count, 0)
            if n <= 0 { return true }
        }
        return false
    }

    /// The first bytes the server answers within `seconds` (empty when none).
    func answer(within seconds: Double) -> String {
        var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&pfd, 1, Int32(seconds * 1000)) > 0 else { return "" }
        var buffer = [UInt8](repeating: 0, count: 4096)
        let n = recv(fd, &buffer, buffer.count, 0)
        return n > 0 ? String(decoding: buffer[..<n], as: UTF8.self) : ""
    }
}

@Suite("Hostile input: slow and idle clients (live listener)")
struct SlowClientTests {
    /// The attack review held 200 slow sockets against `max_connections: 150` and every legitimate request timed out.
    @Test("slow sockets are capped per source and closed by the head deadline; legitimate requests are served")
    func slowSockets() async throws {
        let f = try Fixture()
        var limits = GatewayLimits()
        limits.maxConnections = 24
        limits.maxConnectionsPerSource = 8
        limits.headerTimeout = 2
        limits.idleTimeout = 1
        limits.maxHeaders = 20
        limits.maxHeaderBytes = 4096
        let sources = SourceConnections(limit: limits.maxConnectionsPerSource)
        let cap = limits.maxConnectionsPerSource
        let app = Application(
            router: WardenRouter.build(f.cp), server: WardenServer.httpServer(limits, sources: sources),
            configuration: .init(
                address: .hostname("127.0.0.1", port: 0),
                availableConnectionsDelegate: MaximumAvailableConnections(limits.maxConnections)))
        try await app.test(.live) { client in
            // The test client's own connection would meet the head deadline while idle: raw sockets only.
            let port = try #require(client.port)
            // 40 sockets from one address, each with the start of a head that never ends.
            var attackers: [RawSocket] = []
            for _ in 0..<40 {
                let s = try RawSocket(from: "127.0.0.2", to: port)
                s.send("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                attackers.append(s)
            }
            // Those over the per-source cap are closed at once; the rest are held (counted by the listener).
            let settle = Date().addingTimeInterval(2)
            while sources.refusedCount < 40 - cap, Date() < settle { try await Task.sleep(for: .milliseconds(10)) }
            #expect(sources.refusedCount == 40 - cap)
            #expect(sources.open("127.0.0.2") == cap)
            // Meanwhile legitimate clients from another address are served, on fresh connections.
            for _ in 0..<5 {
                let legit = try RawSocket(from: "127.0.0.1", to: port)
                legit.send("GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                #expect(legit.answer(within: 2).hasPrefix("HTTP/1.1 200"))
            }
            #expect(sources.open("127.0.0.2") == cap)
            // The held ones are closed by the head deadline (2 s), well before the test gives up.
            #expect(attackers.allSatisfy { $0.closed(within: 5) })
            #expect(sources.timedOutCount >= cap)
            // A connection that sends nothing at all is closed too, and an idle kept-alive one after its request.
            let silent = try RawSocket(from: "127.0.0.3", to: port)
            #expect(silent.closed(within: 5))
            let idle = try RawSocket(from: "127.0.0.3", to: port)
            idle.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            #expect(idle.answer(within: 2).hasPrefix("HTTP/1.1 200"))
            #expect(idle.closed(within: 3))
            // Too many header fields, or too large a head: refused, never buffered without bound.
            let many = try RawSocket(from: "127.0.0.4", to: port)
            many.send(
                "GET /healthz HTTP/1.1\r\nHost: x\r\n" + (0..<30).map { "X-H\($0): v\r\n" }.joined() + "\r\n")
            #expect(!many.answer(within: 2).hasPrefix("HTTP/1.1 200"))
            let large = try RawSocket(from: "127.0.0.4", to: port)
            large.send("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + String(repeating: "a", count: 8192) + "\r\n\r\n")
            #expect(!large.answer(within: 2).hasPrefix("HTTP/1.1 200"))
        }
    }
}
