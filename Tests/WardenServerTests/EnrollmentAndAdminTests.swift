import Cedar
import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing
import WardenCore
import WardenGateway
import WardenIdentity
import WardenTestSupport

@testable import WardenControlPlane
@testable import WardenServer

@Suite("Data directory, enrollment, admin API, restart")
struct EnrollmentAndAdminTests {
    @Test("random tokens and ids are base64url of the asked size and never start with '-' (a CLI would take an option)")
    func randomTokens() {
        var first = Set<Character>()
        for _ in 0..<5000 {
            let t = DataDirectory.randomToken(bytes: 16)
            #expect(t.count == 22 && !t.hasPrefix("-"))
            #expect(t.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") })
            first.insert(t.first!)
        }
        // Uniform otherwise: 63 first characters are reachable, so 5,000 draws see nearly all of them.
        #expect(first.count > 55 && !first.contains("-"))
    }

    @Test("first start creates the directory 0700 and secret files 0600; later starts reuse them")
    func dataDirectory() throws {
        let f = try Fixture()
        #expect(SecureFile.mode(f.dir) == 0o700)
        for file in [
            "admin.token", "warden.sqlite", "ca/root.key", "ca/intermediate.key", "nonce.key",
            "keys/\(f.cp.keys.current.kid).key",
        ] {
            #expect(SecureFile.mode(f.dir + "/" + file) == 0o600, "\(file)")
        }
        let token = try String(contentsOfFile: f.dir + "/admin.token", encoding: .utf8)
        #expect(token.trimmingCharacters(in: .whitespacesAndNewlines).count >= 40)
        let again = try f.reopened()
        #expect(again.keys.current.kid == f.cp.keys.current.kid)
        #expect(again.ca.root == f.cp.ca.root)
        #expect(again.isAdmin("Bearer " + token.trimmingCharacters(in: .whitespacesAndNewlines)))
        #expect(!again.isAdmin("Bearer " + token.trimmingCharacters(in: .whitespacesAndNewlines).dropLast()))
        #expect(!again.isAdmin(nil))
    }

    @Test("a key file others can read, or another trust domain, refuses to start")
    func refusesUnsafeDirectory() throws {
        let f = try Fixture()
        chmod(f.dir + "/ca/root.key", 0o644)
        #expect(throws: WardenError(.io, "")) { try f.reopened() }
        chmod(f.dir + "/ca/root.key", 0o600)
        var other = f.config
        other.trustDomain = "other.example"
        #expect(throws: WardenError(.invalidConfig, "")) { try ControlPlane(config: other, clock: f.clock) }
    }

