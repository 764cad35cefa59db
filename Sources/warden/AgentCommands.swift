import ArgumentParser
import Cedar
import Crypto
import Foundation
import WardenClient
import WardenControlPlane
import WardenCore
import WardenGateway
import WardenIdentity
import WardenServer

/// How admin verbs reach Warden: a running server's admin API, or the data directory directly when none runs.
struct AdminOptions: ParsableArguments {
    @Option(name: .long, help: "A running server's URL; without it, the data directory is changed directly.")
    var server: String?

    @Option(name: .long, help: "File holding the admin token (or set WARDEN_ADMIN_TOKEN).")
    var adminTokenFile: String?

    @OptionGroup var config: ConfigOptions

    func client() throws -> AdminClient? {
        guard let server else { return nil }
        // Refused before the token is read and before any network use.
        try WardenHTTP(server: server).checkCredentialsAllowed()
        return AdminClient(server: server, token: try Self.adminToken(file: adminTokenFile))
    }

    /// The admin token from `file`, else `WARDEN_ADMIN_TOKEN`.
    static func adminToken(file: String?) throws -> String {
        if let file {
            return try SecureFile.readSecret(file, maxBytes: 1024).trimmingCharacters(in: .whitespacesAndNewlines)
        } else if let env = ProcessInfo.processInfo.environment["WARDEN_ADMIN_TOKEN"], !env.isEmpty {
            return env
        }
        throw ValidationError("--server needs --admin-token-file FILE or WARDEN_ADMIN_TOKEN")
    }

    /// The control plane on the data directory, locked against a running server.
    func local() throws -> (ControlPlane, DataDirectoryLock) {
        let c = try config.load()
        try SecureFile.ensureDirectory(c.data)
        let lock = try DataDirectoryLock(path: c.data)
        return (try ControlPlane(config: c), lock)
    }

    /// Runs `remote` against the server or `offline` against the data directory, and prints the JSON result.
    func perform(
        remote: (AdminClient) async throws -> JSONValue, offline: (ControlPlane) throws -> JSONValue
    ) async throws {
        try await reporting {
            let result: JSONValue
            if let client = try client() {
                result = try await remote(client)
            } else {
                let (cp, lock) = try local()
                result = try offline(cp)
                withExtendedLifetime(lock) {}
            }
            print(result.serialized)
        }
    }
}

struct AgentCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "agent",
        abstract: "Register agents and manage their lifecycle; enroll, get tokens and SVIDs as an agent.",
        subcommands: [
            AgentRegister.self, AgentList.self, AgentShow.self, AgentEvents.self, AgentQuarantine.self,
            AgentActivate.self, AgentRevoke.self, AgentDecommission.self,
            AgentJoinToken.self, AgentEnroll.self, AgentToken.self, AgentSVID.self, AgentWhoami.self, AgentCall.self,
            AgentProxyCommand.self, AgentMCPCommand.self,
        ]
    )
}

struct AgentRegister: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "register",
        abstract: "Register an agent from its manifest; prints {agent_id, spiffe_id, join_token, expires_at}.")

    @Option(name: .long, help: "The agent manifest (YAML or JSON).") var manifest: String
    @OptionGroup var admin: AdminOptions

    func run() async throws {
        let parsed: AgentManifest
        do {
            parsed = try AgentManifest(
                parsing: try SecureFile.read(manifest, maxBytes: AgentManifest.maxBytes), file: manifest)
        } catch {
            throw fail(error)
        }
        try await admin.perform(
            remote: { try await $0.call("POST", "/v1/admin/agents", json: parsed.json) },
            offline: { try $0.register(manifest: parsed).json })
    }
}

struct AgentList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List agents (JSON).")
    @OptionGroup var admin: AdminOptions
    func run() async throws {
        try await admin.perform(
            remote: { try await $0.call("GET", "/v1/admin/agents") },
            offline: { .object([("agents", .array(try $0.store.agents().map(\.adminJSON)))]) })
    }
}

func pathSegment(_ s: String) -> String { WardenHTTP.percentEncode(s) }

struct AgentShow: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "show", abstract: "Show one agent (JSON).")
    @Argument(help: "Agent name, id or SPIFFE ID.") var agent: String
    @OptionGroup var admin: AdminOptions
    func run() async throws {
        try await admin.perform(
            remote: { try await $0.call("GET", "/v1/admin/agents/\(pathSegment(agent))") },
            offline: { try $0.agent(agent).adminJSON })
    }
}

