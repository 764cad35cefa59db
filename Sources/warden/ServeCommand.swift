import ArgumentParser
import Foundation
import NIOCore
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

    @Option(
        name: .long,
        help: """
            Event-loop threads for the listeners and upstream connections (default: half the cores, at least one; \
            the environment variable NIO_SINGLETON_GROUP_LOOP_COUNT also sets it). Request handling runs on \
            Swift's cooperative pool beside them.
            """)
    var eventLoops: Int?

    /// How many event loops the process's NIO singleton group gets. Half the cores by default: the gateway's work
    /// (proofs, Cedar, the audit entry) runs on the cooperative pool, whose threads take the other half; with a
    /// loop per core both pools contend for the same cores. Measured on the 2-core benchmark machine, 16
    /// connections, three alternating runs: one loop instead of two gave DPoP 4,803 -> 5,110 req/s, mTLS 6,672 ->
    /// 7,163, server CPU per request 354 -> 325 µs; one connection unchanged.
    static func eventLoopCount(flag: Int?, environment: [String: String], cores: Int) throws(WardenError) -> Int? {
        if let flag {
            guard (1...256).contains(flag) else {
                throw WardenError(.invalidConfig, "--event-loops must be between 1 and 256")
            }
            return flag
        }
        if environment["NIO_SINGLETON_GROUP_LOOP_COUNT"] != nil { return nil }  // NIO reads it itself
        return max(1, cores / 2)
    }

    func run() async throws {
        try await reporting {
            // Before anything uses the singleton group (it can be set once, and only before first use).
            if let loops = try Self.eventLoopCount(
                flag: eventLoops, environment: ProcessInfo.processInfo.environment, cores: System.coreCount)
            {
                NIOSingletons.groupLoopCountSuggestion = loops
            }
            var c = try options.load()
            if let listen { c.listen = listen }
            if let publicURL { c.publicURL = publicURL }
            if let tlsListen { c.tlsListen = tlsListen }
            try await WardenServer.run(config: c)
        }
    }
}
