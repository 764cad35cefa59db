import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import HummingbirdTesting
import NIOCore
import Testing
import WardenCore
import WardenTestSupport

@testable import WardenControlPlane
@testable import WardenGateway
@testable import WardenServer

#if canImport(Glibc)
    import Glibc
#endif

@Suite("Hostile input: slow and idle clients (live listener)")
struct SlowClientTests {
    /// The attack review held 200 slow sockets against `max_connections: 150` and every legitimate request timed out.
    @Test("slow sockets are capped per source and closed by the head deadline; legitimate requests are served")
    func slowSockets() async throws {
        let f = try Fixture()
        var limits = GatewayLimits()
        limits.maxConnections = 24
        limits.maxConnectionsPerSource = 8
        // Long enough that all 40 attackers are accepted (and the surplus refused) before the first held one meets
        // it, even with the whole suite loading the machine (at 3 s a slow accept let later sockets take the slots
        // of timed-out ones).
        limits.headerTimeout = 8
        limits.idleTimeout = 1
        limits.bodyTimeout = 2
        limits.sendTimeout = 2
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
            // Those over the per-source cap are closed at once; the rest are held (counted by the listener). The wait
            // ends as soon as they are; its bound only allows for a loaded machine (the whole suite runs in parallel).
            let settle = Date().addingTimeInterval(10)
            while sources.refusedCount < 40 - cap, Date() < settle { try await Task.sleep(for: .milliseconds(10)) }
            #expect(sources.refusedCount == 40 - cap)
            #expect(sources.open("127.0.0.2") == cap)
            // Meanwhile legitimate clients from another address are served, on fresh connections.
            var servedWhileHeld = 0
            for _ in 0..<5 {
                // Held when the request goes out (on a loaded machine the answer may come after the deadline).
                let held = sources.open("127.0.0.2") == cap
                let legit = try RawSocket(from: "127.0.0.1", to: port)
                legit.send("GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                let served = await legit.answer(within: 5).hasPrefix("HTTP/1.1 200")
                #expect(served)
                if held && served { servedWhileHeld += 1 }
            }
            #expect(servedWhileHeld > 0)
            // The held ones are closed by the head deadline (8 s), well before the test gives up.
            var allClosed = true
            for s in attackers where !(await s.closed(within: 20)) { allClosed = false }
            #expect(allClosed)
            #expect(sources.timedOutCount >= cap)
            // A connection that sends nothing at all is closed too, and an idle kept-alive one after its request.
            let silent = try RawSocket(from: "127.0.0.3", to: port)
            #expect(await silent.closed(within: 15))
            let idle = try RawSocket(from: "127.0.0.3", to: port)
            idle.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            #expect(await idle.answer(within: 5).hasPrefix("HTTP/1.1 200"))
            #expect(await idle.closed(within: 5))
            // A body promised and never sent (or trickled slower than the body timeout) is not a way around the head
            // deadline: the connection is closed once the client keeps Warden waiting for its next bytes.
            let slowBody = try RawSocket(from: "127.0.0.5", to: port)
            slowBody.send(
                "POST /v1/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                    + "DPoP: x\r\nContent-Length: 1000\r\n\r\ngrant_type=")
            #expect(await slowBody.closed(within: 8))
            // Too many header fields, or too large a head: refused, never buffered without bound.
            let many = try RawSocket(from: "127.0.0.4", to: port)
            many.send(
                "GET /healthz HTTP/1.1\r\nHost: x\r\n" + (0..<30).map { "X-H\($0): v\r\n" }.joined() + "\r\n")
            let tooMany = await many.reaction(within: 5)
            #expect(tooMany != nil && tooMany?.hasPrefix("HTTP/1.1 200") == false, "\(tooMany ?? "no reaction")")
            let large = try RawSocket(from: "127.0.0.4", to: port)
            large.send("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + String(repeating: "a", count: 8192) + "\r\n\r\n")
            let tooLarge = await large.reaction(within: 5)
            #expect(tooLarge != nil && tooLarge?.hasPrefix("HTTP/1.1 200") == false, "\(tooLarge ?? "no reaction")")
        }
    }
}
