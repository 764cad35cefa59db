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

@Suite("Token endpoint: client credentials and token exchange")
struct TokenEndpointTests {
    func post(_ f: Fixture, body: String, dpop: String?, contentType: String = "application/x-www-form-urlencoded")
        async throws -> (HTTPResponse.Status, JSONValue?)
    {
        try await f.app.test(.router) { client in
            var h = HTTPFields()
            h[.contentType] = contentType
            if let dpop { h[HTTPField.Name("DPoP")!] = dpop }
            return try await client.execute(uri: "/v1/token", method: .post, headers: h, body: ByteBuffer(string: body))
            {
                ($0.status, $0.json)
            }
        }
    }

    func encode(_ form: [String: String]) -> String { formBody(form) }

    @Test("client credentials over HTTP: a DPoP token bound to the agent's key")
    func clientCredentials() async throws {
        let f = try Fixture()
        let a = try f.agent("support-bot")
        let (status, json) = try await post(f, body: encode(try f.form(a)), dpop: try f.tokenProof(a))
        #expect(status == .ok)
        let j = try #require(json)
        #expect(j["token_type"]?.stringValue == "DPoP")
        #expect(j["expires_in"] == .number("300"))
        let c = try claims(try #require(j["access_token"]?.stringValue))
        #expect(c["sub"]?.stringValue == a.id)
        #expect(c["iss"]?.stringValue == f.cp.issuer)
        #expect(c["aud"]?.stringValue == f.cp.issuer)
        #expect(c["cnf"]?["jkt"]?.stringValue == a.signer.thumbprint)
        #expect(c["jti"]?.stringValue?.isEmpty == false)
        #expect(c["scope"]?.stringValue == "route:tickets tool:tickets/read")
    }

    @Test("bad token requests get the RFC 6749 error codes")
    func badRequests() async throws {
        let f = try Fixture()
        let a = try f.agent("support-bot")
        let other = P256.Signing.PrivateKey()
        func expect(
            _ body: String, _ dpop: String?, _ code: String, contentType: String = "application/x-www-form-urlencoded",
            _ note: Comment
        ) async throws {
            let (status, json) = try await post(f, body: body, dpop: dpop, contentType: contentType)
            #expect(json?["error"]?.stringValue == code, note)
            #expect(status == (code == "invalid_client" ? .unauthorized : .badRequest), note)
        }
        try await expect(
            encode(try f.form(a)), try f.tokenProof(a), "invalid_request", contentType: "application/json",
            "content type")
        try await expect(
            encode(try f.form(a, ["grant_type": "password"])), try f.tokenProof(a), "unsupported_grant_type", "grant")
        var noGrant = try f.form(a)
        noGrant["grant_type"] = nil
        try await expect(encode(noGrant), try f.tokenProof(a), "invalid_request", "no grant type")
        try await expect(
            encode(try f.form(a)) + "&grant_type=client_credentials", try f.tokenProof(a), "invalid_request",
            "duplicate parameter")
        try await expect(
            "grant_type=client_credentials&%zz=1", try f.tokenProof(a), "invalid_request", "bad percent escape")
        try await expect(
            encode(try f.form(a)) + "&scope=&scope=route%3Atickets", try f.tokenProof(a), "invalid_request",
            "duplicate parameter, first one empty")
        var noAssertion = try f.form(a)
        noAssertion["client_assertion"] = nil
        try await expect(encode(noAssertion), try f.tokenProof(a), "invalid_client", "no assertion")
        try await expect(
            encode(try f.form(a, ["client_assertion": "x.y.z"])), try f.tokenProof(a), "invalid_client",
            "garbage assertion")
        // An assertion signed by another key, for the right client.
        let forged = try ClientAssertion.sign(
            clientID: a.id, audience: f.cp.tokenEndpoint, key: other, now: f.clock.now)
        try await expect(
            encode(try f.form(a, ["client_assertion": forged])), try f.tokenProof(a), "invalid_client",
            "forged assertion")
        // Wrong audience, expired, too long-lived.
        let wrongAud = try ClientAssertion.sign(
            clientID: a.id, audience: "https://elsewhere/token", key: a.key, now: f.clock.now)
        try await expect(
            encode(try f.form(a, ["client_assertion": wrongAud])), try f.tokenProof(a), "invalid_client", "audience")
        let old = try ClientAssertion.sign(
            clientID: a.id, audience: f.cp.tokenEndpoint, key: a.key, now: f.clock.now - 400)
        try await expect(
            encode(try f.form(a, ["client_assertion": old])), try f.tokenProof(a), "invalid_client", "expired assertion"
        )
        let long = try ClientAssertion.sign(
            clientID: a.id, audience: f.cp.tokenEndpoint, key: a.key, now: f.clock.now, lifetime: 3600)
        try await expect(
            encode(try f.form(a, ["client_assertion": long])), try f.tokenProof(a), "invalid_client", "long assertion")
        // A replayed assertion.
        let once = try f.form(a, assertionJTI: "fixed-jti")
        let (ok, _) = try await post(f, body: encode(once), dpop: try f.tokenProof(a))
        #expect(ok == .ok)
        try await expect(encode(once), try f.tokenProof(a), "invalid_client", "assertion replay")
        // DPoP: missing, made with a key that is not the enrolled one, wrong htu.
        try await expect(encode(try f.form(a)), nil, "invalid_dpop_proof", "no proof")
        let otherProof = try DPoPProofSigner(key: other).proof(
            method: "POST", url: f.cp.tokenEndpoint, now: f.clock.now)
        try await expect(encode(try f.form(a)), otherProof, "invalid_dpop_proof", "proof by another key")
        let wrongURL = try a.signer.proof(method: "POST", url: f.cp.url(path: "/v1/whoami"), now: f.clock.now)
        try await expect(encode(try f.form(a)), wrongURL, "invalid_dpop_proof", "proof htu")
        // Scope and audience beyond the manifest.
        try await expect(
            encode(try f.form(a, ["scope": "route:billing"])), try f.tokenProof(a), "invalid_scope", "scope")
        try await expect(
            encode(try f.form(a, ["audience": "https://billing.example"])), try f.tokenProof(a), "invalid_target",
            "audience")
        // Unknown agent.
        let ghost = try ClientAssertion.sign(
            clientID: "spiffe://warden.local/agent/ghost", audience: f.cp.tokenEndpoint, key: a.key, now: f.clock.now)
        try await expect(
            encode(try f.form(a, ["client_assertion": ghost])), try f.tokenProof(a), "invalid_client", "unknown agent")
        // An oversized body.
        let (big, _) = try await post(f, body: String(repeating: "a=b&", count: 10_000), dpop: try f.tokenProof(a))
        #expect(big == .badRequest)
    }

    @Test("narrowed scope and a peer audience")
    func narrowing() throws {
        let f = try Fixture()
        let a = try f.agent("support-bot", peers: ["kb-agent"])
        let t = try f.token(a, ["scope": "route:tickets", "audience": "spiffe://warden.local/agent/kb-agent"])
        let c = try claims(t)
        #expect(c["scope"]?.stringValue == "route:tickets")
        #expect(c["aud"]?.stringValue == "spiffe://warden.local/agent/kb-agent")
    }

    @Test("token exchange: act chain, narrowing, consent, depth and lifetime limits")
    func exchange() async throws {
        let f = try Fixture { $0.maxDelegationDepth = 2 }
        let a = try f.agent("orchestrator", peers: ["worker"])
        let b = try f.agent("worker", peers: ["helper"])
        let c = try f.agent("helper")
        // A asks for a token meant for B (its consent to B acting for it).
        let forB = try f.token(a, ["audience": b.id])
        let exchangeForm = [
            "grant_type": ControlPlane.tokenExchangeGrant, "subject_token": forB,
            "subject_token_type": ControlPlane.accessTokenType,
        ]
        let r = try f.cp.token(form: try f.form(b, exchangeForm), dpop: try f.tokenProof(b))
        #expect(r.issuedTokenType == ControlPlane.accessTokenType)
        let claimsB = try claims(r.accessToken)
        #expect(claimsB["sub"]?.stringValue == a.id)
        #expect(claimsB["act"]?["sub"]?.stringValue == b.id)
        #expect(claimsB["cnf"]?["jkt"]?.stringValue == b.signer.thumbprint)
        #expect(claimsB["aud"]?.stringValue == f.cp.issuer)
        // Scopes narrowed to what both may hold (both manifests grant route:tickets and tool:tickets/read; peers differ).
        #expect(claimsB["scope"]?.stringValue == "route:tickets tool:tickets/read")
        #expect(claimsB["exp"]!.integerValue! <= (try claims(forB))["exp"]!.integerValue!)
        // B can use it: whoami shows the delegation.
        try await f.app.test(.router) { client in
            try await client.execute(
                uri: "/v1/whoami", method: .get, headers: try f.authHeaders(b, token: r.accessToken)
            ) { resp in
                #expect(resp.status == .ok)
                #expect(resp.json?["spiffe_id"]?.stringValue == b.id)
                #expect(resp.json?["delegation"] == .array([.string(a.id)]))
            }
        }
        // Widening the scope is refused.
        #expect(throws: WardenError(.invalidScope, "")) {
            try f.cp.token(
                form: try f.form(b, exchangeForm.merging(["scope": "peer:helper"]) { $1 }), dpop: try f.tokenProof(b))
        }
        // Without consent: C cannot exchange a token that names B.
        #expect(throws: WardenError(.invalidRequest, "")) {
            try f.cp.token(form: try f.form(c, exchangeForm), dpop: try f.tokenProof(c))
        }
        // B may address C, but A may not: the delegation cannot reach C.
        #expect(throws: WardenError(.invalidTarget, "")) {
            try f.cp.token(
                form: try f.form(b, exchangeForm.merging(["audience": c.id]) { $1 }), dpop: try f.tokenProof(b))
        }
    }

    @Test("token exchange: the delegator's audiences bound the delegated token")
    func exchangeAudience() throws {
        let f = try Fixture()
        let a = try f.agent("orchestrator", peers: ["worker"])
        let b = try f.agent("worker", peers: ["helper"])
        _ = try f.agent("helper")
        let forB = try f.token(a, ["audience": b.id])
        let form = [
            "grant_type": ControlPlane.tokenExchangeGrant, "subject_token": forB,
            "subject_token_type": ControlPlane.accessTokenType, "audience": "spiffe://warden.local/agent/helper",
        ]
        #expect(throws: WardenError(.invalidTarget, "")) {
            try f.cp.token(form: try f.form(b, form), dpop: try f.tokenProof(b))
        }
    }

    @Test("token exchange: chain depth is bounded and revoked delegators end the chain")
    func exchangeDepthAndRevocation() async throws {
        let f = try Fixture {
            $0.maxDelegationDepth = 1; $0.audiences = ["spiffe://warden.local/agent/c"]
        }
        let a = try f.agent("a", peers: ["b", "c"])
        let b = try f.agent("b", peers: ["c"])
        let c = try f.agent("c")
        let forB = try f.token(a, ["audience": b.id])
        let base = ["grant_type": ControlPlane.tokenExchangeGrant, "subject_token_type": ControlPlane.accessTokenType]
        // One hop is fine; the result, meant for C, cannot be exchanged by C (depth 2 > 1).
        let hop1 = try f.cp.token(
            form: try f.form(b, base.merging(["subject_token": forB, "audience": c.id]) { $1 }),
            dpop: try f.tokenProof(b))
        #expect(throws: WardenError(.invalidRequest, "")) {
            try f.cp.token(
                form: try f.form(c, base.merging(["subject_token": hop1.accessToken]) { $1 }), dpop: try f.tokenProof(c)
            )
        }
        // Revoking A ends B's delegated token at once.
        let delegated = try f.cp.token(
            form: try f.form(b, base.merging(["subject_token": forB]) { $1 }), dpop: try f.tokenProof(b))
        _ = try f.cp.transition(agent: "a", to: .revoked, reason: "compromised")
        try await f.app.test(.router) { client in
            try await client.execute(
                uri: "/v1/whoami", method: .get, headers: try f.authHeaders(b, token: delegated.accessToken)
            ) {
                #expect($0.status == .unauthorized)
            }
        }
    }

    @Test("signing key rotation: both keys verify during the overlap, JWKS publishes both, then only the new one")
    func rotation() async throws {
        let f = try Fixture { $0.signingKeyRotation = 3600 }
        let a = try f.agent("support-bot")
        let oldKid = f.cp.keys.current.kid
        #expect(try f.cp.rotateIfDue() == nil)
        f.clock.advance(3590)
        let before = try f.token(a)
        f.clock.advance(10)
        let newKid = try #require(try f.cp.rotateIfDue())
        #expect(newKid != oldKid)
        let after = try f.token(a)
        let kids = { (j: JSONValue) -> [String] in
            guard case .array(let keys)? = j["keys"] else { return [] }
            return keys.compactMap { $0["kid"]?.stringValue }
        }
        #expect(Set(kids(f.cp.jwks())) == [oldKid, newKid])
        #expect(try f.cp.authenticator.tokens.verify(after).agent == a.record.spiffeID)
        // The token issued just before the rotation still verifies.
        #expect(try f.cp.authenticator.tokens.verify(before).agent == a.record.spiffeID)
        // A restart keeps both keys.
        let reopened = try f.reopened()
        #expect(Set(kids(reopened.jwks())) == [oldKid, newKid])
        // After the overlap the old key is gone (from JWKS, the store and the disk).
        f.clock.advance(331)
        _ = try f.cp.rotateIfDue()
        #expect(kids(f.cp.jwks()) == [f.cp.keys.current.kid])
        #expect(!FileManager.default.fileExists(atPath: f.dir + "/keys/\(oldKid).key"))
        #expect(throws: WardenError(.invalidToken, "")) { try f.cp.authenticator.tokens.verify(before) }
    }
}