struct AgentEvents: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "events", abstract: "Show an agent's lifecycle and security events (JSON).")
    @Argument(help: "Agent name, id or SPIFFE ID.") var agent: String
    @OptionGroup var admin: AdminOptions
    func run() async throws {
        try await admin.perform(
            remote: { try await $0.call("GET", "/v1/admin/agents/\(pathSegment(agent))/events") },
            offline: { cp in
                .object([("events", .array(try cp.store.events(agentID: try cp.agent(agent).id).map(\.json)))])
            })
    }
}

/// Lifecycle verbs: `warden agent quarantine|activate|revoke|decommission NAME [--reason R]`.
protocol AgentTransitionCommand: AsyncParsableCommand {
    static var action: String { get }
    static var state: AgentState { get }
    var agent: String { get }
    var reason: String? { get }
    var admin: AdminOptions { get }
}

extension AgentTransitionCommand {
    func run() async throws {
        let why = reason ?? "admin \(Self.action)"
        let (agent, state) = (agent, Self.state)
        try await admin.perform(
            remote: {
                try await $0.call(
                    "POST", "/v1/admin/agents/\(pathSegment(agent))/\(Self.action)",
                    json: .object([("reason", .string(why))]))
            },
            offline: { try $0.transition(agent: agent, to: state, reason: why).adminJSON })
    }
}

struct AgentQuarantine: AgentTransitionCommand {
    static let configuration = CommandConfiguration(
        commandName: "quarantine", abstract: "Quarantine an agent: denied on its next request, reversible.")
    static let action = "quarantine"
    static let state = AgentState.quarantined
    @Argument(help: "Agent name, id or SPIFFE ID.") var agent: String
    @Option(name: .long, help: "Why (recorded with the transition).") var reason: String?
    @OptionGroup var admin: AdminOptions
}

struct AgentActivate: AgentTransitionCommand {
    static let configuration = CommandConfiguration(
        commandName: "activate", abstract: "Release a quarantined agent.")
    static let action = "activate"
    static let state = AgentState.active
    @Argument(help: "Agent name, id or SPIFFE ID.") var agent: String
    @Option(name: .long, help: "Why (recorded with the transition).") var reason: String?
    @OptionGroup var admin: AdminOptions
}

struct AgentRevoke: AgentTransitionCommand {
    static let configuration = CommandConfiguration(
        commandName: "revoke", abstract: "Revoke an agent for good: every token it holds stops working.")
    static let action = "revoke"
    static let state = AgentState.revoked
    @Argument(help: "Agent name, id or SPIFFE ID.") var agent: String
    @Option(name: .long, help: "Why (recorded with the transition).") var reason: String?
    @OptionGroup var admin: AdminOptions
}

struct AgentDecommission: AgentTransitionCommand {
    static let configuration = CommandConfiguration(
        commandName: "decommission", abstract: "Retire an agent for good.")
    static let action = "decommission"
    static let state = AgentState.decommissioned
    @Argument(help: "Agent name, id or SPIFFE ID.") var agent: String
    @Option(name: .long, help: "Why (recorded with the transition).") var reason: String?
    @OptionGroup var admin: AdminOptions
}

struct AgentJoinToken: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "join-token", abstract: "Issue a new single-use join token for a pending agent.")
    @Argument(help: "Agent name, id or SPIFFE ID.") var agent: String
    @OptionGroup var admin: AdminOptions
    func run() async throws {
        try await admin.perform(
            remote: { try await $0.call("POST", "/v1/admin/agents/\(pathSegment(agent))/join-token") },
            offline: { try $0.newJoinToken(agent: agent).json })
    }
}

/// The agent's key file and the identity recorded beside it at enrollment (`<key>.json`).
struct AgentKeyOptions: ParsableArguments {
    @Option(name: .long, help: "The Warden server URL.") var server: String
    @Option(name: .long, help: "The agent's private key (PKCS#8 PEM).") var key: String

    func load() throws -> (P256.Signing.PrivateKey, String) { try Self.load(key: key) }

    /// The key at `key` and the SPIFFE ID in `<key>.json`.
    static func load(key: String) throws -> (P256.Signing.PrivateKey, String) {
        let pem = try SecureFile.readSecret(key)
        let k: P256.Signing.PrivateKey
        do { k = try P256.Signing.PrivateKey(pemRepresentation: pem) } catch {
            throw ValidationError("\(key) is not a P-256 private key in PEM")
        }
        let sidecar = try JSONValue.parse(try SecureFile.read(key + ".json", maxBytes: 65536))
        guard let id = sidecar["spiffe_id"]?.stringValue else {
            throw ValidationError("\(key).json (written at enrollment) has no spiffe_id")
        }
        return (k, id)
    }
}

