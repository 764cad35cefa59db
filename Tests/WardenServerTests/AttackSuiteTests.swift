import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing
import WardenCore
import WardenIdentity
import WardenTestSupport

@testable import WardenControlPlane
@testable import WardenGateway
@testable import WardenServer

/// The attack review's families, kept as a seeded suite against a live gateway: forged and mutated credentials,
/// header tricks, admin API abuse and request smuggling. Bounded: `WARDEN_FUZZ_SCALE` multiplies the rounds (default
/// 1), `WARDEN_FUZZ_SEED` changes the seed. Every family checks what the upstream actually received.
@Suite("Attack suite (seeded, live gateway)")
struct AttackSuiteTests {
    static var scale: Int { max(1, ProcessInfo.processInfo.environment["WARDEN_FUZZ_SCALE"].flatMap(Int.init) ?? 1) }
    static var seed: UInt64 { ProcessInfo.processInfo.environment["WARDEN_FUZZ_SEED"].flatMap(UInt64.init) ?? 20261205 }

    @Test("mutated, forged and replayed credentials never reach the upstream")
    func credentials() async throws {
        try await withGateway { env in
            let a = try env.f.agent("support-bot")
            let other = P256.Signing.PrivateKey()
            let token = try env.token(a)
            var rng = SplitMix64(state: Self.seed)
            let url = env.f.cp.url(path: "/r/tickets/x")
            let replayed = try a.signer.proof(method: "GET", url: url, accessToken: token, now: env.f.clock.now)
            var h = HTTPFields()
            h[.authorization] = "DPoP \(token)"
            h[HTTPField.Name("DPoP")!] = replayed
            #expect(try await env.client.execute(uri: "/r/tickets/x", method: .get, headers: h).status == .ok)
            let served = env.upstream.requests.count
            for i in 0..<(60 * Self.scale) {
                var t = token
                var p = try a.signer.proof(method: "GET", url: url, accessToken: token, now: env.f.clock.now)
                switch i % 8 {
                case 0: t = IdentityFuzzTests.mutate(token, &rng)
                case 1: p = IdentityFuzzTests.mutate(p, &rng)
                case 2: p = replayed  // the same proof again
                case 3:  // another key's proof (a stolen token)
                    p = try DPoPProofSigner(key: other).proof(
                        method: "GET", url: url, accessToken: token, now: env.f.clock.now)
                case 4:  // a proof for another method or URL
                    p = try a.signer.proof(method: "POST", url: url, accessToken: token, now: env.f.clock.now)
                case 5:
                    p = try a.signer.proof(
                        method: "GET", url: env.f.cp.url(path: "/r/billing/x"), accessToken: token, now: env.f.clock.now
                    )
                case 6:  // alg none: the header rewritten, the signature dropped
                    let parts = p.split(separator: ".")
                    p = Base64URL.encode(Array(#"{"typ":"dpop+jwt","alg":"none"}"#.utf8)) + "." + parts[1] + "."
                default:  // stale and future proofs
                    p = try a.signer.proof(
                        method: "GET", url: url, accessToken: token,
                        now: env.f.clock.now + (rng.next() % 2 == 0 ? -3600 : 3600))
                }
                var h = HTTPFields()
                h[.authorization] = (i % 16 == 15 ? "Bearer " : "DPoP ") + t
                h[HTTPField.Name("DPoP")!] = p
                let r = try await env.client.execute(uri: "/r/tickets/x", method: .get, headers: h)
                #expect(r.status != .ok, "case \(i % 8) got through")
                #expect([400, 401, 403, 429].contains(r.status.code), "case \(i % 8): \(r.status)")
            }
            #expect(env.upstream.requests.count == served)
        }
    }

    @Test("header tricks: whatever the agent sends, the upstream sees Warden's identity and forwarding headers only")
    func headers() async throws {
        try await withGateway { env in
            let a = try env.f.agent("support-bot")
            var rng = SplitMix64(state: Self.seed &+ 1)
            let names = [
                "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "X-Forwarded-Prefix", "X-Forwarded-Uri",
                "Forwarded", "X-Real-IP", "True-Client-IP", "CF-Connecting-IP", "X-Warden-Agent", "X-Warden-Subject",
                "X-Warden-Trust", "X-Original-URL", "X-Rewrite-URL", "X-Client-IP", "Via", "X-Envoy-Original-Path",
                "x-forwarded-for", "X-FORWARDED-HOST",
            ]
            for _ in 0..<(25 * Self.scale) {
                var extra = HTTPFields()
                for _ in 0..<Int(rng.next() % 4 + 1) {
                    let name = names[Int(rng.next() % UInt64(names.count))]
                    extra.append(HTTPField(name: HTTPField.Name(name)!, value: "evil-\(rng.next() % 1000)"))
                }
                let r = try await env.call(a, .get, "/r/tickets/h", headers: extra)
                #expect(r.status == .ok)
                let seen = try #require(env.upstream.requests.last)
                for (name, value) in seen.headers {
                    #expect(!value.contains("evil-"), "\(name): \(value) reached the upstream")
                }
                #expect(seen.headers("X-Forwarded-For") == ["127.0.0.1"])
                #expect(seen.headers("X-Warden-Agent") == [a.id])
            }
        }
    }

    @Test("admin API abuse: no, forged and near-miss admin tokens get 401 on every admin endpoint")
    func adminAbuse() async throws {
        try await withGateway { env in
            let real = try String(contentsOfFile: env.f.dir + "/admin.token", encoding: .utf8)
                .trimmingCharacters(in: .whitespacesAndNewlines)
            var rng = SplitMix64(state: Self.seed &+ 2)
            let endpoints: [(HTTPRequest.Method, String)] = [
                (.get, "/v1/admin/agents"), (.post, "/v1/admin/agents"), (.get, "/v1/admin/audit/entries"),
                (.post, "/v1/admin/policies/reload"), (.get, "/v1/admin/risk"), (.get, "/v1/admin/secrets"),
                (.post, "/v1/admin/agents/support-bot/quarantine"), (.post, "/v1/admin/keys/rotate"),
            ]
            let metricsToken = try String(contentsOfFile: env.f.dir + "/metrics.token", encoding: .utf8)
                .trimmingCharacters(in: .whitespacesAndNewlines)
            for i in 0..<(40 * Self.scale) {
                let (method, path) = endpoints[i % endpoints.count]
                var h = HTTPFields()
                switch i % 5 {
                case 0: break
                case 1: h[.authorization] = "Bearer " + IdentityFuzzTests.mutate(real, &rng)
                case 2: h[.authorization] = "Bearer " + String(real.dropLast())
                case 3: h[.authorization] = "Bearer " + metricsToken  // the scrape token is not an admin token
                default: h[.authorization] = "Basic " + real
                }
                let r = try await env.client.execute(
                    uri: path, method: method, headers: h, body: ByteBuffer(string: "{}"))
                #expect(r.status == .unauthorized || r.status == .notFound, "\(method) \(path): \(r.status)")
            }
            // Nothing was registered, rotated or reloaded by any of them.
            #expect(try env.f.cp.store.agents().isEmpty)
        }
    }

    @Test("request smuggling: conflicting framing is refused and nothing reaches the upstream")
    func smuggling() async throws {
        try await withGateway { env in
            let a = try env.f.agent("support-bot")
            let port = try #require(env.client.port)
            let token = try env.token(a)
            let attempts = [
                "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /r/tickets/smuggled HTTP/1.1\r\n\r\n",
                "Content-Length: 5\r\nContent-Length: 40\r\n\r\nhello",
                "Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n",
                "Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
                "Content-Length: -1\r\n\r\n",
                "Content-Length: 1e3\r\n\r\n",
            ]
            for (i, framing) in attempts.enumerated() {
                let proof = try a.signer.proof(
                    method: "POST", url: env.f.cp.url(path: "/r/tickets/s\(i)"), accessToken: token,
                    now: env.f.clock.now)
                let s = try RawSocket(from: "127.0.0.1", to: port)
                s.send(
                    "POST /r/tickets/s\(i) HTTP/1.1\r\nHost: x\r\nAuthorization: DPoP \(token)\r\nDPoP: \(proof)\r\n"
                        + framing)
                let answer = await s.answer(within: 3)
                #expect(!answer.hasPrefix("HTTP/1.1 200"), "framing \(i) was served: \(answer.prefix(60))")
            }
            #expect(!env.upstream.requests.contains { $0.path.contains("smuggled") })
            #expect(env.upstream.requests.isEmpty)
        }
    }
}
