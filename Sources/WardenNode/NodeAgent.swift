import Cedar
import Crypto
import Foundation
import Logging
import SwiftASN1
import Synchronization
import WardenClient
import WardenCore
import WardenIdentity
import WardenSidecar
import X509

/// The node's side of `warden node`: what Warden says this node attests (its agents and their selectors), the trust
/// bundles, and the X.509-SVIDs it holds for its agents (keys generated here, never sent anywhere but to the workload
/// that is entitled to them). ``sync()`` brings it up to date: it runs at start and every ``syncInterval``, renews
/// each SVID at half its lifetime, and tells the Workload API's streams when anything changed.
public final class NodeAgent: Sendable {
    /// One agent this node attests.
    public struct Entry: Sendable, Hashable {
        public let name: String
        public let spiffeID: String
        public let selectors: Set<String>
    }

    /// An X.509-SVID held for an agent.
    public struct Identity: Sendable, Hashable {
        public let spiffeID: String
        /// DER certificates, leaf first.
        public let chainDER: [UInt8]
        /// DER PKCS#8 private key.
        public let keyDER: [UInt8]
        public let issuedAt: Int64
        public let expiresAt: Int64

        /// When it is renewed: half way through its lifetime.
        public var renewAt: Int64 { issuedAt + (expiresAt - issuedAt) / 2 }
    }

    /// What the Workload API serves from, replaced as a whole on every change.
    public struct Snapshot: Sendable {
        public var trustDomain = ""
        public var entries: [Entry] = []
        public var identities: [String: Identity] = [:]
        /// The trust bundle: DER certificates of the roots.
        public var bundleDER: [UInt8] = []
        /// The JWT bundle: a JWKS of the `jwt-svid` keys, as JSON bytes.
        public var jwksJSON: [UInt8] = []
        /// The JWT bundle's keys by `kid`.
        public var jwtKeys: [String: P256.Signing.PublicKey] = [:]
        /// Bumped on every change.
        public var version = 0
        /// Whether the first sync succeeded.
        public var ready = false

        /// The trust domain's SPIFFE ID (`spiffe://<td>`), the bundles' key.
        public var trustDomainID: String { "spiffe://" + trustDomain }

        /// The entries whose selectors are all among `selectors`.
        public func entries(matching selectors: Set<String>) -> [Entry] {
            entries.filter { !$0.selectors.isEmpty && $0.selectors.isSubset(of: selectors) }
        }
    }

    let client: AgentClient
    let tokens: AgentTokens
    public let nodeID: String
    /// The lifetime asked for X.509-SVIDs (the server may shorten it); nil for the server's.
    public let svidTTL: Int64?
    /// The lifetime asked for JWT-SVIDs; nil for the server's.
    public let jwtTTL: Int64?
    public let syncInterval: Duration
    let logger: Logger
    let clock: @Sendable () -> Int64

    let state = Mutex(Snapshot())
    let watchers = Mutex<[UInt64: AsyncStream<Int>.Continuation]>([:])
    let nextWatcher = Atomic<UInt64>(0)
    /// JWT-SVIDs by agent and audiences, reused until half their lifetime.
    let jwtCache = Mutex<[String: (token: String, issuedAt: Int64, expiresAt: Int64)]>([:])
    let syncing = Mutex(false)

    public init(
        client: AgentClient, nodeID: String, svidTTL: Int64? = nil, jwtTTL: Int64? = nil,
        syncInterval: Duration = .seconds(5), logger: Logger,
        clock: @escaping @Sendable () -> Int64 = { Int64(Date().timeIntervalSince1970) }
    ) {
        self.client = client
        self.nodeID = nodeID
        self.tokens = AgentTokens(client: client, spiffeID: nodeID)
        self.svidTTL = svidTTL
        self.jwtTTL = jwtTTL
        self.syncInterval = syncInterval
        self.logger = logger
        self.clock = clock
    }

    public var snapshot: Snapshot { state.withLock { $0 } }