/// Runs a command's body: usage errors go to the argument parser, an interrupted follow ends quietly, and every other
/// error is reported on standard error with exit status 1.
func reporting(_ body: () async throws -> Void) async throws {
    do {
        try await body()
    } catch let e as ValidationError {
        throw e
    } catch let e as ExitCode {
        throw e
    } catch is CancellationError {
        return
    } catch {
        throw fail(error)
    }
}

func fail(_ error: any Error) -> ExitCode {
    let text: String
    if let e = error as? WardenError { text = "\(e.code): \(e.message)" } else { text = "\(error)" }
    FileHandle.standardError.write(Data("warden: \(text)\n".utf8))
    return ExitCode(1)
}

struct AgentEnroll: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "enroll",
        abstract: "Enroll as an agent: generate a P-256 key (PKCS#8 PEM, 0600), prove possession, present attestation.")

    @Option(name: .long, help: "The Warden server URL.") var server: String
    @Option(name: .long, help: "The single-use join token from 'warden agent register'.") var joinToken: String
    @Option(name: .long, help: "Where to write the new private key (0600); <file>.json records the identity.")
    var keyOut: String
    @Option(name: .long, help: "The manifest this agent runs with (its digest is the attestation evidence).")
    var manifest: String?
    @Option(name: .long, help: "The manifest digest (sha256:...), instead of --manifest.") var manifestDigest: String?
    @Option(name: .long, help: "The agent's binary, hashed (SHA-256) as evidence.") var binary: String?

    func run() async throws {
        try await reporting {
            let digest: String
            if let manifest {
                let m = try AgentManifest(
                    parsing: try SecureFile.read(manifest, maxBytes: AgentManifest.maxBytes), file: manifest)
                digest = Attestation.manifestDigest(m)
            } else if let manifestDigest {
                digest = manifestDigest
            } else {
                throw ValidationError("give --manifest FILE or --manifest-digest sha256:...")
            }
            var binaryHash: String?
            if let binary {
                guard let data = FileManager.default.contents(atPath: binary) else {
                    throw ValidationError("cannot read \(binary)")
                }
                binaryHash = Attestation.hex(SHA256.hash(data: data))
            }
            guard !SecureFile.exists(keyOut) else {
                throw ValidationError("\(keyOut) exists; refusing to overwrite a key")
            }
            // The key is written before enrolling: a key that cannot be stored must not burn the join token and
            // leave an active agent whose key nobody holds.
            let key = P256.Signing.PrivateKey()
            try SecureFile.write(key.pemRepresentation + "\n", to: keyOut)
            let result: JSONValue
            do {
                result = try await AgentClient(server: server, key: key).enroll(
                    joinToken: joinToken,
                    evidence: AttestationEvidence(manifestDigest: digest, binarySHA256: binaryHash))
            } catch {
                unlink(keyOut)
                throw error
            }
            try SecureFile.write(result.serialized + "\n", to: keyOut + ".json", mode: 0o644)
            print(result.serialized)
        }
    }
}

struct AgentToken: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "token", abstract: "Get a DPoP-bound access token (prints the token response JSON).")
    @OptionGroup var agentKey: AgentKeyOptions
    @Option(name: .long, help: "Audience (default: the server itself).") var audience: String?
    @Option(name: .long, help: "Space-separated scopes (default: all the manifest grants).") var scope: String?

    func run() async throws {
        try await reporting {
            let (key, id) = try agentKey.load()
            print(
                try await AgentClient(server: agentKey.server, key: key).token(
                    spiffeID: id, audience: audience, scope: scope
                ).serialized)
        }
    }
}

struct AgentWhoami: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "whoami", abstract: "Get a token and call /v1/whoami with it.")
    @OptionGroup var agentKey: AgentKeyOptions

    func run() async throws {
        try await reporting {
            let (key, id) = try agentKey.load()
            let client = AgentClient(server: agentKey.server, key: key)
            guard let token = try await client.token(spiffeID: id)["access_token"]?.stringValue else {
                throw WardenClientError("the token response has no access_token")
            }
            print(try await client.whoami(accessToken: token).serialized)
        }
    }
}

