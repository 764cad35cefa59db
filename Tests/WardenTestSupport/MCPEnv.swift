import Cedar
import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Synchronization
import Testing
import WardenControlPlane
import WardenCore
import WardenGateway
import WardenIdentity
import WardenInspect
import WardenServer

/// A minimal MCP server over streamable HTTP (2025-11-25) on loopback: sessions, tools/list from a catalogue the test
/// can change (a rug pull), tools/call that echoes its arguments (as JSON, or as an SSE stream for `search`) and
/// leaks a fake cloud key from `leak`. It records the headers of every request.
package final class MockMCPServer: Sendable {
    package let tools = Mutex<[JSONValue]>([])
    package let seen = Mutex<[[(String, String)]]>([])
    package let calls = Mutex<[String]>([])
    /// The server's lifetime: ``restart()`` forgets its sessions (a request in an old one gets 404).
    package let generation = Mutex<Int>(1)

    package init() {
        tools.withLock {
            $0 = [
                Self.tool("read", "Reads a file by path.", required: ["path"]),
                Self.tool("search", "Searches files.", required: ["query"]),
                Self.tool("delete", "Deletes a file.", required: ["path"]),
                Self.tool("leak", "Returns the deployment notes.", required: []),
            ]
        }
    }

    package static func tool(_ name: String, _ description: String, required: [String]) -> JSONValue {
        .object([
            ("name", .string(name)), ("description", .string(description)),
            (
                "inputSchema",
                .object([
                    ("type", .string("object")),
                    (
                        "properties",
                        .object([
                            ("path", .object([("type", .string("string")), ("maxLength", .number("200"))])),
                            ("query", .object([("type", .string("string"))])),
                        ])
                    ),
                    ("required", .array(required.map { .string($0) })), ("additionalProperties", .bool(false)),
                ])
            ),
        ])
    }

    package func setDescription(_ name: String, _ description: String) {
        tools.withLock { list in
            for i in list.indices where list[i]["name"]?.stringValue == name {
                if case .object(var pairs) = list[i], let j = pairs.firstIndex(where: { $0.0 == "description" }) {
                    pairs[j].1 = .string(description)
                    list[i] = .object(pairs)
                }
            }
        }
    }

    /// A restart: the sessions are forgotten.
    package func restart() { generation.withLock { $0 += 1 } }

    package var app: some ApplicationProtocol {
        let router = Router()
        router.post("/mcp") { [self] request, _ -> Response in
            var r = request
            let body = try await r.collectBody(upTo: 1 << 20)
            seen.withLock { $0.append(request.headers.map { ($0.name.rawName, $0.value) }) }
            let msg = try JSONValue.parse(Array(body.readableBytesView))
            guard let method = msg["method"]?.stringValue else { return Response(status: .accepted) }
            let current = "upstream-session-\(generation.withLock { $0 })"
            if method != "initialize", let sid = request.headers[HTTPField.Name("Mcp-Session-Id")!], sid != current {
                return Response(status: .notFound)
            }
            guard let id = msg["id"] else { return Response(status: .accepted) }
            func json(_ result: JSONValue, _ headers: HTTPFields = [:]) -> Response {
                var h = headers
                h[.contentType] = "application/json"
                let text = JSONValue.object([("jsonrpc", .string("2.0")), ("id", id), ("result", result)]).serialized
                return Response(status: .ok, headers: h, body: .init(byteBuffer: ByteBuffer(string: text)))
            }
            switch method {
            case "initialize":
                var h = HTTPFields()
                h[HTTPField.Name("Mcp-Session-Id")!] = current
                return json(
                    .object([
                        ("protocolVersion", .string("2025-11-25")), ("capabilities", .object([("tools", .object([]))])),
                        ("serverInfo", .object([("name", .string("mock")), ("version", .string("1"))])),
                    ]), h)
            case "tools/list":
                return json(.object([("tools", .array(tools.withLock { $0 }))]))
            case "tools/call":
                let name = msg["params"]?["name"]?.stringValue ?? ""
                calls.withLock { $0.append(name) }
                let args = msg["params"]?["arguments"] ?? .object([])
                let text =
                    name == "leak"
                    ? "deploy with AKIAIOSFODNN7EXAMPLE and mail ops@example.com" : "\(name): \(args.serialized)"
                let result = JSONValue.object([
                    ("content", .array([.object([("type", .string("text")), ("text", .string(text))])])),
                    ("isError", .bool(false)),
                ])
                if name == "search" {
                    // An SSE answer with a notification before the response.
                    let note = #"{"jsonrpc":"2.0","method":"notifications/progress","params":{"progress":1}}"#
                    let resp = JSONValue.object([("jsonrpc", .string("2.0")), ("id", id), ("result", result)])
                    return Response(
                        status: .ok, headers: [.contentType: "text/event-stream"],
                        body: .init(
                            byteBuffer: ByteBuffer(
                                string: "event: message\ndata: \(note)\n\nevent: message\ndata: \(resp.serialized)\n\n")
                        ))
                }
                return json(result)
            default:
                let e = JSONRPC.error(id: nil, code: JSONRPC.methodNotFound, message: "nope")
                return Response(
                    status: .ok, headers: [.contentType: "application/json"],
                    body: .init(byteBuffer: ByteBuffer(string: e.setting("id", id).serialized)))
            }
        }
        return Application(router: router)
    }
}