    /// A stream of snapshot versions: yields whenever the snapshot changes (the newest only, when a reader lags).
    public func changes() -> AsyncStream<Int> {
        let id = nextWatcher.add(1, ordering: .relaxed).oldValue
        let (stream, continuation) = AsyncStream<Int>.makeStream(bufferingPolicy: .bufferingNewest(1))
        watchers.withLock { $0[id] = continuation }
        continuation.onTermination = { [weak self] _ in self?.watchers.withLock { _ = $0.removeValue(forKey: id) } }
        return stream
    }

    func publish(_ version: Int) {
        for c in watchers.withLock({ Array($0.values) }) { c.yield(version) }
    }

    /// Calls Warden as the node: a DPoP token and proof; a refused token is renewed once.
    func call(_ method: String, _ path: String, json: JSONValue? = nil) async throws -> JSONValue {
        var refused: AgentTokens.Token?
        for attempt in 0..<2 {
            let token = try await tokens.token(refusing: refused)
            let body = json.map { Array($0.serialized.utf8) }
            let r = try await client.withProof(
                method, path, accessToken: token.value,
                headers: json == nil ? [] : [("Content-Type", "application/json")], body: { body })
            if r.status == 401 && attempt == 0 {
                refused = token
                continue
            }
            guard r.status == 200, let j = r.json else { throw WardenClientError(Self.describe(r, path)) }
            return j
        }
        throw WardenClientError("\(path): the node's token was refused twice")
    }

    static func describe(_ r: WardenResponse, _ path: String) -> String {
        let e = r.json?["error"]?.stringValue ?? "HTTP \(r.status)"
        let d = r.json?["error_description"]?.stringValue ?? ""
        return "\(path): \(e)\(d.isEmpty ? "" : ": " + d)"
    }

    /// Runs ``sync()`` now and every ``syncInterval`` until cancelled; a failed sync is logged and retried at the
    /// next tick (what was served stays, and expires on its own).
    public func run() async {
        while !Task.isCancelled {
            do { try await sync() } catch {
                logger.warning("node sync failed", metadata: ["error": "\(error)"])
            }
            try? await Task.sleep(for: syncInterval)
        }
    }

    /// Fetches the entries and bundles, obtains or renews the SVIDs that need it, and publishes the new snapshot when
    /// anything changed.
    public func sync() async throws {
        let j = try await call("GET", "/v1/node/entries")
        guard let td = j["trust_domain"]?.stringValue, case .array(let items)? = j["agents"],
            let bundlePEM = j["bundle"]?.stringValue
        else { throw WardenClientError("/v1/node/entries: unexpected response") }
        var entries: [Entry] = []
        for item in items {
            guard let name = item["name"]?.stringValue, let id = item["spiffe_id"]?.stringValue,
                case .array(let sels)? = item["selectors"]
            else { continue }
            entries.append(Entry(name: name, spiffeID: id, selectors: Set(sels.compactMap(\.stringValue))))
        }
        let bundle = try Self.der(ofPEMChain: bundlePEM)
        var jwtKeys: [String: P256.Signing.PublicKey] = [:]
        var jwks: [JSONValue] = []
        if case .array(let keys)? = j["jwks"]?["keys"] {
            for k in keys where k["use"]?.stringValue == "jwt-svid" {
                guard let kid = k["kid"]?.stringValue, let pub = try? ECPublicJWK(json: k).publicKey() else { continue }
                jwtKeys[kid] = pub
                jwks.append(k)
            }
        }
        let jwksJSON = Array(JSONValue.object([("keys", .array(jwks))]).serialized.utf8)

        let now = clock()
        let held = state.withLock { $0.identities }
        var identities: [String: Identity] = [:]
        for e in entries {
            if let i = held[e.name], i.spiffeID == e.spiffeID, now < i.renewAt {
                identities[e.name] = i
                continue
            }
            do {
                identities[e.name] = try await issue(e, now: now)
            } catch {
                logger.warning("SVID not renewed", metadata: ["agent": "\(e.name)", "error": "\(error)"])
                if let i = held[e.name], now < i.expiresAt { identities[e.name] = i }
            }
        }
        let entriesNow = entries
        let changed: Int? = state.withLock { s in
            let differs =
                !s.ready || s.trustDomain != td || s.entries != entriesNow || s.identities != identities
                || s.bundleDER != bundle || s.jwksJSON != jwksJSON
            guard differs else { return nil }
            s.trustDomain = td
            s.entries = entriesNow
            s.identities = identities
            s.bundleDER = bundle
            s.jwksJSON = jwksJSON
            s.jwtKeys = jwtKeys
            s.ready = true
            s.version += 1
            return s.version
        }
        // JWT-SVIDs of agents no longer served are dropped.
        let names = Set(entries.map(\.name))
        jwtCache.withLock { c in c = c.filter { names.contains(String($0.key.prefix { $0 != "\n" })) } }
        if let changed { publish(changed) }
    }

