import AsyncHTTPClient
import Cedar
import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import Synchronization
import WardenClient
import WardenCore
import WardenIdentity
import WardenInspect

/// `warden agent proxy`: a sidecar on loopback that holds an agent's key, so that the agent (or a stock MCP client)
/// sends plain HTTP to `http://127.0.0.1:PORT/r/<route>/...` or `/mcp[/<server>]` and Warden receives each request
/// with the agent's DPoP-bound token and a fresh proof for it.
///
/// - Tokens are renewed in the last quarter of their lifetime, one renewal at a time (``AgentTokens``).
/// - A nonce challenge (`use_dpop_nonce`) is answered and the request sent again once; a refused token
///   (`invalid_token`: expired, revoked after a containment) is renewed and the request sent again once. Only a body
///   of at most ``replayableBytes`` can be sent twice: a larger one streams through and its refusal is passed back.
/// - Bodies stream both ways (server-sent events included); nothing of the agent's own `Authorization` or `DPoP`
///   headers is forwarded (the proxy's credentials replace them).
/// - Only loopback peers are served (the listener is on loopback, and each connection's peer is checked again).
public struct AgentProxy: Sendable {
    public let server: String
    public let tokens: AgentTokens
    let http: HTTPClient
    let logger: Logger

    /// Bodies up to this size are read whole so that a challenged request can be sent again.
    public static let replayableBytes = 1 << 20

    public init(
        client: AgentClient, spiffeID: String, http: HTTPClient, logger: Logger,
        obtain: (@Sendable () async throws -> JSONValue)? = nil
    ) {
        self.server = client.http.base
        self.tokens = AgentTokens(client: client, spiffeID: spiffeID, obtain: obtain)
        self.http = http
        self.logger = logger
    }

    /// The proxy's routes: `/r/**` and `/mcp`, `/mcp/**` for every method; anything else is 404.
    public func router() -> Router<ProxyRequestContext> {
        let router = Router(context: ProxyRequestContext.self)
        let methods: [HTTPRequest.Method] = [.get, .head, .post, .put, .patch, .delete, .options]
        for method in methods {
            for path in ["/r/**", "/mcp", "/mcp/**"] {
                router.on(RouterPath(path), method: method) { request, context in
                    do {
                        return try await forward(request, context)
                    } catch let e as WardenClientError {
                        // The token endpoint refused the agent (a quarantined or revoked agent, a wrong key).
                        return Self.problem(.badGateway, "no token for the agent: \(e.description)")
                    } catch {
                        logger.warning("agent proxy: Warden unreachable", metadata: ["error": "\(error)"])
                        return Self.problem(.badGateway, "Warden could not be reached")
                    }
                }
            }
        }
        return router
    }

    static let hopByHop: Set<String> = [
        "connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade", "host",
        "content-length", "authorization", "dpop", "proxy-authorization",
    ]

    func forward(_ request: Request, _ context: ProxyRequestContext) async throws -> Response {
        guard context.peerIsLoopback else {
            return Self.problem(.forbidden, "the agent proxy serves only this machine")
        }
        let pathAndQuery = request.uri.description
        guard pathAndQuery.hasPrefix("/"), !pathAndQuery.contains("#") else {
            return Self.problem(.badRequest, "bad request target")
        }
        let path = request.uri.path
        // Only /r/ and /mcp paths Warden's own canonicalizer accepts: no dot segments or encoded slashes, so that
        // `/r/../v1/svid` cannot carry the agent's credentials to another endpoint.
        guard (try? RequestTarget.canonicalPath(Substring(path))) != nil else {
            return Self.problem(.badRequest, "the path has dot segments or encoded separators")
        }
        let method = request.method.rawValue
        // The body: read whole when small (it may have to be sent twice), streamed otherwise.
        let declared = request.headers[.contentLength].flatMap { Int($0) }
        var body: ByteBuffer?
        var stream: RequestBody?
        if let declared, declared <= Self.replayableBytes {
            body = try await request.body.collect(upTo: Self.replayableBytes)
        } else if declared == nil, request.headers[.transferEncoding] == nil {
            body = ByteBuffer()
        } else {
            stream = request.body
        }
        var headers: [(String, String)] = request.headers.compactMap { field in
            Self.hopByHop.contains(field.name.canonicalName) ? nil : (field.name.rawName, field.value)
        }
        headers.append(("X-Forwarded-By", "warden-agent-proxy"))
        let response = try await tokens.send(
            http, method: method, path: path, replayable: body != nil, timeout: .hours(24)
        ) { token, proof in
            var outgoing = HTTPClientRequest(url: server + pathAndQuery)
            outgoing.method = .init(rawValue: method)
            for (name, value) in headers { outgoing.headers.add(name: name, value: value) }
            outgoing.headers.add(name: "Authorization", value: "DPoP \(token.value)")
            outgoing.headers.add(name: "DPoP", value: proof)
            if let body {
                outgoing.body = .bytes(body)
            } else if let stream {
                outgoing.body = .stream(stream.map { $0 }, length: declared.map { .known(Int64($0)) } ?? .unknown)
            }
            return outgoing
        }
        return Self.relay(response)
    }

    /// Warden's answer, streamed back (hop-by-hop headers dropped).
    static func relay(_ response: HTTPClientResponse) -> Response {
        var headers = HTTPFields()
        for h in response.headers where !hopByHop.contains(h.name.lowercased()) {
            if let name = HTTPField.Name(h.name) { headers.append(HTTPField(name: name, value: h.value)) }
        }
        if let length = response.headers.first(name: "Content-Length") { headers[.contentLength] = length }
        return Response(
            status: HTTPResponse.Status(code: Int(response.status.code)), headers: headers,
            body: ResponseBody { writer in
                for try await chunk in response.body { try await writer.write(chunk) }
                try await writer.finish(nil)
            })
    }

