import ArgumentParser
import AsyncHTTPClient
import Foundation
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle
import WardenClient
import WardenControlPlane
import WardenSidecar

struct AgentProxyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "proxy",
        abstract: "A sidecar on loopback that adds the agent's token and a DPoP proof to every request it relays.",
        discussion: """
            The agent (or a stock MCP client) sends plain HTTP to http://LISTEN/r/<route>/... and \
            http://LISTEN/mcp[/<server>]; the proxy holds the key (--key, with the <key>.json written at enrollment), \
            gets and renews the agent's tokens, adds a fresh DPoP proof per request, answers nonce challenges and \
            renews a refused token (sending a request of up to 1 MiB again once), and streams bodies both ways. It \
            listens on loopback only and serves only loopback peers. Example:
              warden agent proxy --server http://127.0.0.1:8443 --key bot.key --listen 127.0.0.1:9301
            """)
    @OptionGroup var agentKey: AgentKeyOptions
    @Option(name: .long, help: "host:port to listen on (a loopback address).") var listen = "127.0.0.1:9301"

    func run() async throws {
        try await reporting {
            let (host, port) = try WardenConfig.address(listen)
            guard Loopback.isLoopbackHost(host.contains(":") ? "[\(host)]" : host) else {
                throw ValidationError("--listen must be a loopback address (127.0.0.1, ::1 or localhost)")
            }
            try WardenHTTP(server: agentKey.server).checkCredentialsAllowed()
            let (key, id) = try agentKey.load()
            let issuer = try await Self.issuer(of: agentKey.server)
            var logger = Logger(label: "warden.agent-proxy")
            logger.logLevel = .warning
            var configuration = HTTPClient.Configuration()
            configuration.timeout = .init(connect: .seconds(10), read: .seconds(300))
            let http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
            let proxy = AgentProxy(
                server: agentKey.server, client: AgentClient(server: agentKey.server, key: key, issuer: issuer),
                spiffeID: id,
                http: http, logger: logger)
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
