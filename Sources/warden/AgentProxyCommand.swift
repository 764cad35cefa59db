import ArgumentParser
import AsyncHTTPClient
import Cedar
import Crypto
import Foundation
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization
import WardenClient
import WardenControlPlane
import WardenNode
import WardenSidecar

struct AgentProxyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "proxy",
        abstract: "A sidecar on loopback that adds the agent's token and a DPoP proof to every request it relays.",
        discussion: """
            The agent (or a stock MCP client) sends plain HTTP to http://LISTEN/r/<route>/... and \
            http://LISTEN/mcp[/<server>]; the proxy holds the key (--key, with the <key>.json written at enrollment), \
            gets and renews the agent's tokens (or, with --socket, its identity from the SPIFFE Workload API of \
            'warden node': a JWT-SVID as the client assertion, the tokens bound to a key the proxy makes at start), \
            adds a fresh DPoP proof per request, answers nonce challenges and \
            renews a refused token (sending a request of up to 1 MiB again once), and streams bodies both ways. It \
            listens on loopback only and serves only loopback peers. Example:
              warden agent proxy --server http://127.0.0.1:8443 --key bot.key --listen 127.0.0.1:9301
            """)
    @OptionGroup var agentKey: SidecarIdentityOptions
    @Option(name: .long, help: "host:port to listen on (a loopback address).") var listen = "127.0.0.1:9301"

    func run() async throws {
        try await reporting {
            let (host, port) = try WardenConfig.address(listen)
            guard Loopback.isLoopbackHost(host.contains(":") ? "[\(host)]" : host) else {
                throw ValidationError("--listen must be a loopback address (127.0.0.1, ::1 or localhost)")
            }
            let (client, id, http, logger, obtain) = try await Self.sidecar(agentKey, label: "warden.agent-proxy")
            let proxy = AgentProxy(client: client, spiffeID: id, http: http, logger: logger, obtain: obtain)
            // The first token now: a wrong key or an unknown agent is an error at start, not on the first request.
            _ = try await proxy.tokens.token()
            let app = Application(
                router: proxy.router(),
                configuration: .init(address: .hostname(host, port: port), serverName: "warden-agent-proxy"),
                onServerRunning: { channel in
                    FileHandle.standardOutput.write(
                        Data(
                            "warden agent proxy: \(id) on http://\(host):\(channel.localAddress?.port ?? port) -> \(proxy.server)\n"
                                .utf8))
                }, logger: logger)
            let group = ServiceGroup(
                configuration: .init(services: [app], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
            do {
                try await group.run()
            } catch {
                try? await http.shutdown()
                throw error
            }
            try await http.shutdown()
        }
    }

    /// What the proxy and the bridge start with: the agent's client (its key, and the issuer its proofs name), its
    /// SPIFFE ID, an HTTP client with connect and read timeouts, a quiet logger, and how tokens are obtained: with the
    /// agent's enrolled key (`--key`), or with a JWT-SVID from the Workload API (`--socket`) and a key of the
    /// proxy's own, made at start and never written anywhere, that the tokens are bound to.
    static func sidecar(_ options: SidecarIdentityOptions, label: String) async throws -> (
        AgentClient, String, HTTPClient, Logger, (@Sendable () async throws -> JSONValue)?
    ) {
        try WardenHTTP(server: options.server).checkCredentialsAllowed()
        let issuer = try await issuer(of: options.server)
        var logger = Logger(label: label)
        logger.logLevel = .warning
        var configuration = HTTPClient.Configuration()
        configuration.timeout = .init(connect: .seconds(10), read: .seconds(300))
        let http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        switch (options.key, options.socket) {
        case (let path?, nil):
            let (key, id) = try AgentKeyOptions.load(key: path)
            return (AgentClient(server: options.server, key: key, issuer: issuer), id, http, logger, nil)
        case (nil, let socket?):
            let workloadAPI = WorkloadAPIClient(socket: socket)
            let client = AgentClient(server: options.server, key: P256.Signing.PrivateKey(), issuer: issuer)
            let audience = client.issuer + "/v1/token"
            let (id, _) = try await workloadAPI.fetchJWTSVID(audiences: [audience], spiffeID: options.spiffeID)
            let obtain: @Sendable () async throws -> JSONValue = {
                let (_, svid) = try await workloadAPI.fetchJWTSVID(audiences: [audience], spiffeID: id)
                return try await client.token(jwtSVID: svid)
            }
            return (client, id, http, logger, obtain)
        default:
            try? await http.shutdown()
            throw ValidationError("give --key FILE (an enrolled key) or --socket PATH (the Workload API), not both")
        }
    }

    /// The URL the server calls itself (RFC 8414 metadata, `issuer`): proofs and assertions name it. The server URL
    /// when the metadata says nothing usable.
    static func issuer(of server: String) async throws -> String {
        let r = try await WardenHTTP(server: server).send("GET", "/.well-known/oauth-authorization-server")
        guard r.status == 200, let issuer = r.json?["issuer"]?.stringValue, issuer.hasPrefix("http") else {
            return server
        }
        try Loopback.checkCredentialsAllowed(to: issuer)
        return issuer
    }
}

/// Who a sidecar (the proxy, the MCP bridge) is: an enrolled key, or the identity the Workload API gives its process.
struct SidecarIdentityOptions: ParsableArguments {
    @Option(name: .long, help: "The Warden server URL.") var server: String
    @Option(name: .long, help: "The agent's private key (PKCS#8 PEM, with the <key>.json written at enrollment).")
    var key: String?
    @Option(
        name: .long,
        help: "Instead of --key: the SPIFFE Workload API socket of 'warden node' (a path or unix:// address).")
    var socket: String?
    @Option(name: .customLong("spiffe-id"), help: "With --socket: which of the workload's identities to use.")
    var spiffeID: String?
}

struct AgentMCPCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mcp",
        abstract: "MCP over stdin/stdout, relayed to Warden's /mcp/<server> with the agent's credentials.",
        discussion: """
            What desktop MCP clients launch: one JSON-RPC message per line on stdin, the answers on stdout. Both \
            protocol eras. The bridge holds the key (--key, with the <key>.json written at enrollment), gets and \
            renews tokens and adds a fresh DPoP proof to every message. Example (a client's configuration):
              {"command": "warden", "args": ["agent", "mcp", "--server", "http://127.0.0.1:8443", \
            "--key", "/home/me/bot.key", "--mcp", "files"]}
            """)
    @OptionGroup var agentKey: SidecarIdentityOptions
    @Option(name: .long, help: "The MCP server behind Warden (/mcp/<server>); all of them (/mcp) without it.")
    var mcp: String?

    func run() async throws {
        try await reporting {
            if let mcp, mcp.isEmpty || mcp.contains("/") || mcp.count > 128 {
                throw ValidationError("--mcp must be a server name")
            }
            let (client, id, http, logger, obtain) = try await AgentProxyCommand.sidecar(
                agentKey, label: "warden.agent-mcp")
            let tokens = AgentTokens(client: client, spiffeID: id, obtain: obtain)
            _ = try await tokens.token()
            let bridge = MCPStdioBridge(tokens: tokens, http: http, server: mcp, logger: logger)
            let stdin = StdinLines()
            let out = Mutex<Void>(())
            await bridge.run(input: stdin.lines, taken: { stdin.taken() }) { line in
                out.withLock { _ in FileHandle.standardOutput.write(Data((line + "\n").utf8)) }
            }
            try await http.shutdown()
        }
    }
}