    static func problem(_ status: HTTPResponse.Status, _ message: String) -> Response {
        let body = JSONValue.object([("error", .string("proxy_error")), ("error_description", .string(message))])
        return Response(
            status: status, headers: [.contentType: "application/json"],
            body: .init(byteBuffer: ByteBuffer(string: body.serialized)))
    }
}

/// The request context of the proxy's listener: the peer's address, to serve loopback only.
public struct ProxyRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    let peer: SocketAddress?

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        peer = source.channel.remoteAddress
    }

    /// The peer is this machine (127.0.0.0/8 or ::1); a connection without an address (in-process tests) is too.
    var peerIsLoopback: Bool {
        guard let peer else { return true }
        switch peer {
        case .v4: return peer.ipAddress?.hasPrefix("127.") ?? false
        case .v6: return peer.ipAddress == "::1"
        default: return false
        }
    }
}

/// The agent's access tokens: got with its key (client assertion and DPoP), renewed in the last quarter of their
/// lifetime or when Warden refused one, one renewal at a time; and the server's latest DPoP nonce.
public final class AgentTokens: Sendable {
    public struct Token: Sendable, Equatable {
        public let value: String
        let expires: ContinuousClock.Instant
        let lifetime: Duration
    }

    let client: AgentClient
    let spiffeID: String
    let current = Mutex<Token?>(nil)
    let nonce = Mutex<String?>(nil)
    let renewal = AsyncGate()
    /// Tokens obtained so far.
    public let issued = Atomic<Int>(0)

    /// How a token is obtained: a client-credentials request with the agent's key, or what `obtain` does (a JWT-SVID
    /// from the Workload API as the client assertion, say).
    let obtain: (@Sendable () async throws -> JSONValue)?

    public init(client: AgentClient, spiffeID: String, obtain: (@Sendable () async throws -> JSONValue)? = nil) {
        self.client = client
        self.spiffeID = spiffeID
        self.obtain = obtain
    }

    func usable(_ refused: Token?) -> Token? {
        guard let t = current.withLock({ $0 }), t != refused else { return nil }
        return ContinuousClock.now < t.expires - t.lifetime / 4 ? t : nil
    }

    /// A token to use now (not `refused`, the one Warden just turned down).
    public func token(refusing refused: Token? = nil) async throws -> Token {
        if let t = usable(refused) { return t }
        return try await renewal.run {
            if let t = usable(refused) { return t }
            let json: JSONValue
            if let obtain { json = try await obtain() } else { json = try await client.token(spiffeID: spiffeID) }
            guard let value = json["access_token"]?.stringValue, json["token_type"]?.stringValue == "DPoP" else {
                throw WardenClientError("the token response has no DPoP access_token")
            }
            let seconds = max(1, min(json["expires_in"]?.integerValue ?? 60, 86_400))
            let t = Token(
                value: value, expires: ContinuousClock.now + .seconds(seconds), lifetime: .seconds(seconds))
            current.withLock { $0 = t }
            issued.add(1, ordering: .relaxed)
            return t
        }
    }

    func noteNonce(_ value: String?) {
        guard let value, !value.isEmpty, value.utf8.count <= 512 else { return }
        nonce.withLock { $0 = value }
    }

    /// Sends the request `build` makes with a token and a proof (for `method` on `path`, named at the issuer), and
    /// when Warden asks for a nonce or refuses the token, and the request can be sent twice (`replayable`), once
    /// more with the nonce or a new token. Warden's last answer, whatever it is.
    public func send(
        _ http: HTTPClient, method: String, path: String, replayable: Bool, timeout: TimeAmount,
        _ build: (Token, String) throws -> HTTPClientRequest
    ) async throws -> HTTPClientResponse {
        var refused: Token?
        var attempt = 0
        while true {
            let token = try await self.token(refusing: refused)
            let proof = try self.proof(method: method, url: client.issuer + path, accessToken: token.value)
            let response = try await http.execute(try build(token, proof), timeout: timeout)
            noteNonce(response.headers.first(name: "DPoP-Nonce"))
            let challenge = response.headers.first(name: "WWW-Authenticate") ?? ""
            guard attempt == 0, replayable, response.status == .unauthorized,
                challenge.contains("use_dpop_nonce") || challenge.contains("invalid_token")
            else { return response }
            if challenge.contains("invalid_token") { refused = token }
            // Drain the refusal (small) before sending again.
            _ = try? await response.body.collect(upTo: 64 * 1024)
            attempt += 1
        }
    }

    func proof(method: String, url: String, accessToken: String) throws -> String {
        try client.signer.proof(
            method: method, url: url, accessToken: accessToken, nonce: nonce.withLock { $0 }, now: client.clock())
    }
}

/// Runs one body at a time (the others wait their turn), without blocking a thread.
final class AsyncGate: Sendable {
    let busy = Mutex<(held: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))

    func run<T: Sendable>(_ body: () async throws -> T) async throws -> T {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let go = busy.withLock { s -> Bool in
                if s.held {
                    s.waiters.append(c)
                    return false
                }
                s.held = true
                return true
            }
            if go { c.resume() }
        }
        defer {
            let next = busy.withLock { s -> CheckedContinuation<Void, Never>? in
                if s.waiters.isEmpty {
                    s.held = false
                    return nil
                }
                return s.waiters.removeFirst()
            }
            next?.resume()
        }
        return try await body()
    }
}