package struct MCPEnv {
    package let f: Fixture
    package let mcp: MCPGateway
    package let upstream: MockMCPServer
    package let client: any TestClientProtocol

    package init(f: Fixture, mcp: MCPGateway, upstream: MockMCPServer, client: any TestClientProtocol) {
        self.f = f
        self.mcp = mcp
        self.upstream = upstream
        self.client = client
    }

    /// One MCP message to `path` as `a` (DPoP), with extra headers.
    package func post(
        _ a: TestAgent, _ path: String = "/mcp/files", body: String, headers extra: HTTPFields = [:],
        token: String? = nil
    ) async throws -> TestResponse {
        let t = try token ?? f.token(a)
        var h = extra
        h[.authorization] = "DPoP \(t)"
        h[.contentType] = "application/json"
        if h[.accept] == nil { h[.accept] = "application/json, text/event-stream" }
        h[HTTPField.Name("DPoP")!] = try DPoPProofSigner(key: a.key).proof(
            method: "POST", url: f.cp.url(path: path), accessToken: t, now: f.clock.now)
        return try await client.execute(uri: path, method: .post, headers: h, body: ByteBuffer(string: body))
    }

    /// A 2025-11-25 session: initialize, then the session id.
    package func session(_ a: TestAgent, _ path: String = "/mcp/files") async throws -> String {
        let r = try await post(
            a, path,
            body:
                #"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#
        )
        #expect(r.status == .ok)
        return try #require(r.headers[HTTPField.Name("Mcp-Session-Id")!])
    }

    /// A request in a session; returns the parsed JSON-RPC response.
    package func rpc(
        _ a: TestAgent, session: String, _ method: String, _ params: String = "{}", path: String = "/mcp/files"
    )
        async throws -> JSONValue
    {
        var h = HTTPFields()
        h[HTTPField.Name("Mcp-Session-Id")!] = session
        h[HTTPField.Name("MCP-Protocol-Version")!] = "2025-11-25"
        let r = try await post(
            a, path, body: #"{"jsonrpc":"2.0","id":7,"method":"\#(method)","params":\#(params)}"#, headers: h)
        return try #require(r.json)
    }

    package func toolNames(_ response: JSONValue) -> [String] {
        (response["result"]?["tools"]?.arrayValue ?? []).compactMap { $0["name"]?.stringValue }.sorted()
    }

    /// The first call held for approval, once there is one (bounded wait, about five seconds); nil when none came.
    package func heldApproval() async throws -> ApprovalQueue.Item? {
        for _ in 0..<500 {
            if let item = mcp.approvals.list().first { return item }
            try await Task.sleep(for: .milliseconds(10))
        }
        return nil
    }

    package func entries(_ action: String) async throws -> [JSONValue] {
        await f.cp.audit.flush()
        return try f.cp.audit.entries(after: 0, limit: 10_000).compactMap { try? JSONValue.parse($0.1) }.filter {
            $0["action"]?.stringValue == action
        }
    }
}

package func withMCP(
    _ tweak: @escaping @Sendable (inout MCPServerConfig) -> Void = { _ in },
    _ body: @escaping @Sendable (MCPEnv) async throws -> Void
) async throws {
    let upstream = MockMCPServer()
    try await upstream.app.test(.live) { upClient in
        let port = try #require(upClient.port)
        let f = try Fixture { c in
            var files = MCPServerConfig(name: "files", transport: .http(url: "http://127.0.0.1:\(port)/mcp"))
            files.credential = CredentialInjection(secret: "files-key")
            files.tools = ["delete": MCPToolConfig(risk: "high", dataClass: "internal")]
            files.approvalTimeout = 5
            tweak(&files)
            c.mcpServers = ["files": files]
        }
        try f.cp.secrets.set("files-key", value: Array("fk-brokered".utf8), now: f.clock.now)
        let gateway = try Gateway(cp: f.cp)
        let mcp = try MCPGateway(gateway: gateway)
        try await serving(WardenRouter.build(f.cp, gateway: gateway, mcp: mcp), gateway: gateway, mcp: mcp) {
            client in try await body(MCPEnv(f: f, mcp: mcp, upstream: upstream, client: client))
        }
    }
}

/// Runs `router` on a live loopback listener for `body`, then shuts the gateway's upstream connections (and the MCP
/// gateway's) down, whether `body` threw or not.
package func serving(
    _ router: Router<WardenRequestContext>, gateway: Gateway, mcp: MCPGateway? = nil,
    _ body: @escaping @Sendable (any TestClientProtocol) async throws -> Void
) async throws {
    do {
        try await Application(router: router).test(.live) { client in try await body(client) }
    } catch {
        await mcp?.shutdown()
        await gateway.shutdown()
        throw error
    }
    await mcp?.shutdown()
    await gateway.shutdown()
}
