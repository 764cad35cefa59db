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

/// Seeded fuzzing of everything the identity layer parses from outside: mutated tokens and proofs never
/// authenticate and never crash; mutated assertions, forms, enrollment bodies, manifests and configurations give
/// errors, never traps. Scaled by `WARDEN_FUZZ_ITERATIONS` (default 1500), seed `WARDEN_FUZZ_SEED`.
@Suite("Identity fuzzing")
struct IdentityFuzzTests {
    static var iterations: Int {
        ProcessInfo.processInfo.environment["WARDEN_FUZZ_ITERATIONS"].flatMap(Int.init) ?? 1500
    }
    static var seed: UInt64 { ProcessInfo.processInfo.environment["WARDEN_FUZZ_SEED"].flatMap(UInt64.init) ?? 20261124 }

    static let alphabet = Array(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ \"{}[],:\\\u{0}é".utf8)

    /// One to three random edits: replace, insert, delete, duplicate a span, or truncate.
    static func mutate(_ s: String, _ rng: inout SplitMix64) -> String {
        var b = Array(s.utf8)
        for _ in 0..<Int.random(in: 1...3, using: &rng) {
            guard !b.isEmpty else { b = [alphabet.randomElement(using: &rng)!]; continue }
            let i = Int.random(in: 0..<b.count, using: &rng)
            switch Int.random(in: 0..<5, using: &rng) {
            case 0: b[i] = alphabet.randomElement(using: &rng)!
            case 1: b.insert(alphabet.randomElement(using: &rng)!, at: i)
            case 2: b.remove(at: i)
            case 3:
                let j = min(b.count, i + Int.random(in: 1...16, using: &rng))
                b.insert(contentsOf: b[i..<j], at: j)
            default: b.removeLast(b.count - i)
            }
        }
        return String(decoding: b, as: UTF8.self)
    }

    @Test("mutated tokens and proofs never authenticate")
    func tokensAndProofs() throws {
        let f = try Fixture()
        let a = try f.agent("support-bot")
        let token = try f.token(a)
        var rng = SplitMix64(state: Self.seed)
        var refused = 0
        for i in 0..<Self.iterations {
            let proof = try a.signer.proof(
                method: "GET", url: f.cp.url(path: "/v1/whoami"), accessToken: token, now: f.clock.now, jti: "p\(i)")
            let mutateToken = i % 2 == 0
            let t = mutateToken ? Self.mutate(token, &rng) : token
            let p = mutateToken ? proof : Self.mutate(proof, &rng)
            if t == token && p == proof { continue }
            do {
                _ = try f.cp.authenticate(authorization: "DPoP \(t)", dpop: p, method: "GET", path: "/v1/whoami")
                Issue.record("a mutated \(mutateToken ? "token" : "proof") authenticated: \(mutateToken ? t : p)")
            } catch {
                refused += 1
            }
        }
        #expect(refused > 0)
    }

    @Test("mutated client assertions and token forms give OAuth errors")
    func tokenRequests() throws {
        let f = try Fixture()
        let a = try f.agent("support-bot")
        var rng = SplitMix64(state: Self.seed &+ 1)
        let codes: Set<String> = [
            "invalid_request", "invalid_client", "invalid_grant", "unsupported_grant_type", "invalid_scope",
            "invalid_target", "invalid_dpop_proof", "unauthorized_client", "invalid_key",
        ]
        for i in 0..<Self.iterations {
            let assertion = try ClientAssertion.sign(
                clientID: a.id, audience: f.cp.tokenEndpoint, key: a.key, now: f.clock.now, jti: "a\(i)")
            var form: [String: String] = [
                "grant_type": "client_credentials", "client_assertion_type": ClientAssertion.type,
                "client_assertion": Self.mutate(assertion, &rng),
            ]
            if i % 3 == 0 { form["scope"] = Self.mutate("route:tickets", &rng) }
            if i % 5 == 0 { form["audience"] = Self.mutate(f.cp.issuer, &rng) }
            let proof = try f.tokenProof(a)
            do throws(WardenError) {
                _ = try f.cp.token(form: form, dpop: proof)
            } catch {
                #expect(codes.contains(error.code.description), "\(error.code)")
            }
        }
    }

    @Test("mutated HTTP bodies: forms, enrollment JSON, SVID requests get 4xx, never a crash")
    func httpBodies() async throws {
        let f = try Fixture()
        let a = try f.agent("support-bot")
        let reg = try f.cp.register(manifest: f.manifest("other"))
        let key = P256.Signing.PrivateKey()
        let enroll = f.enrollBody(joinToken: reg.joinToken, key: key, digest: reg.agent.manifestDigest).serialized
        let form =
            "grant_type=client_credentials&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion=x.y.z&scope=route%3Atickets"
        var rng = SplitMix64(state: Self.seed &+ 2)
        let n = max(50, Self.iterations / 10)
        let forms = (0..<n).map { _ in Self.mutate(form, &rng) }
        let enrolls = (0..<n).map { _ in Self.mutate(enroll, &rng) }
        let csrs = (0..<n).map { _ in Self.mutate("{\"csr\":\"-----BEGIN CERTIFICATE REQUEST-----\\nMIIB\\n\"}", &rng) }
        try await f.app.test(.router) { client in
            for i in 0..<n {
                var h = HTTPFields()
                h[.contentType] = "application/x-www-form-urlencoded"
                try await client.execute(
                    uri: "/v1/token", method: .post, headers: h, body: ByteBuffer(string: forms[i])
                ) { #expect((400..<500).contains($0.status.code)) }
                try await client.execute(
                    uri: "/v1/enroll", method: .post, body: ByteBuffer(string: enrolls[i])
                ) { #expect((400..<500).contains($0.status.code)) }
                let token = try f.token(a)
                try await client.execute(
                    uri: "/v1/svid", method: .post,
                    headers: try f.authHeaders(a, token: token, method: "POST", path: "/v1/svid"),
                    body: ByteBuffer(string: csrs[i])
                ) { #expect((400..<500).contains($0.status.code)) }
            }
        }
    }

    @Test("mutated manifests and configurations parse or fail with a located error")
    func manifestsAndConfig() {
        let manifest = """
            name: support-bot
            owner: team-support@example.com
            roles: [support]
            model: {provider: example, name: m, digest: "sha256:\(String(repeating: "a", count: 64))"}
            tools: [tickets/search, tickets/read]
            peers: [kb-agent]
            routes: [tickets]
            """
        let config = """
            trust_domain: warden.local
            listen: 127.0.0.1:8443
            tokens: {access_ttl: 300s, svid_ttl: 1h, audiences: [x]}
            dpop: {require_nonce: false, max_age: 60s}
            tls: {listen: 127.0.0.1:8444}
            """
        var rng = SplitMix64(state: Self.seed &+ 3)
        for _ in 0..<Self.iterations {
            do {
                let m = try AgentManifest(parsing: Self.mutate(manifest, &rng), file: "m.yaml")
                // Whatever parses has a canonical form that parses to the same manifest.
                #expect(try AgentManifest(parsing: m.canonicalJSON, file: "m.json") == m)
            } catch {
                #expect(error.code == .invalidManifest)
                #expect(error.message.hasPrefix("m.yaml"))
            }
            do {
                _ = try WardenConfig(parsing: Self.mutate(config, &rng), file: "w.yaml")
            } catch {
                #expect(error.code == .invalidConfig || error.code == .invalidRequest)
                #expect(error.message.hasPrefix("w.yaml"))
            }
        }
    }
}
