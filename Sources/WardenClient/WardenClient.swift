import AsyncHTTPClient
import Cedar
import Crypto
import Foundation
import NIOCore
import NIOHTTP1
import SwiftASN1
import WardenCore
import WardenIdentity
import X509

/// A response from a Warden server.
public struct WardenResponse: Sendable {
    public let status: Int
    public let headers: [(String, String)]
    public let body: [UInt8]

    public func header(_ name: String) -> String? {
        headers.first { $0.0.lowercased() == name.lowercased() }?.1
    }

    /// The body as JSON, or nil.
    public var json: JSONValue? { try? JSONValue.parse(body, maxDepth: 32) }

    /// The body as text.
    public var text: String { String(decoding: body, as: UTF8.self) }
}

/// HTTP to a Warden server (AsyncHTTPClient), with bounded responses and timeouts.
public struct WardenHTTP: Sendable {
    /// The server's base URL, without a trailing slash.
    public let base: String
    public var timeout: TimeAmount = .seconds(15)

    /// RFC 3986 unreserved characters (ASCII only: `CharacterSet.alphanumerics` would let non-ASCII letters through).
    static let unreserved = CharacterSet(
        charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")

    /// Percent-encodes everything but the unreserved characters (form values, path segments).
    public static func percentEncode(_ s: String) -> String {
        s.addingPercentEncoding(withAllowedCharacters: unreserved) ?? ""
    }

    public init(server: String) {
        var b = server
        while b.hasSuffix("/") { b.removeLast() }
        base = b
    }

    /// Throws unless requests may carry credentials (admin token, join token, access tokens) to `base`: https
    /// anywhere, plain http only to a loopback address or `localhost` (``Loopback/checkCredentialsAllowed(to:)``).
    public func checkCredentialsAllowed(path: String = "/") throws {
        try Loopback.checkCredentialsAllowed(to: base + path)
    }

    public func send(
        _ method: String, _ path: String, headers: [(String, String)] = [], body: [UInt8]? = nil
    ) async throws -> WardenResponse {
        try checkCredentialsAllowed(path: path)
        // A line break in a value (a token read with its newline) is refused here, without the value: the HTTP
        // client's own error would quote it, credential and all.
        for (name, value) in headers where value.utf8.contains(where: { $0 == 10 || $0 == 13 }) {
            throw WardenClientError("the \(name) header value contains a line break")
        }
        var request = HTTPClientRequest(url: base + path)
        request.method = HTTPMethod(rawValue: method)
        for (k, v) in headers { request.headers.add(name: k, value: v) }
        if let body { request.body = .bytes(ByteBuffer(bytes: body)) }
        let response = try await HTTPClient.shared.execute(request, timeout: timeout)
        let buffer = try await response.body.collect(upTo: 4 << 20)
        return WardenResponse(
            status: Int(response.status.code), headers: response.headers.map { ($0.name, $0.value) },
            body: Array(buffer.readableBytesView))
    }
}

/// Errors the client reports: the server's `error` and `error_description`, or a local problem.
public struct WardenClientError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }

    static func from(_ r: WardenResponse, doing what: String) -> WardenClientError {
        if let j = r.json, let e = j["error"]?.stringValue {
            return WardenClientError("\(what): HTTP \(r.status) \(e): \(j["error_description"]?.stringValue ?? "")")
        }
        return WardenClientError("\(what): HTTP \(r.status)")
    }
}

/// The agent side: enrollment, tokens (client assertion + DPoP, retrying once with a server nonce), SVIDs and calls.
public struct AgentClient: Sendable {
    public let http: WardenHTTP
    public let key: P256.Signing.PrivateKey
    public let signer: DPoPProofSigner
    /// Seconds since the epoch for proofs and assertions (the system clock; tests inject theirs).
    public let clock: @Sendable () -> Int64
    /// The URL Warden calls itself (its `issuer`): what proofs (`htu`) and client assertions (`aud`) name. The
    /// server URL by default; different when the client connects to Warden by another address than its public one.
    public let issuer: String

    public init(
        server: String, key: P256.Signing.PrivateKey, issuer: String? = nil,
        clock: @escaping @Sendable () -> Int64 = { Int64(Date().timeIntervalSince1970) }
    ) {
        http = WardenHTTP(server: server)
        self.key = key
        signer = DPoPProofSigner(key: key)
        self.clock = clock
        self.issuer = issuer.map { WardenHTTP(server: $0).base } ?? http.base
    }

    static func formEncode(_ pairs: [(String, String)]) -> [UInt8] {
        Array(
            pairs.map { k, v in WardenHTTP.percentEncode(k) + "=" + WardenHTTP.percentEncode(v) }.joined(separator: "&")
                .utf8)
    }

    /// Sends a request with a fresh DPoP proof; when the server answers `use_dpop_nonce`, retries once with its nonce.
    public func withProof(
        _ method: String, _ path: String, accessToken: String? = nil, headers: [(String, String)] = [],
        body: @Sendable () throws -> [UInt8]? = { nil }
    ) async throws -> WardenResponse {
        var nonce: String?
        for _ in 0..<2 {
            var h = headers
            h.append(
                (
                    "DPoP",
                    try signer.proof(
                        method: method, url: issuer + path, accessToken: accessToken, nonce: nonce, now: clock())
                ))
            if let accessToken { h.append(("Authorization", "DPoP \(accessToken)")) }
            let r = try await http.send(method, path, headers: h, body: try body())
            if let n = r.header("DPoP-Nonce"), nonce == nil, r.status == 400 || r.status == 401,
                r.json?["error"]?.stringValue == "use_dpop_nonce"
                    || (r.header("WWW-Authenticate") ?? "").contains("use_dpop_nonce")
            {
                nonce = n
                continue
            }
            return r
        }
        throw WardenClientError("the server kept asking for a new DPoP nonce")
    }

