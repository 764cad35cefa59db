import ArgumentParser
import Cedar
import Crypto
import Foundation
import Logging
import ServiceLifecycle
import WardenClient
import WardenCore
import WardenIdentity
import WardenNode

struct NodeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "node",
        abstract: "The node agent: the SPIFFE Workload API on a unix socket, for kernel-attested workloads.",
        discussion: """
            Enrolls the node itself the first time (--join-token and --manifest, like 'warden agent enroll'; the key \
            is written to --key, 0600, with <key>.json), then serves the SPIFFE Workload API (FetchX509SVID, \
            FetchX509Bundles, FetchJWTSVID, FetchJWTBundles, ValidateJWTSVID) on --socket. A workload is whatever \
            the kernel says connected: its uid, gid and binary (SHA-256 of /proc/<pid>/exe), matched against the \
            selectors of the agents whose manifests name this node (node: and selectors:). SVIDs are renewed at half \
            their lifetime and streamed to the workloads holding them. Clients: py-spiffe, go-spiffe, java-spiffe, \
            spiffe-helper, 'warden agent proxy --socket'. Example:
              warden node --server http://127.0.0.1:8443 --join-token T --manifest node.yaml \
            --key node.key --socket /run/warden/agent.sock
            """)

    @Option(name: .long, help: "The Warden server URL.") var server: String
    @Option(name: .long, help: "The node's single-use join token (first start only).") var joinToken: String?
    @Option(name: .long, help: "The node's manifest (first start only; its digest is the attestation evidence).")
    var manifest: String?
    @Option(name: .long, help: "The node's private key: read if it exists, else written at enrollment (0600).")
    var key = "warden-node.key"
    @Option(name: .long, help: "The Workload API's unix socket.") var socket = "/tmp/warden-agent.sock"
    @Option(name: .long, help: "Seconds between syncs with the server (agents, bundles, renewals).")
    var syncInterval = 5
    @Option(name: .long, help: "X.509-SVID lifetime to ask for, in seconds (the server's setting caps it).")
    var svidTTL: Int64?
    @Option(name: .long, help: "JWT-SVID lifetime to ask for, in seconds (10 to 3600).") var jwtTTL: Int64?

    func run() async throws {
        try await reporting {
            guard (1...3600).contains(syncInterval) else { throw ValidationError("--sync-interval: 1 to 3600") }
            try WardenHTTP(server: server).checkCredentialsAllowed()
            let issuer = try await AgentProxyCommand.issuer(of: server)
            let (privateKey, id) = try await enrolledKey(issuer: issuer)
            var logger = Logger(label: "warden.node")
            logger.logLevel = .notice
            let client = AgentClient(server: server, key: privateKey, issuer: issuer)
            let node = NodeAgent(
                client: client, nodeID: id, svidTTL: svidTTL, jwtTTL: jwtTTL,
                syncInterval: .seconds(syncInterval), logger: logger)
            // The first sync now: a wrong key or an unknown node is an error at start.
            try await node.sync()
            let server = NodeServer(path: socket, node: node, logger: logger)
            let socket = self.socket
            let agents = node.snapshot.entries.count
            let service = NodeService(server: server) {
                FileHandle.standardOutput.write(
                    Data("warden node: \(id) serving the Workload API on unix://\(socket) (\(agents) agents)\n".utf8))
            }
            // SIGTERM and SIGINT cancel the server (it removes its socket), as the other long-running verbs stop.
            try await ServiceGroup(
                configuration: .init(
                    services: [.init(service: service)], cancellationSignals: [.sigterm, .sigint], logger: logger)
            ).run()
        }
    }

    /// The node's key and SPIFFE ID: from `--key` and its `.json` when they exist, else by enrolling with the join
    /// token.
    func enrolledKey(issuer: String) async throws -> (P256.Signing.PrivateKey, String) {
        if SecureFile.exists(key) {
            return try AgentKeyOptions.load(key: key)
        }
        guard let joinToken else {
            throw ValidationError("\(key) does not exist: give --join-token (and --manifest) to enroll the node")
        }
        guard let manifest else { throw ValidationError("enrolling needs --manifest (the node's manifest)") }
        let m = try AgentManifest(
            parsing: try SecureFile.read(manifest, maxBytes: AgentManifest.maxBytes), file: manifest)
        let privateKey = P256.Signing.PrivateKey()
        try SecureFile.write(privateKey.pemRepresentation + "\n", to: key)
        let result: JSONValue
        do {
            result = try await AgentClient(server: server, key: privateKey, issuer: issuer).enroll(
                joinToken: joinToken,
                evidence: AttestationEvidence(
                    manifestDigest: Attestation.manifestDigest(m), binarySHA256: try Self.ownBinaryHash()))
        } catch {
            unlink(key)
            throw error
        }
        try SecureFile.write(result.serialized + "\n", to: key + ".json", mode: 0o644)
        guard let id = result["spiffe_id"]?.stringValue else {
            throw ValidationError("enrollment returned no spiffe_id")
        }
        return (privateKey, id)
    }
}

extension NodeCommand {
    /// The SHA-256 of the running `warden` binary (`/proc/self/exe`): the node's evidence at enrollment, checked when
    /// its manifest pins `binary_sha256`.
    static func ownBinaryHash() throws -> String {
        guard let data = FileManager.default.contents(atPath: "/proc/self/exe") else {
            throw ValidationError("cannot read this program's binary (/proc/self/exe) to hash it")
        }
        return Attestation.hex(SHA256.hash(data: data))
    }
}

/// `warden node`'s server as a service of a `ServiceGroup`.
struct NodeService: Service {
    let server: NodeServer
    let ready: @Sendable () -> Void
    func run() async throws { try await server.run(ready: ready) }
}
