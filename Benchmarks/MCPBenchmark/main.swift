// The MCP gateway's hot path: the latency `tools/call` gains through Warden versus calling the MCP server directly.
//
// One process, all on loopback: a minimal MCP server (streamable HTTP, 2025-11-25, JSON answers, a tool that echoes
// its arguments), and Warden's control plane, HTTP gateway and MCP gateway in a Hummingbird listener (a fresh data
// directory, the demo policies). One client (AsyncHTTPClient, one keep-alive connection per target) calls the tool
// sequentially, in rounds that alternate direct and through Warden, so both see the same machine state. Through
// Warden each call carries the agent's DPoP-bound token and a fresh proof made before the clock starts (the agent's
// cost, not Warden's); Warden authenticates, checks the pin and the input schema, decides with Cedar, records the
// audit entry, forwards with its own session and brokered credential, and scans the result (DLP).
//
// The same calls through an HTTP route (`/r/bench`, no MCP handling: the generic gateway) separate what the MCP layer
// costs from what any authenticated, decided, recorded and forwarded call costs.
//
// Usage: swift build -c release --product MCPBenchmark && .build/release/MCPBenchmark [--calls N] [--rounds R]
import AsyncHTTPClient
import Cedar
import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import WardenControlPlane
import WardenCore
import WardenGateway
import WardenIdentity
import WardenServer

let args = CommandLine.arguments
func option(_ name: String) -> Int? { args.firstIndex(of: name).flatMap { Int(args[$0 + 1]) } }
let callsPerRound = option("--calls") ?? 500
let rounds = option("--rounds") ?? 10

/// The upstream MCP server.
func mcpServer() -> some ApplicationProtocol {
    let router = Router()
    let tool =
        #"{"name":"echo","description":"Echoes its text.","inputSchema":{"type":"object","properties":{"text":{"type":"string","maxLength":1000}},"required":["text"]}}"#
    router.post("/mcp") { request, _ -> Response in
        var r = request
        let body = try await r.collectBody(upTo: 1 << 20)
        let msg = try JSONValue.parse(Array(body.readableBytesView))
        guard let id = msg["id"], let method = msg["method"]?.stringValue else { return Response(status: .accepted) }
        let result: String
        switch method {
        case "initialize":
            result =
                #"{"protocolVersion":"2025-11-25","capabilities":{"tools":{}},"serverInfo":{"name":"bench","version":"1"}}"#
        case "tools/list": result = #"{"tools":[\#(tool)]}"#
        case "tools/call":
            let text = msg["params"]?["arguments"]?["text"]?.stringValue ?? ""
            result =
                JSONValue.object([
                    ("content", .array([.object([("type", .string("text")), ("text", .string(text))])])),
                    ("isError", .bool(false)),
                ]).serialized
        default: result = "{}"
        }
        var headers: HTTPFields = [.contentType: "application/json"]
        if method == "initialize" { headers[HTTPField.Name("Mcp-Session-Id")!] = "bench-session" }
        return Response(
            status: .ok, headers: headers,
            body: .init(
                byteBuffer: ByteBuffer(string: #"{"jsonrpc":"2.0","id":\#(id.serialized),"result":\#(result)}"#)))
    }
    return Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 18090)))
}

func percentile(_ sorted: [Double], _ p: Double) -> Double {
    sorted[min(sorted.count - 1, Int((Double(sorted.count) * p).rounded(.down)))]
}

func micros(_ d: Duration) -> Double {
    Double(d.components.seconds) * 1e6 + Double(d.components.attoseconds) / 1e12
}

let dir = FileManager.default.temporaryDirectory.appendingPathComponent("warden-mcpbench-\(UUID().uuidString)").path
// The demo policies, and a permit for the HTTP route used as the generic gateway's reference.
try SecureFile.ensureDirectory(dir)
try SecureFile.ensureDirectory(dir + "/policies")
try (PolicyEngine.demoPolicies + "\npermit (principal, action == Action::\"call\", resource in Segment::\"bench\");\n")
    .write(toFile: dir + "/policies/bench.cedar", atomically: true, encoding: .utf8)
var config = try WardenConfig(
    parsing: """
        listen: 127.0.0.1:18091
        data: \(dir)
        routes:
          bench: {upstream: "http://127.0.0.1:18090", segment: bench}
        rate_limits: null
        mcp_servers:
          bench: {url: "http://127.0.0.1:18090/mcp", credential: bench-key, refresh: 60s}
        """, file: "warden.yaml")
config.data = dir
let cp = try ControlPlane(config: config)
try cp.secrets.set("bench-key", value: Array("bench-secret".utf8), now: cp.now())
var manifest = AgentManifest(name: "bench-agent", owner: "bench@example.com")
manifest.tools = ["bench/echo"]
manifest.routes = ["bench"]
let reg = try cp.register(manifest: manifest)
let key = P256.Signing.PrivateKey()
_ = try cp.enroll(
    body: .object([
        ("join_token", .string(reg.joinToken)), ("jwk", ECPublicJWK(key.publicKey).json),
        ("attestation", .object([("manifest_digest", .string(reg.agent.manifestDigest))])),
    ]), dpop: try DPoPProofSigner(key: key).proof(method: "POST", url: cp.enrollEndpoint, now: cp.now()))
let token = try cp.token(
    form: [
        "grant_type": "client_credentials", "client_assertion_type": ClientAssertion.type,
        "client_assertion": try ClientAssertion.sign(
            clientID: reg.agent.spiffeID.description, audience: cp.tokenEndpoint, key: key, now: cp.now(),
            jti: UUID().uuidString),
    ], dpop: try DPoPProofSigner(key: key).proof(method: "POST", url: cp.tokenEndpoint, now: cp.now())
).accessToken
let gateway = try Gateway(cp: cp)
let mcp = try MCPGateway(gateway: gateway)
let warden = Application(
    router: WardenRouter.build(cp, gateway: gateway, mcp: mcp),
    configuration: .init(address: .hostname("127.0.0.1", port: 18091)))

