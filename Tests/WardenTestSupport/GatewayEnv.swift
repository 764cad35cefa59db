import Cedar
import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Synchronization
import Testing
import WardenAudit
import WardenControlPlane
import WardenCore
import WardenGateway
import WardenIdentity
import WardenServer

/// What the upstream received.
package struct SeenRequest: Sendable {
    package let method: String
    package let path: String
    package let query: String?
    package let headers: [(String, String)]
    package let bodyBytes: Int

    package func header(_ name: String) -> String? { headers.first { $0.0.lowercased() == name.lowercased() }?.1 }
    package func headers(_ name: String) -> [String] {
        headers.filter { $0.0.lowercased() == name.lowercased() }.map(\.1)
    }
}

/// A real HTTP upstream on loopback that records what reaches it and answers with a small JSON body.
package final class Upstream: Sendable {
    package let seen = Mutex<[SeenRequest]>([])

    package init() {}

    package var requests: [SeenRequest] { seen.withLock { $0 } }

    package var app: some ApplicationProtocol {
        let router = Router()
        let handler: @Sendable (Request, BasicRequestContext) async throws -> Response = { [self] request, _ in
            var r = request
            let body = try await r.collectBody(upTo: 1 << 20)
            seen.withLock {
                $0.append(
                    SeenRequest(
                        method: request.method.rawValue, path: request.uri.path, query: request.uri.query,
                        headers: request.headers.map { ($0.name.rawName, $0.value) }, bodyBytes: body.readableBytes))
            }
            if request.uri.path.hasSuffix("/stream") {
                // A chunked response (no Content-Length): six 50,000-byte chunks, or `?mib=N` MiB in 64 KiB chunks.
                let mib = request.uri.queryParameters["mib"].flatMap { Int($0) }.map { min(max($0, 1), 1024) }
                let chunk = ByteBuffer(repeating: UInt8(ascii: "s"), count: mib == nil ? 50_000 : 65_536)
                let count = mib.map { $0 * 16 } ?? 6
                return Response(
                    status: .ok, headers: [.contentType: "text/plain"],
                    body: ResponseBody { writer in
                        for _ in 0..<count { try await writer.write(chunk) }
                        try await writer.finish(nil)
                    })
            }
            if request.uri.path.hasSuffix("/big") {
                // Larger than the gateway reads whole: streamed back in chunks.
                let chunk = ByteBuffer(repeating: UInt8(ascii: "b"), count: 50_000)
                return Response(
                    status: .ok, headers: [.contentType: "text/plain"],
                    body: .init(contentsOf: Array(repeating: chunk, count: 6)))
            }
            return Response(
                status: .ok,
                headers: [.contentType: "application/json", HTTPField.Name("X-Upstream")!: "yes"],
                body: .init(byteBuffer: ByteBuffer(string: #"{"upstream":"ok","path":"\#(request.uri.path)"}"#)))
        }
        for method in [HTTPRequest.Method.get, .post, .put, .delete] {
            router.on("/**", method: method, use: handler)
        }
        return Application(router: router)
    }
}

/// A clock for the rate limiter that tests move by hand.
package final class ManualSeconds: WardenClock {
    package init() {}
    package let t = Mutex<Double>(1000)
    package func advance(_ s: Double) { t.withLock { $0 += s } }
    package var wallMicros: Int64 { monotonicMicros }
    package var monotonicMicros: Int64 { Int64((t.withLock { $0 } * 1_000_000).rounded()) }
}

/// A gateway in front of a live upstream, both on loopback, with the routes the tests use.
package struct GatewayEnv {
    package let f: Fixture
    package let gateway: Gateway
    package let upstream: Upstream
    package let client: any TestClientProtocol
    package let rateClock: ManualSeconds

    /// A token for `a` (its manifest's scopes unless `scope` narrows them).
    package func token(_ a: TestAgent, scope: String? = nil) throws -> String {
        try f.token(a, scope.map { ["scope": $0] } ?? [:])
    }

    /// Calls `path` through the gateway as `a` with a DPoP proof made with `proofKey` (the agent's own by default).
    package func call(
        _ a: TestAgent, _ method: HTTPRequest.Method = .get, _ path: String, token: String? = nil,
        proofKey: P256.Signing.PrivateKey? = nil, headers extra: HTTPFields = [:], body: String? = nil
    ) async throws -> TestResponse {
        let t = try token ?? self.token(a)
        var h = extra
        h[.authorization] = "DPoP \(t)"
        let bare = String(path.split(separator: "?", maxSplits: 1)[0])
        h[HTTPField.Name("DPoP")!] = try DPoPProofSigner(key: proofKey ?? a.key).proof(
            method: method.rawValue, url: f.cp.url(path: bare), accessToken: t, now: f.clock.now)
        return try await client.execute(
            uri: path, method: method, headers: h, body: body.map { ByteBuffer(string: $0) })
    }

    /// The audit entries for `agent`'s calls, after the writer has drained.
    package func callEntries(_ agent: TestAgent? = nil) async throws -> [JSONValue] {
        await f.cp.audit.flush()
        return try f.cp.audit.entries(after: 0, limit: 10_000).compactMap { try? JSONValue.parse($0.1) }.filter {
            $0["action"]?.stringValue == "call" && (agent == nil || $0["agent"]?.stringValue == agent!.id)
        }
    }
}

package func withGateway(
    _ tweak: @escaping @Sendable (inout WardenConfig) -> Void = { _ in },
    _ body: @escaping @Sendable (GatewayEnv) async throws -> Void
) async throws {
    let upstream = Upstream()
    try await upstream.app.test(.live) { upClient in
        let port = try #require(upClient.port)
        let base = "http://127.0.0.1:\(port)"
        let f = try Fixture { c in
            var tickets = RouteConfig(name: "tickets", upstream: base + "/api", segment: "support")
            tickets.credential = CredentialInjection(secret: "tickets-key")
            var limited = RouteConfig(name: "limited", upstream: base, segment: "support")
            limited.rateLimit = RateLimit(perSecond: 2, burst: 2)
            var small = RouteConfig(name: "small", upstream: base, segment: "support")
            small.maxBodyBytes = 16
            var kb = RouteConfig(name: "kb", upstream: base)
            kb.agent = "kb-agent"
            var keyed = RouteConfig(name: "keyed", upstream: base, segment: "support")
            keyed.credential = CredentialInjection(secret: "never-set")
            c.routes = [
                "tickets": tickets, "limited": limited, "small": small, "kb": kb, "keyed": keyed,
                "billing": RouteConfig(name: "billing", upstream: base, segment: "finance"),
                // Nothing listens on port 1.
                "down": RouteConfig(name: "down", upstream: "http://127.0.0.1:1", segment: "support"),
            ]
            c.rateLimitPerAgent = RateLimit(perSecond: 1000, burst: 1000)
            tweak(&c)
        }
        try f.cp.secrets.set("tickets-key", value: Array("tk-s3cret-value".utf8), now: f.clock.now)
        let rateClock = ManualSeconds()
        let gateway = try Gateway(cp: f.cp, limiter: RateLimiter(clock: rateClock))
        try await serving(WardenRouter.build(f.cp, gateway: gateway), gateway: gateway) { client in
            try await body(GatewayEnv(f: f, gateway: gateway, upstream: upstream, client: client, rateClock: rateClock))
        }
    }
}

package func adminToken(_ f: Fixture) throws -> String {
    try String(contentsOfFile: f.dir + "/admin.token", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
}
