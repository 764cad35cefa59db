import ArgumentParser
import Foundation
import WardenControlPlane
import WardenCore
import WardenGateway
import WardenServer

/// Options that locate the configuration and data directory.
struct ConfigOptions: ParsableArguments {
    @Option(name: .long, help: "warden.yaml (every key optional).")
    var config: String?

    @Option(name: .long, help: "Data directory (default ./warden-data, or the config's data).")
    var data: String?

    @Option(name: .long, help: "SPIFFE trust domain (default warden.local, or the config's trust_domain).")
    var trustDomain: String?

    func load() throws -> WardenConfig {
        var c = WardenConfig()
        if let config {
            let text = try SecureFile.read(config, maxBytes: 256 * 1024)
            c = try WardenConfig(parsing: text, file: config)
        }
        if let data { c.data = data }
        if let trustDomain { c.trustDomain = trustDomain }
        return c
    }
}

struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the Warden server (control plane endpoints) on the data directory.",
        discussion: """
            The first start creates the data directory (0700): a root CA and an intermediate, a token-signing key, \
            the SQLite database and DIR/admin.token (0600). Later starts reuse them.
            """
    )

    @OptionGroup var options: ConfigOptions

    @Option(name: .long, help: "host:port to listen on (default 127.0.0.1:8443).")
    var listen: String?

    @Option(name: .long, help: "The URL agents reach this server at (token issuer, DPoP htu base).")
    var publicURL: String?

    @Option(
        name: .long,
        help:
            "host:port of a second, mutual-TLS listener (Warden's CA issues its certificate; client SVIDs bind tokens)."
    )
    var tlsListen: String?

    func run() async throws {
        try await reporting {
            var c = try options.load()
            if let listen { c.listen = listen }
            if let publicURL { c.publicURL = publicURL }
            if let tlsListen { c.tlsListen = tlsListen }
            try await WardenServer.run(config: c)
        }
    }
}