let client = HTTPClient(eventLoopGroupProvider: .singleton)
let callBody = #"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hello"}}}"#

/// One call; the time from sending to the whole answer.
func call(_ url: String, headers: [(String, String)]) async throws -> Double {
    var req = HTTPClientRequest(url: url)
    req.method = .POST
    req.headers.add(name: "Content-Type", value: "application/json")
    req.headers.add(name: "Accept", value: "application/json, text/event-stream")
    for (n, v) in headers { req.headers.add(name: n, value: v) }
    req.body = .bytes(ByteBuffer(string: callBody))
    let start = ContinuousClock.now
    let response = try await client.execute(req, timeout: .seconds(10))
    let body = try await response.body.collect(upTo: 1 << 20)
    let elapsed = micros(ContinuousClock.now - start)
    guard response.status == .ok, String(buffer: body).contains("hello") else {
        throw WardenError(.io, "unexpected answer \(response.status): \(String(buffer: body).prefix(200))")
    }
    return elapsed
}

try await withThrowingTaskGroup(of: Void.self) { group in
    group.addTask { try await mcpServer().runService() }
    group.addTask { try await warden.runService() }
    try await Task.sleep(for: .milliseconds(500))
    // Sessions: the upstream's for the direct calls, Warden's for the agent's.
    let upstream = "http://127.0.0.1:18090/mcp"
    let through = "http://127.0.0.1:18091/mcp/bench"
    let init0 =
        #"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"bench","version":"1"}}}"#
    func initialize(_ url: String, auth: Bool) async throws -> String {
        var req = HTTPClientRequest(url: url)
        req.method = .POST
        req.headers.add(name: "Content-Type", value: "application/json")
        req.headers.add(name: "Accept", value: "application/json, text/event-stream")
        if auth {
            req.headers.add(name: "Authorization", value: "DPoP \(token)")
            req.headers.add(
                name: "DPoP",
                value: try DPoPProofSigner(key: key).proof(
                    method: "POST", url: through, accessToken: token, now: cp.now()))
        }
        req.body = .bytes(ByteBuffer(string: init0))
        let r = try await client.execute(req, timeout: .seconds(10))
        _ = try await r.body.collect(upTo: 1 << 20)
        guard let s = r.headers.first(name: "mcp-session-id") else { throw WardenError(.io, "no session from \(url)") }
        return s
    }
    let directSession = try await initialize(upstream, auth: false)
    let wardenSession = try await initialize(through, auth: true)
    var direct: [Double] = []
    var viaWarden: [Double] = []
    var viaRoute: [Double] = []
    let signer = DPoPProofSigner(key: key)
    let route = "http://127.0.0.1:18091/r/bench/mcp"
    for round in 0...rounds {
        var d: [Double] = []
        var w: [Double] = []
        var r: [Double] = []
        for _ in 0..<callsPerRound {
            d.append(
                try await call(
                    upstream, headers: [("Mcp-Session-Id", directSession), ("MCP-Protocol-Version", "2025-11-25")]))
        }
        for _ in 0..<callsPerRound {
            let proof = try signer.proof(method: "POST", url: through, accessToken: token, now: cp.now())
            w.append(
                try await call(
                    through,
                    headers: [
                        ("Authorization", "DPoP \(token)"), ("DPoP", proof), ("Mcp-Session-Id", wardenSession),
                        ("MCP-Protocol-Version", "2025-11-25"),
                    ]))
        }
        for _ in 0..<callsPerRound {
            let proof = try signer.proof(method: "POST", url: route, accessToken: token, now: cp.now())
            r.append(
                try await call(
                    route,
                    headers: [
                        ("Authorization", "DPoP \(token)"), ("DPoP", proof), ("Mcp-Session-Id", directSession),
                        ("MCP-Protocol-Version", "2025-11-25"),
                    ]))
        }
        // Round 0 warms up connections, caches and the catalogue.
        if round > 0 {
            direct += d
            viaWarden += w
            viaRoute += r
        }
    }
    direct.sort()
    viaWarden.sort()
    viaRoute.sort()
    let rm = percentile(viaRoute, 0.5)
    let r99 = percentile(viaRoute, 0.99)
    let dm = percentile(direct, 0.5)
    let d99 = percentile(direct, 0.99)
    let wm = percentile(viaWarden, 0.5)
    let w99 = percentile(viaWarden, 0.99)
    print("tools/call, \(direct.count) sequential calls per target (\(rounds) rounds of \(callsPerRound), alternating)")
    print(String(format: "direct to the MCP server:   median %7.1f µs   p99 %7.1f µs", dm, d99))
    print(String(format: "through Warden (DPoP):      median %7.1f µs   p99 %7.1f µs", wm, w99))
    print(String(format: "through an /r/ route:       median %7.1f µs   p99 %7.1f µs", rm, r99))
    print(
        String(
            format: "added by Warden (MCP):      median %7.1f µs   p99 %7.1f µs   (ratio of medians %.1fx)", wm - dm,
            w99 - d99, wm / dm))
    print(String(format: "added by an /r/ route:      median %7.1f µs   p99 %7.1f µs", rm - dm, r99 - d99))
    fflush(nil)
    group.cancelAll()
}
await mcp.shutdown()
await gateway.shutdown()
try await client.shutdown()
try? FileManager.default.removeItem(atPath: dir)