@Suite("Delegation narrowing across the whole chain (review findings)")
struct DelegationChainTests {
    @Test("a later hop cannot reach an audience the original subject may not, nor regain scopes it dropped")
    func chainNarrowing() throws {
        let f = try Fixture { $0.maxDelegationDepth = 3 }
        let a = try f.agent("a", peers: ["b"])
        let b = try f.agent("b", peers: ["c", "d"])
        let c = try f.agent("c", peers: ["d"])
        _ = try f.agent("d")
        let base = ["grant_type": ControlPlane.tokenExchangeGrant, "subject_token_type": ControlPlane.accessTokenType]
        // A consents to B with only route:tickets.
        let forB = try f.token(a, ["audience": b.id, "scope": "route:tickets"])
        // B passes it on to C (C is B's peer; A allows C? No: A's audiences do not include C).
        #expect(throws: WardenError(.invalidTarget, "")) {
            try f.cp.token(
                form: try f.form(b, base.merging(["subject_token": forB, "audience": c.id]) { $1 }),
                dpop: try f.tokenProof(b))
        }
        // Within the server audience, B's delegated token keeps only route:tickets.
        let hop = try f.cp.token(
            form: try f.form(b, base.merging(["subject_token": forB]) { $1 }), dpop: try f.tokenProof(b))
        #expect(try claims(hop.accessToken)["scope"]?.stringValue == "route:tickets")
        // A token that asked for no scopes delegates none.
        let none = try f.token(a, ["audience": b.id, "scope": " "])
        let hopNone = try f.cp.token(
            form: try f.form(b, base.merging(["subject_token": none]) { $1 }), dpop: try f.tokenProof(b))
        #expect(try claims(hopNone.accessToken)["scope"]?.stringValue == "")
        #expect(throws: WardenError(.invalidScope, "")) {
            try f.cp.token(
                form: try f.form(b, base.merging(["subject_token": none, "scope": "route:tickets"]) { $1 }),
                dpop: try f.tokenProof(b))
        }
    }

    @Test("manifest tool and route names cannot smuggle extra scopes")
    func scopeInjection() throws {
        #expect(throws: WardenError(.invalidManifest, "")) {
            try AgentManifest(parsing: "name: a\nowner: o\ntools: [\"a/b route:admin\"]\n", file: "m.yaml")
        }
        #expect(throws: WardenError(.invalidManifest, "")) {
            try AgentManifest(parsing: "name: a\nowner: o\nroutes: [\"x route:admin\"]\n", file: "m.yaml")
        }
    }

    @Test("an agent named like another agent's id never shadows it")
    func lookupPriority() throws {
        let f = try Fixture()
        let real = try f.agent("real")
        _ = try f.cp.register(manifest: f.manifest(real.record.id))
        #expect(try f.cp.agent(real.record.id).name == "real")
        #expect(try f.cp.agent(real.record.id).id == real.record.id)
    }

    @Test("an unknown join token is refused before its proof is checked (no replay-cache filling by strangers)")
    func strangersDoNotFillTheReplayCache() throws {
        let f = try Fixture()
        let key = P256.Signing.PrivateKey()
        let before = f.cp.authenticator.proofs.replayCache.count
        for _ in 0..<20 {
            #expect(throws: WardenError(.invalidGrant, "")) {
                try f.cp.enroll(
                    body: f.enrollBody(
                        joinToken: UUID().uuidString, key: key, digest: "sha256:" + String(repeating: "0", count: 64)),
                    dpop: try DPoPProofSigner(key: key).proof(
                        method: "POST", url: f.cp.enrollEndpoint, now: f.clock.now))
            }
        }
        #expect(f.cp.authenticator.proofs.replayCache.count == before)
    }
}