    /// A new key and its X.509-SVID for `entry`.
    func issue(_ entry: Entry, now: Int64) async throws -> Identity {
        let key = P256.Signing.PrivateKey()
        let csr = try CertificateSigningRequest(
            version: .v1, subject: try DistinguishedName { OrganizationName("SPIFFE") }, privateKey: .init(key),
            attributes: .init(), signatureAlgorithm: .ecdsaWithSHA256)
        var body: [(String, JSONValue)] = [
            ("agent", .string(entry.name)), ("csr", .string(try csr.serializeAsPEM().pemString)),
        ]
        if let svidTTL { body.append(("ttl", .number(String(svidTTL)))) }
        let j = try await call("POST", "/v1/node/svid", json: .object(body))
        guard let chain = j["svid"]?.stringValue, j["spiffe_id"]?.stringValue == entry.spiffeID,
            let exp = j["expires_at"]?.integerValue
        else { throw WardenClientError("/v1/node/svid: unexpected response") }
        guard exp > now else { throw WardenClientError("/v1/node/svid: the SVID has already expired") }
        return Identity(
            spiffeID: entry.spiffeID, chainDER: try Self.der(ofPEMChain: chain), keyDER: Array(key.derRepresentation),
            issuedAt: now, expiresAt: exp)
    }

    /// A JWT-SVID for `entry` and `audiences`, from the cache while it is in the first half of its lifetime.
    public func jwtSVID(for entry: Entry, audiences: [String]) async throws -> String {
        let key = entry.name + "\n" + audiences.sorted().joined(separator: "\n")
        let now = clock()
        if let c = jwtCache.withLock({ $0[key] }), now < c.issuedAt + (c.expiresAt - c.issuedAt) / 2 {
            return c.token
        }
        var body: [(String, JSONValue)] = [
            ("agent", .string(entry.name)), ("audience", .array(audiences.map { .string($0) })),
        ]
        if let jwtTTL { body.append(("ttl", .number(String(jwtTTL)))) }
        let j = try await call("POST", "/v1/node/jwt-svid", json: .object(body))
        guard let token = j["svid"]?.stringValue, let exp = j["expires_at"]?.integerValue,
            j["spiffe_id"]?.stringValue == entry.spiffeID
        else { throw WardenClientError("/v1/node/jwt-svid: unexpected response") }
        // A JWT-SVID for Warden's own token endpoint is a single-use client assertion: never handed out twice.
        if !audiences.contains(client.issuer + "/v1/token") {
            jwtCache.withLock { c in
                if c.count >= 4096 { c.removeAll() }
                c[key] = (token, now, exp)
            }
        }
        return token
    }

    /// The DER bytes of every certificate in a PEM text, concatenated in order.
    static func der(ofPEMChain pem: String) throws -> [UInt8] {
        let docs = try PEMDocument.parseMultiple(pemString: pem)
        guard !docs.isEmpty, docs.allSatisfy({ $0.discriminator == "CERTIFICATE" }) else {
            throw WardenClientError("expected PEM certificates")
        }
        return docs.flatMap(\.derBytes)
    }
}
