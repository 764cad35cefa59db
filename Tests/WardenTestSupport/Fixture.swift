import Cedar
import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Synchronization
import WardenControlPlane
import WardenCore
import WardenGateway
import WardenIdentity
import WardenServer

/// A clock tests move by hand, in seconds or microseconds (both readings of the ``WardenClock`` together).
package final class TestClock: WardenClock {
    private let micros: Mutex<Int64>
    package init(_ start: Int64 = 1_800_000_000) { micros = Mutex(start * 1_000_000) }
    /// Whole seconds.
    package var now: Int64 { seconds }
    package func advance(_ seconds: Int64) { micros.withLock { $0 += seconds * 1_000_000 } }
    package func advance(micros: Int64) { self.micros.withLock { $0 += micros } }
    package var wallMicros: Int64 { micros.withLock { $0 } }
    package var monotonicMicros: Int64 { micros.withLock { $0 } }
}

/// An enrolled agent as a test drives it.
package struct TestAgent {
    package let record: AgentRecord
    package let key: P256.Signing.PrivateKey

    package init(record: AgentRecord, key: P256.Signing.PrivateKey) {
        self.record = record
        self.key = key
    }
    package var signer: DPoPProofSigner { DPoPProofSigner(key: key) }
    package var id: String { record.spiffeID.description }
}

/// A control plane on a fresh data directory with a test clock.
package struct Fixture {
    package let dir: String
    package let clock: TestClock
    package var config: WardenConfig
    package let cp: ControlPlane

    package init(_ tweak: (inout WardenConfig) -> Void = { _ in }) throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("warden-gw-\(UUID().uuidString)").path
        clock = TestClock()
        var c = WardenConfig()
        c.data = dir
        tweak(&c)
        config = c
        cp = try ControlPlane(config: c, clock: clock)
    }

    /// Reopens the same data directory (a restart).
    package func reopened() throws -> ControlPlane { try ControlPlane(config: config, clock: clock) }

    package func manifest(
        _ name: String, peers: [String] = [], routes: [String] = ["tickets"], binary: String? = nil,
        roles: [String] = ["support"], team: String? = nil, tools: [String] = ["tickets/read"]
    )
        -> AgentManifest
    {
        var m = AgentManifest(name: name, owner: "owner@example.com")
        m.roles = roles
        m.team = team
        m.peers = peers
        m.routes = routes
        m.tools = tools
        m.binarySHA256 = binary
        return m
    }

    package func enrollBody(joinToken: String, key: P256.Signing.PrivateKey, digest: String, binary: String? = nil)
        -> JSONValue
    {
        var att: [(String, JSONValue)] = [("manifest_digest", .string(digest))]
        if let binary { att.append(("binary_sha256", .string(binary))) }
        return .object([
            ("join_token", .string(joinToken)), ("jwk", ECPublicJWK(key.publicKey).json), ("attestation", .object(att)),
        ])
    }

    /// Registers and enrolls an agent through the control plane.
    package func agent(
        _ name: String, peers: [String] = [], routes: [String] = ["tickets"], roles: [String] = ["support"],
        team: String? = nil, tools: [String] = ["tickets/read"]
    ) throws -> TestAgent {
        let reg = try cp.register(
            manifest: manifest(name, peers: peers, routes: routes, roles: roles, team: team, tools: tools))
        let key = P256.Signing.PrivateKey()
        let proof = try DPoPProofSigner(key: key).proof(method: "POST", url: cp.enrollEndpoint, now: clock.now)
        let record = try cp.enroll(
            body: enrollBody(joinToken: reg.joinToken, key: key, digest: reg.agent.manifestDigest), dpop: proof)
        return TestAgent(record: record, key: key)
    }

    /// The form of a client-credentials (or exchange) request with a fresh assertion.
    package func form(_ a: TestAgent, _ extra: [String: String] = [:], assertionJTI: String = UUID().uuidString)
        throws -> [String: String]
    {
        var f: [String: String] = [
            "grant_type": "client_credentials", "client_assertion_type": ClientAssertion.type,
            "client_assertion": try ClientAssertion.sign(
                clientID: a.id, audience: cp.tokenEndpoint, key: a.key, now: clock.now, jti: assertionJTI),
        ]
        for (k, v) in extra { f[k] = v }
        return f
    }

    package func tokenProof(_ a: TestAgent) throws -> String {
        try a.signer.proof(method: "POST", url: cp.tokenEndpoint, now: clock.now)
    }

    /// A token for `a` (client credentials).
    package func token(_ a: TestAgent, _ extra: [String: String] = [:]) throws -> String {
        try cp.token(form: try form(a, extra), dpop: try tokenProof(a)).accessToken
    }

    /// `Authorization` and `DPoP` headers for `method path` with `token`.
    package func authHeaders(_ a: TestAgent, token: String, method: String = "GET", path: String = "/v1/whoami")
        throws -> HTTPFields
    {
        var h = HTTPFields()
        h[.authorization] = "DPoP \(token)"
        h[HTTPField.Name("DPoP")!] = try a.signer.proof(
            method: method, url: cp.url(path: path), accessToken: token, now: clock.now)
        return h
    }

    package var app: some ApplicationProtocol { Application(router: WardenRouter.build(cp)) }
}

extension TestResponse {
    package var json: JSONValue? { body.readableBytes == 0 ? nil : try? JSONValue.parse(Array(body.readableBytesView)) }
    package var errorCode: String? { json?["error"]?.stringValue }
    package var wwwAuthenticate: String { headers[.wwwAuthenticate] ?? "" }
}

/// Claims of a JWT without verification (tests inspect what was issued).
package func claims(_ jwt: String) throws -> JSONValue {
    try CompactJWS(jwt, what: "token", code: .invalidToken).payload
}

/// The system's python3 for stdio MCP servers; nil, with the reason printed, when there is none (the test skips).
package func systemPython3() -> String? {
    guard
        let python = ["/usr/bin/python3", "/usr/local/bin/python3"].first(where: FileManager.default.isExecutableFile)
    else {
        print("skipped: no python3 in /usr/bin or /usr/local/bin")
        return nil
    }
    return python
}

/// A form body (`application/x-www-form-urlencoded`): unreserved characters kept, everything else percent-encoded.
package func formBody(_ form: [String: String]) -> String {
    var allowed = CharacterSet.alphanumerics
    allowed.insert(charactersIn: "-._~")
    return form.map { "\($0.key)=\($0.value.addingPercentEncoding(withAllowedCharacters: allowed)!)" }.joined(
        separator: "&")
}