struct AgentCall: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "call",
        abstract: "Call a gateway route as the agent: a token, a DPoP proof for the request, the response body.",
        discussion: """
            Example: warden agent call --server http://127.0.0.1:8443 --key bot.key /r/tickets/             (the status goes to standard error; exit status 1 when it is not 2xx).
            """)
    @OptionGroup var agentKey: AgentKeyOptions
    @Option(name: .long, help: "HTTP method (default GET).") var method = "GET"
    @Option(name: .long, help: "Request body (sent as application/json unless --content-type).") var body: String?
    @Option(name: .long, help: "Content-Type of the body.") var contentType = "application/json"
    @Argument(help: "The path, for example /r/tickets/v1/tickets?status=open.") var path: String

    func run() async throws {
        try await reporting {
            guard path.hasPrefix("/") else { throw ValidationError("the path must start with /") }
            let (key, id) = try agentKey.load()
            let client = AgentClient(server: agentKey.server, key: key)
            guard let token = try await client.token(spiffeID: id)["access_token"]?.stringValue else {
                throw WardenClientError("the token response has no access_token")
            }
            let bare = String(path.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)[0])
            let proof = try client.signer.proof(
                method: method.uppercased(), url: client.http.base + bare, accessToken: token)
            var headers = [("Authorization", "DPoP \(token)"), ("DPoP", proof)]
            if body != nil { headers.append(("Content-Type", contentType)) }
            let r = try await client.http.send(
                method.uppercased(), path, headers: headers, body: body.map { Array($0.utf8) })
            FileHandle.standardError.write(Data("HTTP \(r.status)\n".utf8))
            print(r.text, terminator: r.text.hasSuffix("\n") ? "" : "\n")
            if !(200..<300).contains(r.status) { throw ExitCode(1) }
        }
    }
}

struct AgentSVID: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "svid", abstract: "Get an X.509-SVID: writes svid.pem, svid.key (0600) and bundle.pem.")
    @OptionGroup var agentKey: AgentKeyOptions
    @Option(name: .long, help: "Directory for svid.pem, svid.key and bundle.pem.") var outDir: String

    func run() async throws {
        try await reporting {
            let (key, id) = try agentKey.load()
            let client = AgentClient(server: agentKey.server, key: key)
            guard let token = try await client.token(spiffeID: id)["access_token"]?.stringValue else {
                throw WardenClientError("the token response has no access_token")
            }
            let (svidKey, result) = try await client.svid(accessToken: token, spiffeID: id)
            guard let chain = result["svid"]?.stringValue, let bundle = result["bundle"]?.stringValue else {
                throw WardenClientError("the SVID response lacks svid or bundle")
            }
            try FileManager.default.createDirectory(atPath: outDir, withIntermediateDirectories: true)
            try SecureFile.write(svidKey.pemRepresentation + "\n", to: outDir + "/svid.key")
            try SecureFile.write(chain, to: outDir + "/svid.pem", mode: 0o644)
            try SecureFile.write(bundle, to: outDir + "/bundle.pem", mode: 0o644)
            print(
                JSONValue.object([
                    ("spiffe_id", .string(id)), ("expires_at", result["expires_at"] ?? .null),
                    ("svid", .string(outDir + "/svid.pem")), ("key", .string(outDir + "/svid.key")),
                    ("bundle", .string(outDir + "/bundle.pem")),
                ]).serialized)
        }
    }
}

struct TokenCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "token", abstract: "Revoke access tokens.", subcommands: [TokenRevoke.self])
}

struct TokenRevoke: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "revoke", abstract: "Revoke one access token by its jti (effective on the next request).")
    @Argument(help: "The token's jti.") var jti: String
    @Option(name: .long, help: "Why.") var reason: String = "revoked by admin"
    @OptionGroup var admin: AdminOptions
    func run() async throws {
        try await admin.perform(
            remote: {
                try await $0.call(
                    "POST", "/v1/admin/revocations",
                    json: .object([("jti", .string(jti)), ("reason", .string(reason))]))
            },
            offline: { cp in
                try cp.revokeToken(jti: jti, reason: reason)
                return .object([("revoked", .string(jti))])
            })
    }
}

struct KeysCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keys", abstract: "Token-signing keys.", subcommands: [KeysRotate.self])
}

struct KeysRotate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rotate",
        abstract: "Rotate the token-signing key now (the old key keeps verifying for the overlap).")
    @OptionGroup var admin: AdminOptions
    func run() async throws {
        try await admin.perform(
            remote: { try await $0.call("POST", "/v1/admin/keys/rotate") },
            offline: { .object([("kid", .string(try $0.rotateSigningKey()))]) })
    }
}