    @Test("enrollment: proof of possession, attestation, single-use join tokens, expiry")
    func enrollment() throws {
        let f = try Fixture()
        let binary = String(repeating: "ab", count: 32)
        let reg = try f.cp.register(manifest: f.manifest("local-agent", binary: binary))
        #expect(reg.agent.state == .pending)
        #expect(reg.expiresAt - f.clock.now == 600)
        #expect(reg.agent.spiffeID.description == "spiffe://warden.local/agent/local-agent")
        let key = P256.Signing.PrivateKey()
        let signer = DPoPProofSigner(key: key)
        func proof() throws -> String { try signer.proof(method: "POST", url: f.cp.enrollEndpoint, now: f.clock.now) }
        let digest = reg.agent.manifestDigest

        // A proof made with another key than the one enrolled: refused, and the token is not burnt.
        let otherProof = try DPoPProofSigner(key: P256.Signing.PrivateKey()).proof(
            method: "POST", url: f.cp.enrollEndpoint, now: f.clock.now)
        #expect(throws: WardenError(.invalidDPoPProof, "")) {
            try f.cp.enroll(
                body: f.enrollBody(joinToken: reg.joinToken, key: key, digest: digest, binary: binary), dpop: otherProof
            )
        }
        // Wrong binary hash: refused with the reason, token burnt, event recorded.
        #expect(throws: WardenError(.attestationFailed, "")) {
            try f.cp.enroll(
                body: f.enrollBody(
                    joinToken: reg.joinToken, key: key, digest: digest, binary: String(repeating: "cd", count: 32)),
                dpop: try proof())
        }
        #expect(throws: WardenError(.invalidGrant, "")) {
            try f.cp.enroll(
                body: f.enrollBody(joinToken: reg.joinToken, key: key, digest: digest, binary: binary),
                dpop: try proof())
        }
        let events = try f.cp.store.events(agentID: reg.agent.id).map(\.kind)
        #expect(events.contains("attestation_failed"))
        #expect(try f.cp.agent("local-agent").state == .pending)

        // A new join token; no binary hash at all is refused too.
        let second = try f.cp.newJoinToken(agent: "local-agent")
        #expect(throws: WardenError(.attestationFailed, "")) {
            try f.cp.enroll(
                body: f.enrollBody(joinToken: second.joinToken, key: key, digest: digest), dpop: try proof())
        }
        // Wrong manifest digest.
        let third = try f.cp.newJoinToken(agent: "local-agent")
        #expect(throws: WardenError(.attestationFailed, "")) {
            try f.cp.enroll(
                body: f.enrollBody(
                    joinToken: third.joinToken, key: key, digest: "sha256:" + String(repeating: "0", count: 64),
                    binary: binary),
                dpop: try proof())
        }
        // An expired join token.
        let fourth = try f.cp.newJoinToken(agent: "local-agent")
        f.clock.advance(601)
        #expect(throws: WardenError(.invalidGrant, "")) {
            try f.cp.enroll(
                body: f.enrollBody(joinToken: fourth.joinToken, key: key, digest: digest, binary: binary),
                dpop: try proof())
        }
        // Finally the right evidence.
        let fifth = try f.cp.newJoinToken(agent: "local-agent")
        let enrolled = try f.cp.enroll(
            body: f.enrollBody(joinToken: fifth.joinToken, key: key, digest: digest, binary: binary), dpop: try proof())
        #expect(enrolled.state == .active)
        #expect(enrolled.attestation == "manifest+binary")
        #expect(enrolled.keyThumbprint == signer.thumbprint)
        // An active agent gets no new join token.
        #expect(throws: WardenError(.conflict, "")) { try f.cp.newJoinToken(agent: "local-agent") }
        let kinds = try f.cp.store.events(agentID: reg.agent.id).map(\.kind)
        #expect(kinds.first == "registered" && kinds.last == "enrolled")
    }

    @Test("malformed enrollment requests get 400 with a reason, never a crash")
    func malformedEnrollment() async throws {
        let f = try Fixture()
        let reg = try f.cp.register(manifest: f.manifest("support-bot"))
        let key = P256.Signing.PrivateKey()
        let priv = JSONValue.object([
            ("kty", .string("EC")), ("crv", .string("P-256")), ("x", ECPublicJWK(key.publicKey).json["x"]!),
            ("y", ECPublicJWK(key.publicKey).json["y"]!), ("d", .string(Base64URL.encode(key.rawRepresentation))),
        ])
        let bodies: [String] = [
            "", "not json", "[]", "{}", "{\"join_token\": 5}",
            "{\"join_token\":\"\(reg.joinToken)\"}",
            "{\"join_token\":\"\(reg.joinToken)\",\"jwk\":{\"kty\":\"RSA\"}}",
            "{\"join_token\":\"\(reg.joinToken)\",\"jwk\":\(priv.serialized),\"attestation\":{\"manifest_digest\":\"x\"}}",
            "{\"join_token\":\"\(reg.joinToken)\",\"jwk\":\(ECPublicJWK(key.publicKey).json.serialized)}",
            String(repeating: "[", count: 100_000),
        ]
        try await f.app.test(.router) { client in
            for body in bodies {
                var h = HTTPFields()
                h[HTTPField.Name("DPoP")!] = try DPoPProofSigner(key: key).proof(
                    method: "POST", url: f.cp.enrollEndpoint, now: f.clock.now)
                try await client.execute(uri: "/v1/enroll", method: .post, headers: h, body: ByteBuffer(string: body)) {
                    r in
                    #expect(r.status == .badRequest, "\(body.prefix(40))")
                    #expect(r.errorCode != nil)
                }
            }
        }
        // The token survived all that (none of those requests reached the burn).
        let enrolled = try f.cp.enroll(
            body: f.enrollBody(joinToken: reg.joinToken, key: key, digest: reg.agent.manifestDigest),
            dpop: try DPoPProofSigner(key: key).proof(method: "POST", url: f.cp.enrollEndpoint, now: f.clock.now))
        #expect(enrolled.state == .active)
    }

    @Test("admin API: token required, register, show, lifecycle, events, revocations")
    func adminAPI() async throws {
        let f = try Fixture()
        let token = try String(contentsOfFile: f.dir + "/admin.token", encoding: .utf8).trimmingCharacters(
            in: .whitespacesAndNewlines)
        let auth: HTTPFields = [.authorization: "Bearer \(token)", .contentType: "application/json"]
        try await f.app.test(.router) { client in
            try await client.execute(uri: "/v1/admin/agents", method: .get) { r in
                #expect(r.status == .unauthorized)
                #expect(r.wwwAuthenticate.hasPrefix("Bearer"))
            }
            var wrong = HTTPFields()
            wrong[.authorization] = "Bearer " + String(token.dropLast()) + "x"
            try await client.execute(uri: "/v1/admin/agents", method: .get, headers: wrong) {
                #expect($0.status == .unauthorized)
            }

            let manifest = "{\"name\":\"support-bot\",\"owner\":\"o@example.com\",\"roles\":[\"support\"]}"
            let joinToken = try await client.execute(
                uri: "/v1/admin/agents", method: .post, headers: auth, body: ByteBuffer(string: manifest)
            ) { r in
                #expect(r.status == .created)
                #expect(r.json?["spiffe_id"]?.stringValue == "spiffe://warden.local/agent/support-bot")
                return r.json?["join_token"]?.stringValue
            }
            #expect(joinToken != nil)
            try await client.execute(
                uri: "/v1/admin/agents", method: .post, headers: auth, body: ByteBuffer(string: manifest)
            ) {
                #expect($0.status == .conflict)
            }
            try await client.execute(
                uri: "/v1/admin/agents", method: .post, headers: auth,
                body: ByteBuffer(string: "{\"name\":\"x\",\"owner\":\"o\",\"rolez\":[]}")
            ) { r in
                #expect(r.status == .badRequest)
                #expect(r.errorCode == "invalid_manifest")
            }
            try await client.execute(uri: "/v1/admin/agents/support-bot", method: .get, headers: auth) {
                #expect($0.json?["state"]?.stringValue == "pending")
            }
            try await client.execute(uri: "/v1/admin/agents/nobody", method: .get, headers: auth) {
                #expect($0.status == .notFound)
            }
            // A pending agent cannot be quarantined; it can be revoked.
            try await client.execute(uri: "/v1/admin/agents/support-bot/quarantine", method: .post, headers: auth) {
                #expect($0.status == .conflict)
            }
            try await client.execute(
                uri: "/v1/admin/agents/support-bot/revoke", method: .post, headers: auth,
                body: ByteBuffer(string: "{\"reason\":\"key leaked\"}")
            ) { r in
                #expect(r.status == .ok)
                #expect(r.json?["state"]?.stringValue == "revoked")
            }
            try await client.execute(uri: "/v1/admin/agents/support-bot/events", method: .get, headers: auth) { r in
                guard case .array(let events)? = r.json?["events"] else { Issue.record("no events"); return }
                #expect(events.compactMap { $0["kind"]?.stringValue } == ["registered", "state_changed"])
                #expect(events.last?["reason"]?.stringValue == "key leaked")
            }
            try await client.execute(
                uri: "/v1/admin/revocations", method: .post, headers: auth,
                body: ByteBuffer(string: "{\"jti\":\"abc\"}")
            ) { #expect($0.status == .ok) }
            try await client.execute(uri: "/v1/admin/keys/rotate", method: .post, headers: auth) {
                #expect($0.status == .ok)
            }
        }
        #expect(f.cp.revocations.isRevoked("abc"))
    }

    @Test("revocations and lifecycle survive a restart")
    func restart() async throws {
        let f = try Fixture()
        let a = try f.agent("support-bot")
        let b = try f.agent("kb-agent")
        let tokenA = try f.token(a)
        let tokenB = try f.token(b)
        let jtiB = try #require(claims(tokenB)["jti"]?.stringValue)
        try f.cp.revokeToken(jti: jtiB, reason: "leaked")
        _ = try f.cp.transition(agent: "support-bot", to: .quarantined, reason: "anomaly")
        let cp2 = try f.reopened()
        #expect(cp2.revocations.isRevoked(jtiB))
        #expect(try cp2.agent("support-bot").state == .quarantined)
        #expect(throws: WardenError(.accessDenied, "")) {
            try cp2.authenticate(
                authorization: "DPoP \(tokenA)",
                dpop: try a.signer.proof(
                    method: "GET", url: cp2.url(path: "/v1/whoami"), accessToken: tokenA, now: f.clock.now),
                method: "GET", path: "/v1/whoami")
        }
        #expect(throws: WardenError(.invalidToken, "")) {
            try cp2.authenticate(
                authorization: "DPoP \(tokenB)",
                dpop: try b.signer.proof(
                    method: "GET", url: cp2.url(path: "/v1/whoami"), accessToken: tokenB, now: f.clock.now),
                method: "GET", path: "/v1/whoami")
        }
        // A fresh token for B still works after the restart.
        let fresh = try cp2.token(
            form: try f.form(b), dpop: try b.signer.proof(method: "POST", url: cp2.tokenEndpoint, now: f.clock.now))
        let who = try cp2.authenticate(
            authorization: "DPoP \(fresh.accessToken)",
            dpop: try b.signer.proof(
                method: "GET", url: cp2.url(path: "/v1/whoami"), accessToken: fresh.accessToken, now: f.clock.now),
            method: "GET", path: "/v1/whoami")
        #expect(who.agent.name == "kb-agent")
        // Revocations are pruned once no token could carry the jti any more.
        f.clock.advance(400)
        let cp3 = try f.reopened()
        #expect(!cp3.revocations.isRevoked(jtiB))
    }

    @Test("SVID over HTTP: one URI SAN, chained to the intermediate, at most an hour")
    func svid() async throws {
        let f = try Fixture()
        let a = try f.agent("support-bot")
        let token = try f.token(a)
        let (_, json) = try await {
            let svidKey = P256.Signing.PrivateKey()
            let csr = try X509CSR.make(svidKey)
            return try await f.app.test(.router) { client in
                try await client.execute(
                    uri: "/v1/svid", method: .post,
                    headers: try f.authHeaders(a, token: token, method: "POST", path: "/v1/svid"),
                    body: ByteBuffer(string: JSONValue.object([("csr", .string(csr))]).serialized)
                ) { ($0.status, $0.json) }
            }
        }()
        let j = try #require(json)
        #expect(j["spiffe_id"]?.stringValue == a.id)
        let expires = try #require(j["expires_at"]?.integerValue)
        #expect(expires - f.clock.now <= 3600)
        #expect((j["svid"]?.stringValue ?? "").components(separatedBy: "BEGIN CERTIFICATE").count == 3)
        // Garbage CSR.
        try await f.app.test(.router) { client in
            try await client.execute(
                uri: "/v1/svid", method: .post,
                headers: try f.authHeaders(a, token: token, method: "POST", path: "/v1/svid"),
                body: ByteBuffer(
                    string:
                        "{\"csr\":\"-----BEGIN CERTIFICATE REQUEST-----\\nAAAA\\n-----END CERTIFICATE REQUEST-----\"}")
            ) { #expect($0.status == .badRequest) }
        }
    }

    @Test("metadata, JWKS and SPIFFE bundle")
    func metadata() async throws {
        let f = try Fixture()
        try await f.app.test(.router) { client in
            try await client.execute(uri: "/.well-known/oauth-authorization-server", method: .get) { r in
                #expect(r.json?["issuer"]?.stringValue == f.cp.issuer)
                #expect(r.json?["token_endpoint"]?.stringValue == f.cp.issuer + "/v1/token")
                #expect(r.json?["dpop_signing_alg_values_supported"] == .array([.string("ES256")]))
            }
            try await client.execute(uri: "/.well-known/jwks.json", method: .get) { r in
                guard case .array(let keys)? = r.json?["keys"] else { Issue.record("no keys"); return }
                #expect(keys.count == 1)
                #expect(keys.allSatisfy { $0["kid"] != nil && $0["use"]?.stringValue == "sig" && $0["d"] == nil })
            }
            try await client.execute(uri: "/.well-known/spiffe-bundle", method: .get) { r in
                guard case .array(let keys)? = r.json?["keys"] else { Issue.record("no keys"); return }
                #expect(keys.contains { $0["use"]?.stringValue == "x509-svid" && $0["x5c"] != nil })
                #expect(keys.contains { $0["use"]?.stringValue == "jwt-svid" && $0["kid"] != nil })
            }
            try await client.execute(uri: "/healthz", method: .get) { #expect($0.status == .ok) }
            try await client.execute(uri: "/readyz", method: .get) { #expect($0.status == .ok) }
        }
    }
}