    /// `POST /v1/enroll` with the join token, this key and the attestation evidence.
    public func enroll(joinToken: String, evidence: AttestationEvidence) async throws -> JSONValue {
        var att: [(String, JSONValue)] = [("manifest_digest", .string(evidence.manifestDigest))]
        if let b = evidence.binarySHA256 { att.append(("binary_sha256", .string(b))) }
        let body = JSONValue.object([
            ("join_token", .string(joinToken)), ("jwk", signer.jwk.json), ("attestation", .object(att)),
        ])
        let r = try await withProof(
            "POST", "/v1/enroll", headers: [("Content-Type", "application/json")],
            body: { Array(body.serialized.utf8) })
        guard r.status == 200, let j = r.json else { throw WardenClientError.from(r, doing: "enrollment") }
        return j
    }

    /// `POST /v1/token` (client credentials): a DPoP-bound access token for `spiffeID`.
    public func token(spiffeID: String, audience: String? = nil, scope: String? = nil) async throws -> JSONValue {
        var form: [(String, String)] = [("grant_type", "client_credentials")]
        if let audience { form.append(("audience", audience)) }
        if let scope { form.append(("scope", scope)) }
        return try await tokenRequest(spiffeID: spiffeID, form: form)
    }

    /// `POST /v1/token` (RFC 8693 token exchange): act for the holder of `subjectToken`.
    public func exchange(spiffeID: String, subjectToken: String, audience: String? = nil, scope: String? = nil)
        async throws -> JSONValue
    {
        var form: [(String, String)] = [
            ("grant_type", "urn:ietf:params:oauth:grant-type:token-exchange"), ("subject_token", subjectToken),
            ("subject_token_type", "urn:ietf:params:oauth:token-type:access_token"),
        ]
        if let audience { form.append(("audience", audience)) }
        if let scope { form.append(("scope", scope)) }
        return try await tokenRequest(spiffeID: spiffeID, form: form)
    }

    /// `POST /v1/token` (client credentials) with a JWT-SVID as the client assertion (`jwt-spiffe`,
    /// draft-ietf-oauth-spiffe-client-auth): a token bound to this client's key, for the SVID's agent.
    public func token(jwtSVID: String) async throws -> JSONValue {
        let body = Self.formEncode([
            ("grant_type", "client_credentials"),
            ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-spiffe"),
            ("client_assertion", jwtSVID),
        ])
        let r = try await withProof(
            "POST", "/v1/token", headers: [("Content-Type", "application/x-www-form-urlencoded")], body: { body })
        guard r.status == 200, let j = r.json else { throw WardenClientError.from(r, doing: "token request") }
        return j
    }

    func tokenRequest(spiffeID: String, form: [(String, String)]) async throws -> JSONValue {
        let endpoint = issuer + "/v1/token"
        let key = self.key
        let clock = self.clock
        let r = try await withProof(
            "POST", "/v1/token", headers: [("Content-Type", "application/x-www-form-urlencoded")],
            body: {
                let assertion = try ClientAssertion.sign(
                    clientID: spiffeID, audience: endpoint, key: key, now: clock())
                return Self.formEncode(
                    form + [("client_assertion_type", ClientAssertion.type), ("client_assertion", assertion)])
            })
        guard r.status == 200, let j = r.json else { throw WardenClientError.from(r, doing: "token request") }
        return j
    }

    /// `GET /v1/whoami` with `accessToken`.
    public func whoami(accessToken: String) async throws -> JSONValue {
        let r = try await withProof("GET", "/v1/whoami", accessToken: accessToken)
        guard r.status == 200, let j = r.json else { throw WardenClientError.from(r, doing: "whoami") }
        return j
    }

    /// `POST /v1/svid`: a new P-256 key and its X.509-SVID. Returns (key, response JSON).
    public func svid(accessToken: String, spiffeID: String) async throws -> (P256.Signing.PrivateKey, JSONValue) {
        let svidKey = P256.Signing.PrivateKey()
        let csr = try CertificateSigningRequest(
            version: .v1, subject: try DistinguishedName { OrganizationName("SPIFFE") },
            privateKey: .init(svidKey), attributes: .init(), signatureAlgorithm: .ecdsaWithSHA256)
        let pem = try csr.serializeAsPEM().pemString
        let body = JSONValue.object([("csr", .string(pem))])
        let r = try await withProof(
            "POST", "/v1/svid", accessToken: accessToken, headers: [("Content-Type", "application/json")],
            body: { Array(body.serialized.utf8) })
        guard r.status == 200, let j = r.json else { throw WardenClientError.from(r, doing: "SVID request") }
        return (svidKey, j)
    }
}

/// The admin API with the admin token.
public struct AdminClient: Sendable {
    public let http: WardenHTTP
    let token: String

    public init(server: String, token: String) {
        http = WardenHTTP(server: server)
        self.token = token
    }

    /// The admin token, for requests made with ``http`` directly (streams, non-JSON answers).
    public var tokenValue: String { token }

    /// Sends an admin request; a non-2xx answer throws with the server's error.
    public func call(_ method: String, _ path: String, json: JSONValue? = nil, raw: [UInt8]? = nil) async throws
        -> JSONValue
    {
        var headers = [("Authorization", "Bearer \(token)")]
        if json != nil { headers.append(("Content-Type", "application/json")) }
        let r = try await http.send(method, path, headers: headers, body: raw ?? json.map { Array($0.serialized.utf8) })
        guard (200..<300).contains(r.status), let j = r.json else {
            throw WardenClientError.from(r, doing: "\(method) \(path)")
        }
        return j
    }
}
