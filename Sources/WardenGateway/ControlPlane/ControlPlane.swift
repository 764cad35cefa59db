import Cedar
import Crypto
import Foundation
import SwiftASN1
import Synchronization
import WardenAudit
import WardenCore
import WardenIdentity
import WardenRisk
import WardenStore
import X509

/// The result of registering an agent (and of issuing it a new join token).
public struct Registration: Sendable {
    public let agent: AgentRecord
    /// The single-use join token; shown once, stored only as its SHA-256.
    public let joinToken: String
    public let expiresAt: Int64

    public var json: JSONValue {
        .object([
            ("agent_id", .string(agent.id)), ("spiffe_id", .string(agent.spiffeID.description)),
            ("join_token", .string(joinToken)), ("expires_at", .number(String(expiresAt))),
            ("manifest_digest", .string(agent.manifestDigest)),
        ])
    }
}

/// An access token response (RFC 6749 §5.1, RFC 9449 `token_type: DPoP`).
public struct TokenResponse: Sendable {
    public let accessToken: String
    public let expiresIn: Int64
    public let scope: String?
    /// Set for token exchange (RFC 8693 §2.2.1).
    public let issuedTokenType: String?
    /// What the audit record names: the token's id, subject, `act` chain and audience.
    public let contents: AccessTokenContents

    public var json: JSONValue {
        var pairs: [(String, JSONValue)] = [
            ("access_token", .string(accessToken)), ("token_type", .string("DPoP")),
            ("expires_in", .number(String(expiresIn))),
        ]
        if let scope { pairs.append(("scope", .string(scope))) }
        if let issuedTokenType { pairs.append(("issued_token_type", .string(issuedTokenType))) }
        return .object(pairs)
    }
}

/// A request's authenticated agent: the verified token claims and the agent's current record.
public struct AuthenticatedAgent: Sendable {
    public let claims: AccessTokenClaims
    public let agent: AgentRecord
}

/// The control plane: agents and their lifecycle, enrollment with attestation, the token endpoint (client credentials
/// and token exchange), request authentication, SVIDs, revocation and signing-key rotation. The HTTP layer and the
/// offline CLI are thin shells over it.
public final class ControlPlane: Sendable {
    public static let tokenExchangeGrant = "urn:ietf:params:oauth:grant-type:token-exchange"
    public static let accessTokenType = "urn:ietf:params:oauth:token-type:access_token"
    public static let jwtTokenType = "urn:ietf:params:oauth:token-type:jwt"

    public let config: WardenConfig
    public let store: SQLiteStore
    /// The tamper-evident audit log (in the store's database).
    public let audit: AuditLog
    public let ca: CertificateAuthority
    public let keys: SigningKeyRing
    public let agents: AgentDirectory
    public let revocations: RevocationList
    public let authenticator: RequestAuthenticator
    /// Per-source limits on unauthenticated work, and the summaries of refusals that name no agent.
    public let sources: SourceGuard

    /// Writes the refusal summaries whose window has ended (all of them at shutdown).
    public func flushRefusalSummaries(all: Bool = false) {
        for (source, summary) in sources.due(now: now(), all: all) {
            do throws(WardenError) {
                try audit.submit(SourceGuard.event(source: source, summary))
            } catch {
                // Kept (and merged with what comes) for the next flush: the counts are not lost to a failing log.
                sources.requeue(source, summary)
            }
        }
    }

    /// Whether client assertion ids are kept in the store (across restarts).
    let guardsAssertions: Bool
    /// The DPoP nonces of this process (the restart guard's).
    let processNonces: DPoPNonceSource
    /// The Cedar policy set (hot-reloadable).
    public let policies: PolicyEngine
    /// Brokered upstream credentials.
    public let secrets: SecretStore
    /// Trust scores as policies see them.
    public let trust: TrustScores
    /// The risk engine's side of the control plane (events in, responses out).
    public let risk = RiskHub()
    public let dataPath: String
    public let now: @Sendable () -> Int64
    /// The issuer and base URL (`config.issuer`, computed once), and the endpoints DPoP proofs name.
    public let issuer: String
    public let tokenEndpoint: String
    public let enrollEndpoint: String
    /// The trust bundle (the root CA) as PEM, served with every SVID.
    let bundlePEM: String
    /// SHA-256 of the admin token, computed once: requests are compared against it in constant time.
    let adminTokenDigest: SHA256.Digest
    let metricsTokenDigest: SHA256.Digest
    let assertionReplay: ReplayCache
    /// Identity providers whose user tokens may be exchanged (by issuer).
    let trustedIssuers: [String: TrustedIssuer]
    /// Serialises the writes that change hot-path state (store write and in-memory update together), so two
    /// concurrent changes can never leave memory disagreeing with the store (a revoke overtaken by an activate).
    let writes = Mutex(())
    /// Set while a policy reload runs.
    let reloading = Mutex(false)

    /// Opens the data directory named by `config` (creating it on first start).
    public convenience init(
        config: WardenConfig, now: @escaping @Sendable () -> Int64 = { Int64(Date().timeIntervalSince1970) },
        auditClock: @escaping @Sendable () -> Int64 = AuditLog.systemClock, guardRestart: Bool = false
    ) throws(WardenError) {
        let dir = try DataDirectory.open(
            path: config.data, trustDomain: config.trustDomain, now: now(), audit: Self.auditSettings(config),
            auditClock: auditClock)
        try self.init(config: config, directory: dir, now: now, guardRestart: guardRestart)
    }

    /// The audit log's settings for `config`.
    public static func auditSettings(_ config: WardenConfig) -> AuditLog.Settings {
        var s = AuditLog.Settings(issuer: config.issuer, origin: config.trustDomain + "/audit")
        s.checkpointEvery = config.audit.checkpointEvery
        s.checkpointInterval = config.audit.checkpointInterval
        return s
    }

    /// `guardRestart` (what `warden serve` sets): proofs and client assertions accepted before this process started
    /// are not accepted again (`DPoPVerifier.StartGuard`, and assertion ids kept in the store for their lifetime).
    public init(
        config: WardenConfig, directory: DataDirectory, now: @escaping @Sendable () -> Int64, guardRestart: Bool = false
    ) throws(WardenError) {
        self.config = config
        self.store = directory.store
        self.audit = directory.audit
        self.ca = directory.ca
        self.dataPath = directory.path
        self.adminTokenDigest = SHA256.hash(data: Array(directory.adminToken.utf8))
        self.metricsTokenDigest = SHA256.hash(data: Array(directory.metricsToken.utf8))
        self.now = now
        self.issuer = config.issuer
        self.tokenEndpoint = config.issuer + "/v1/token"
        self.enrollEndpoint = config.issuer + "/v1/enroll"
        do { self.bundlePEM = try directory.ca.bundlePEM() } catch {
            throw WardenError(.invalidConfig, "the root certificate cannot be encoded")
        }
        // A retired key verifies for the longest token lifetime plus skew, then leaves the JWKS.
        self.keys = try SigningKeyRing(
            entries: directory.signingKeys, overlap: config.accessTTL + config.clockSkew, now: now)
        let trust = TrustScores()
        self.trust = trust
        self.agents = AgentDirectory(try directory.store.agents(), trust: trust)
        self.revocations = RevocationList()
        for r in try directory.store.revokedTokens(now: now()) { revocations.revoke(jti: r.jti, until: r.until) }
        var tokens = AccessTokenVerifier(
            key: { [keys] kid in keys.publicKey(kid: kid) }, issuer: config.issuer, audience: config.issuer, now: now)
        tokens.skew = config.clockSkew
        tokens.maxLifetime = config.accessTTL
        var proofs = DPoPVerifier(
            // One key may hold a tenth of the cache (with the defaults: about 2,200 proofs a second sustained in all,
            // 220 for one key).
            replayCache: ReplayCache(
                capacity: config.dpopReplayCacheSize, ttlSeconds: config.dpopMaxAge + config.clockSkew + 1,
                perPartitionCapacity: max(1, config.dpopReplayCacheSize / 10)),
            now: now)
        proofs.maxAge = config.dpopMaxAge
        proofs.skew = min(config.clockSkew, 5)
        // Required nonces come from the data directory's key (replicas sharing it accept each other's); the restart
        // guard's are this process's own (that key mixed with a random salt), so none issued before a restart is
        // good after it and such a nonce proves that a proof was made for this process.
        let salt = SymmetricKey(size: .bits256).withUnsafeBytes { Array($0) }
        let processNonces = DPoPNonceSource(
            key: SymmetricKey(data: Array(HMAC<SHA256>.authenticationCode(for: salt, using: directory.nonceKey))))
        self.processNonces = processNonces
        let sharedNonces = DPoPNonceSource(key: directory.nonceKey)
        if config.dpopRequireNonce { proofs.nonces = sharedNonces }
        self.guardsAssertions = guardRestart
        self.sources = SourceGuard(limits: config.limits.perSource)
        if guardRestart {
            // From the later of now and the newest audit entry (every accepted call wrote one): a clock stepped back
            // across the restart does not reopen the window in which a proof accepted before it could be replayed.
            let lastWritten = (try directory.audit.latestTime()).map { $0 / 1_000_000 + 1 } ?? 0
            proofs.startGuard = .init(notBefore: max(now(), lastWritten) + proofs.skew, nonces: processNonces)
        }
        self.authenticator = RequestAuthenticator(tokens: tokens, proofs: proofs)
        var trusted: [String: TrustedIssuer] = [:]
        for (iss, file) in config.subjectIssuers {
            let text = try SecureFile.read(file, maxBytes: 256 * 1024)
            let jwks: JSONValue
            do { jwks = try JSONValue.parse(text) } catch {
                throw WardenError(.invalidConfig, "\(file): not JSON: \(error.message)")
            }
            trusted[iss] = try TrustedIssuer(issuer: iss, jwks: jwks)
        }
        self.trustedIssuers = trusted
        self.secrets = try SecretStore(store: directory.store, key: directory.secretsKey)
        if config.policies == nil { try PolicyEngine.seedDemo(directory.path + "/policies") }
        self.policies = try PolicyEngine(sources: config.policySources, now: now())
        audit.use(signer: { [keys] in keys.current })
        let loaded = policies.snapshot
        try? audit.submit(
            AuditEvent(
                kind: .system, action: "policy.load", actor: "system", resource: "policies",
                message: "\(loaded.count) policies from \(loaded.files.count) files",
                details: [("digest", loaded.digest)]))
        // One agent may hold 1% of the assertion cache (about 3 token requests a second sustained, far above the
        // need of tokens that live five minutes).
        self.assertionReplay = ReplayCache(
            capacity: 100_000, ttlSeconds: 300 + 2 * config.clockSkew + 1, perPartitionCapacity: 1_000)
        try pruneSigningKeys()
    }

    // MARK: URLs

    /// The URL of a request path on this server, as DPoP `htu` must name it.
    public func url(path: String) -> String { issuer + path }

    /// The nonce to send in `DPoP-Nonce`, when nonces are required.
    /// Also while proofs made before the start may still be presented (`DPoPVerifier.StartGuard`): a client that
    /// was refused for that retries with it.
    public func currentNonce() -> String? {
        let p = authenticator.proofs
        let t = now()
        if let g = p.startGuard, t < g.notBefore + p.maxAge { return processNonces.current(now: t) }
        return p.nonces?.current(now: t)
    }

    /// Whether proofs made before this process started could still be presented without a nonce: until then
    /// `/readyz` says the server is not ready (RFC 9449 clients still get through, with one nonce round trip).
    public var inStartWindow: Bool {
        guard let g = authenticator.proofs.startGuard else { return false }
        return now() < g.notBefore
    }

    // MARK: Admin

    /// Whether `authorization` is `Bearer <admin token>` (compared in constant time).
    public func isAdmin(_ authorization: String?) -> Bool {
        guard let authorization, authorization.count > 7, authorization.prefix(7).lowercased() == "bearer " else {
            return false
        }
        // Digests of equal length, compared by swift-crypto's constant-time digest equality.
        return SHA256.hash(data: Array(authorization.dropFirst(7).utf8)) == adminTokenDigest
    }

    /// Whether `authorization` may read the per-agent metrics: `Bearer <metrics token>` or the admin token.
    public func mayReadAgentMetrics(_ authorization: String?) -> Bool {
        guard let authorization, authorization.count > 7, authorization.prefix(7).lowercased() == "bearer " else {
            return false
        }
        let digest = SHA256.hash(data: Array(authorization.dropFirst(7).utf8))
        return digest == metricsTokenDigest || digest == adminTokenDigest
    }

    static func hashJoinToken(_ token: String) -> String { Attestation.hex(SHA256.hash(data: Array(token.utf8))) }

    /// Registers an agent from its manifest: state pending, a single-use join token.
    public func register(manifest: AgentManifest, actor: String = "admin") throws(WardenError) -> Registration {
        let t = now()
        let id = try SPIFFEID.agent(manifest.name, trustDomain: config.trustDomain)
        let record = AgentRecord(
            id: UUID().uuidString.lowercased(), spiffeID: id, manifest: manifest,
            manifestDigest: Attestation.manifestDigest(manifest), state: .pending, createdAt: t, updatedAt: t)
        let joinToken = DataDirectory.randomToken(bytes: 32)
        let expires = t + config.joinTokenTTL
        try writes.withLock { _ throws(WardenError) in
            try store.register(
                record, joinTokenHash: Self.hashJoinToken(joinToken), joinTokenExpiresAt: expires, actor: actor)
            agents.update(record)
        }
        return Registration(agent: record, joinToken: joinToken, expiresAt: expires)
    }

    /// Finds an agent by id, name or SPIFFE ID.
    public func agent(_ ref: String) throws(WardenError) -> AgentRecord {
        guard let r = try store.agent(ref) else { throw WardenError(.notFound, "no agent '\(ref)'") }
        return r
    }

    /// A new join token for a pending agent (after an expired token or a failed attestation).
    public func newJoinToken(agent ref: String, actor: String = "admin") throws(WardenError) -> Registration {
        let r = try agent(ref)
        let token = DataDirectory.randomToken(bytes: 32)
        let t = now()
        try store.issueJoinToken(
            agentID: r.id, hash: Self.hashJoinToken(token), expiresAt: t + config.joinTokenTTL, now: t, actor: actor)
        return Registration(agent: r, joinToken: token, expiresAt: t + config.joinTokenTTL)
    }

    /// Moves an agent through its lifecycle (quarantine, reactivate, revoke, decommission); applies to the next
    /// request.
    public func transition(agent ref: String, to state: AgentState, reason: String, actor: String = "admin")
        throws(WardenError) -> AgentRecord
    {
        try Self.checkReason(reason)
        let r = try agent(ref)
        if state == .active && r.state == .pending {
            throw WardenError(.conflict, "a pending agent becomes active by enrolling, not by an admin action")
        }
        return try writes.withLock { _ throws(WardenError) in
            let updated = try store.transition(agentID: r.id, to: state, actor: actor, reason: reason, now: now())
            agents.update(updated)
            return updated
        }
    }

    /// An operator's reason is kept in the store and the audit log: at most 1024 bytes.
    static func checkReason(_ reason: String) throws(WardenError) {
        guard reason.utf8.count <= 1024 else { throw WardenError(.invalidRequest, "reason is longer than 1024 bytes") }
    }

    /// Revokes one token by `jti`, effective on the next request and kept past the token's longest possible life.
    public func revokeToken(jti: String, reason: String, agent ref: String? = nil) throws(WardenError) {
        guard !jti.isEmpty, jti.utf8.count <= 256 else {
            throw WardenError(.invalidRequest, "jti must be 1 to 256 bytes")
        }
        try Self.checkReason(reason)
        let agentID = try ref.map { (r) throws(WardenError) in try agent(r).id }
        let t = now()
        let until = t + config.accessTTL + config.clockSkew
        try store.revokeToken(jti: jti, until: until, agentID: agentID, reason: reason, now: t)
        revocations.revoke(jti: jti, until: until)
    }

    /// Replaces the signing key: the new key signs from now on, the old one verifies for the overlap.
    @discardableResult
    public func rotateSigningKey(actor: String = "admin") throws(WardenError) -> String {
        try writes.withLock { _ throws(WardenError) in try rotateLocked(actor: actor) }
    }

    func rotateLocked(actor: String) throws(WardenError) -> String {
        let t = now()
        let entry = try DataDirectory.newSigningKey(path: dataPath, now: t)
        let retiredKid = keys.current.kid
        try store.saveRotation(
            new: SigningKeyRow(kid: entry.key.kid, createdAt: t), retiredKid: retiredKid, at: t, actor: actor)
        keys.rotate(to: entry.key)
        try pruneSigningKeys()
        return entry.key.kid
    }

    /// Rotates when the current key is older than the schedule; prunes keys past their overlap. Returns the new key
    /// id when it rotated.
    @discardableResult
    public func rotateIfDue() throws(WardenError) -> String? {
        try pruneSigningKeys()
        revocations.prune(now: now())
        return try writes.withLock { _ throws(WardenError) in
            guard now() - keys.currentCreatedAt >= config.signingKeyRotation else { return nil }
            return try rotateLocked(actor: "system")
        }
    }

    func pruneSigningKeys() throws(WardenError) {
        let gone = keys.prune()
        guard !gone.isEmpty else { return }
        try store.deleteSigningKeys(gone)
        for kid in gone { unlink(dataPath + "/keys/\(kid).key") }
    }

    // MARK: Policies

    /// Reloads the policy set from its sources. On success the new set applies to the next request and the change is
    /// recorded first (old and new digests); on failure the last good set stays, the failure is recorded and the error
    /// says why.
    @discardableResult
    public func reloadPolicies(actor: String) async throws(WardenError) -> PolicyEngine.Snapshot {
        // One reload at a time, so the recorded order of changes is the order they apply in.
        guard
            reloading.withLock({ r in
                defer { r = true }
                return !r
            })
        else { throw WardenError(.conflict, "a policy reload is already in progress") }
        defer { reloading.withLock { $0 = false } }
        do {
            // Recorded before it applies: a change the log cannot hold does not happen.
            let new = try policies.prepare(now: now())
            let old = policies.snapshot
            try await audit.record(
                AuditEvent(
                    kind: actor == "system" ? .system : .admin, action: "policy.change", actor: actor,
                    resource: "policies",
                    message: old.digest == new.digest
                        ? "policy set reloaded unchanged (\(new.count) policies)"
                        : "policy set replaced (\(old.count) → \(new.count) policies)",
                    details: [("old_digest", old.digest), ("digest", new.digest), ("files", String(new.files.count))]))
            policies.install(new)
            return new
        } catch {
            policies.reloadFailures.add(1, ordering: .relaxed)
            try? audit.submit(
                AuditEvent(
                    kind: actor == "system" ? .system : .admin, action: "policy.reload", actor: actor,
                    resource: "policies", decision: .deny, reason: "invalid_policy",
                    message: "kept the last good policy set: \(error.message)",
                    details: [("digest", policies.snapshot.digest)]))
            throw error
        }
    }

    // MARK: Enrollment

    /// `POST /v1/enroll`: `{join_token, jwk, attestation: {manifest_digest, binary_sha256?}}` with a DPoP proof made
    /// with the key in `jwk`. The join token is burnt whatever the outcome; evidence that does not match the manifest
    /// is refused (`attestation_failed`) and recorded.
    public func enroll(body: JSONValue, dpop: String?, base: String? = nil) throws(WardenError) -> AgentRecord {
        guard case .object = body else { throw WardenError(.invalidRequest, "the body must be a JSON object") }
        guard let joinToken = body["join_token"]?.stringValue, !joinToken.isEmpty, joinToken.utf8.count <= 256 else {
            throw WardenError(.invalidRequest, "join_token is required")
        }
        guard let jwkJSON = body["jwk"] else {
            throw WardenError(.invalidRequest, "jwk (the agent's public key) is required")
        }
        let jwk = try ECPublicJWK(json: jwkJSON)
        guard let att = body["attestation"], case .object = att,
            let digest = att["manifest_digest"]?.stringValue, digest.utf8.count <= 128
        else {
            throw WardenError(.invalidRequest, "attestation.manifest_digest is required")
        }
        let binary = att["binary_sha256"]?.stringValue
        if let binary, binary.utf8.count > 128 {
            throw WardenError(.invalidRequest, "attestation.binary_sha256 is too long")
        }
        let t = now()
        let hash = Self.hashJoinToken(joinToken)
        // Only a live join token gets its proof checked: strangers must not fill the shared DPoP replay cache.
        guard try store.joinTokenIsLive(hash: hash, now: t) else {
            throw WardenError(.invalidGrant, "the join token is unknown, used or expired")
        }
        // Proof of possession of the key being enrolled.
        _ = try authenticator.proofs.verify(
            proof: dpop, method: "POST", url: (base ?? issuer) + "/v1/enroll", expectedThumbprint: jwk.thumbprint)
        let record = try store.burnJoinToken(hash: hash, now: t)
        guard record.state == .pending else {
            throw WardenError(
                .invalidGrant, "agent '\(record.name)' is \(record.state.rawValue), not pending enrollment")
        }
        let level: String
        do throws(WardenError) {
            level = try Attestation.verify(
                AttestationEvidence(manifestDigest: digest, binarySHA256: binary), against: record)
        } catch {
            try store.record(
                AgentEvent(
                    agentID: record.id, at: t, kind: "attestation_failed", actor: "agent",
                    reason: "\(error.message); join token burnt"))
            risk.submit(
                RiskEvent(
                    time: Double(t), agentID: record.spiffeID.description, roles: record.manifest.roles,
                    kind: .attestationFailure, resource: "enroll", allowed: false, reason: "attestation_failed"))
            throw error
        }
        return try writes.withLock { _ throws(WardenError) in
            let enrolled = try store.completeEnrollment(
                agentID: record.id, keyJWK: jwk.json.serialized, thumbprint: jwk.thumbprint, attestation: level, now: t)
            agents.update(enrolled)
            return enrolled
        }
    }

    // MARK: Tokens

    /// The scopes an agent may hold: `route:<r>`, `tool:<server/tool>`, `peer:<name>` from its manifest.
    public func scopes(of r: AgentRecord) -> Set<String> {
        Set(
            r.manifest.routes.map { "route:" + $0 } + r.manifest.tools.map { "tool:" + $0 }
                + r.manifest.peers.map { "peer:" + $0 })
    }

    /// The audiences an agent may request: this server, the configured extra audiences, and its peers' SPIFFE IDs.
    public func audiences(of r: AgentRecord) -> Set<String> {
        var out: Set<String> = [issuer]
        out.formUnion(config.audiences)
        for p in r.manifest.peers {
            if let id = try? SPIFFEID.agent(p, trustDomain: config.trustDomain) { out.insert(id.description) }
        }
        return out
    }

    /// Authenticates the client of a token request and decides what the token is bound to. With a `DPoP` proof: an
    /// RFC 7523 assertion signed by the enrolled key of an active agent and a proof made with that same key (token
    /// bound to the key). Without a proof, on mutual TLS with an X.509-SVID: the certificate identifies the agent
    /// (`tls_client_auth`, RFC 8705 §2.1; an assertion, if sent, must be the same agent's) and binds the token.
    func authenticateClient(
        _ form: [String: String], dpop: String?, base: String, certificate: ClientCertificate?
    ) throws(WardenError) -> (AgentRecord, TokenBinding) {
        // Once a credential has verified, a refusal is that agent's (recorded on its own, not summarised).
        var verified: String?
        do throws(WardenError) {
            return try authenticateClient(form, dpop: dpop, base: base, certificate: certificate, verified: &verified)
        } catch {
            throw verified.map { error.naming($0) } ?? error
        }
    }

    func authenticateClient(
        _ form: [String: String], dpop: String?, base: String, certificate: ClientCertificate?,
        verified: inout String?
    ) throws(WardenError) -> (AgentRecord, TokenBinding) {
        let endpoint = base + "/v1/token"
        var record: AgentRecord?
        var key: AgentDirectory.EnrolledKey?
        if form["client_assertion"] != nil || form["client_assertion_type"] != nil || certificate == nil {
            guard form["client_assertion_type"] == ClientAssertion.type else {
                throw WardenError(
                    .invalidClient, "client_assertion_type must be \(ClientAssertion.type) (private_key_jwt)")
            }
            guard let text = form["client_assertion"] else {
                throw WardenError(.invalidClient, "client_assertion is required")
            }
            let assertion = try ClientAssertion.parse(text)
            if let cid = form["client_id"], cid != assertion.clientID.description {
                throw WardenError(.invalidClient, "client_id does not match the client assertion")
            }
            guard let entry = agents.entry(assertion.clientID.description), let k = entry.key else {
                throw WardenError(.invalidClient, "the agent is not registered or not enrolled")
            }
            do throws(WardenError) {
                try ClientAssertion.verify(
                    assertion, key: k.publicKey, audiences: [endpoint, tokenEndpoint, issuer], now: now(),
                    replayCache: assertionReplay, skew: config.clockSkew)
            } catch {
                // Signed by the agent's key but refused (replayed, expired, wrong audience): the agent's refusal.
                if (try? assertion.jws.verifyES256(with: k.publicKey, code: .invalidClient, what: "client assertion"))
                    != nil
                {
                    verified = entry.record.spiffeID.description
                }
                throw error
            }
            verified = entry.record.spiffeID.description
            if guardsAssertions {
                // Kept in the store for the assertion's longest life, so a restart does not forget it.
                var h = SHA256()
                let jti = assertion.jws.payload["jti"]?.stringValue ?? ""
                h.update(data: Array("\(assertion.clientID.description)\n\(jti)".utf8))
                // The longest an assertion is good for: 300 s ahead, with the clock skew on both sides.
                let until = now() + 300 + 2 * config.clockSkew + 1
                guard try store.useAssertion(key: Attestation.hex(h.finalize()), until: until, now: now()) else {
                    throw WardenError(.invalidClient, "the client assertion was already used (jti replay)")
                }
            }
            record = entry.record
            key = k
        }
        if let certificate, dpop == nil {
            if let record, record.spiffeID != certificate.spiffeID {
                throw WardenError(.invalidClient, "the client certificate belongs to another agent")
            }
            if let cid = form["client_id"], cid != certificate.spiffeID.description {
                throw WardenError(.invalidClient, "client_id does not match the client certificate")
            }
            guard let r = record ?? agents.agent(certificate.spiffeID.description), r.keyThumbprint != nil else {
                throw WardenError(.invalidClient, "the client certificate's agent is not registered or not enrolled")
            }
            verified = r.spiffeID.description
            guard r.state == .active else { throw WardenError(.unauthorizedClient, "the agent is \(r.state.rawValue)") }
            return (r, .certificate(x5t: certificate.thumbprint))
        }
        guard let record, let key else { throw WardenError(.invalidClient, "client authentication is required") }
        guard record.state == .active else {
            throw WardenError(.unauthorizedClient, "the agent is \(record.state.rawValue)")
        }
        let proof = try authenticator.proofs.verify(
            proof: dpop, method: "POST", url: endpoint, expectedThumbprint: key.thumbprint)
        return (record, .dpop(jkt: proof.thumbprint))
    }

    /// `POST /v1/token` with its form parameters (each at most once).
    public func token(
        form: [String: String], dpop: String?, base: String? = nil, certificate: ClientCertificate? = nil
    ) throws(WardenError) -> TokenResponse {
        guard let grant = form["grant_type"] else { throw WardenError(.invalidRequest, "grant_type is required") }
        switch grant {
        case "client_credentials", Self.tokenExchangeGrant: break
        default:
            throw WardenError(
                .unsupportedGrantType, "supported grant types: client_credentials, \(Self.tokenExchangeGrant)")
        }
        let (client, binding) = try authenticateClient(
            form, dpop: dpop, base: base ?? issuer, certificate: certificate)
        do throws(WardenError) {
            return try token(form: form, grant: grant, client: client, binding: binding)
        } catch {
            throw error.naming(client.spiffeID.description)
        }
    }

    /// The rest of ``token(form:dpop:base:certificate:)`` once the client is authenticated.
    func token(form: [String: String], grant: String, client: AgentRecord, binding: TokenBinding)
        throws(WardenError) -> TokenResponse
    {
        if form["resource"] != nil && form["audience"] != nil {
            throw WardenError(.invalidRequest, "give audience or resource, not both")
        }
        let audience = form["audience"] ?? form["resource"] ?? issuer
        guard audiences(of: client).contains(audience) else {
            throw WardenError(.invalidTarget, "the agent may not request tokens for that audience")
        }
        let requested: Set<String>? = form["scope"].map { Set($0.split(separator: " ").map(String.init)) }
        let t = now()
        if grant == "client_credentials" {
            let scope = try narrow(requested, within: scopes(of: client))
            let contents = AccessTokenContents(
                subject: client.spiffeID.description, audiences: [audience], binding: binding, issuedAt: t,
                expiresAt: t + config.accessTTL, scope: scope)
            return TokenResponse(
                accessToken: try sign(contents), expiresIn: config.accessTTL, scope: contents.scope,
                issuedTokenType: nil, contents: contents)
        }
        return try exchange(
            form: form, actor: client, binding: binding, audience: audience, requested: requested, now: t)
    }

    /// `POST /v1/token` with its audit record: a token is returned only once the record of its grant is on disk
    /// (`storage_error`, and no token, when it cannot be written).
    public func auditedToken(
        form: [String: String], dpop: String?, base: String? = nil, certificate: ClientCertificate? = nil,
        requestDigest: String? = nil, source: String? = nil
    ) async throws(WardenError) -> TokenResponse {
        let start = ContinuousClock.now
        let grant = form["grant_type"] ?? ""
        let action = grant == Self.tokenExchangeGrant ? "token.exchange" : "token.issue"
        func micros() -> Int64 {
            let d = ContinuousClock.now - start
            return d.components.seconds * 1_000_000 + d.components.attoseconds / 1_000_000_000_000
        }
        // A refusal is recorded where every refusal of the endpoint is (`WardenRouter.respond`).
        let response = try token(form: form, dpop: dpop, base: base, certificate: certificate)
        let c = response.contents
        let client = c.actors.first ?? c.subject
        var details: [(String, String)] = [
            ("grant_type", grant), ("jti", c.jti), ("scope", c.scope ?? ""), ("expires_at", String(c.expiresAt)),
        ]
        switch c.binding {
        case .dpop(let jkt): details.append(("cnf.jkt", jkt))
        case .certificate(let x5t): details.append(("cnf.x5t#S256", x5t))
        }
        if !c.actors.isEmpty { details.append(("subject", c.subject)) }
        try await audit.record(
            AuditEvent(
                kind: .decision, action: action, actor: client, agent: client, agentID: agents.agent(client)?.id,
                resource: c.audiences.first, decision: .allow,
                delegation: c.actors.isEmpty ? [] : c.actors.dropFirst() + [c.subject],
                requestDigest: requestDigest, latencyMicros: micros(), source: source, details: details))
        return response
    }

    /// Records a refused request (authentication failures at protected endpoints, refused enrollments, bad admin
    /// credentials) without waiting: the request is denied whatever happens to its record.
    public func auditDenial(
        action: String, error: WardenError, resource: String?, source: String?, agent: AgentRecord? = nil
    ) {
        // A refusal that names no agent is summarised per source (`SourceGuard`), not written one by one.
        guard agent != nil else {
            sources.refused(source, reason: error.auditReason, now: now())
            return
        }
        try? audit.submit(
            AuditEvent(
                kind: .decision, action: action, actor: agent?.spiffeID.description ?? "unauthenticated",
                agent: agent?.spiffeID.description, agentID: agent?.id, resource: resource, decision: .deny,
                reason: error.auditReason, source: source, message: error.message))
    }

    /// RFC 8693 delegation. The subject token is a Warden access token whose audience names the acting agent (the
    /// subject's consent: it asked for a token for this peer). The new token keeps `sub`, adds the actor on top of
    /// the `act` chain, and only narrows: its audience must be allowed for the actor and every agent of the chain,
    /// its scopes are within the subject token's and every party's, and it expires no later than the subject token.
    /// An unacceptable subject token is `invalid_request` (RFC 8693 §2.2.2).
    func exchange(
        form: [String: String], actor: AgentRecord, binding: TokenBinding, audience: String, requested: Set<String>?,
        now t: Int64
    ) throws(WardenError) -> TokenResponse {
        guard let subjectToken = form["subject_token"] else {
            throw WardenError(.invalidRequest, "subject_token is required for token exchange")
        }
        guard let type = form["subject_token_type"], type == Self.accessTokenType || type == Self.jwtTokenType else {
            throw WardenError(.invalidRequest, "subject_token_type must be \(Self.accessTokenType)")
        }
        if form["actor_token"] != nil {
            throw WardenError(.invalidRequest, "actor_token is not accepted: the actor is the authenticated client")
        }
        if let rtt = form["requested_token_type"], rtt != Self.accessTokenType {
            throw WardenError(.invalidRequest, "requested_token_type must be \(Self.accessTokenType)")
        }
        if let iss = UserSubjectToken.claimedIssuer(subjectToken), iss != issuer, let trusted = trustedIssuers[iss] {
            return try userExchange(
                subjectToken, issuer: trusted, actor: actor, binding: binding, audience: audience, requested: requested,
                now: t)
        }
        let subject: AccessTokenClaims
        do {
            subject = try authenticator.tokens.verify(subjectToken, audience: actor.spiffeID.description)
        } catch {
            throw WardenError(.invalidRequest, "subject_token: \(error.message)")
        }
        guard !revocations.isRevoked(subject.jti) else {
            throw WardenError(.invalidRequest, "subject_token is revoked")
        }
        guard agents.agent(subject.agent.description)?.state == .active else {
            throw WardenError(.invalidRequest, "the subject token's agent is not active")
        }
        let actors = [actor.spiffeID.description] + subject.actors
        guard actors.count <= config.maxDelegationDepth else {
            throw WardenError(.invalidRequest, "the delegation chain would be deeper than \(config.maxDelegationDepth)")
        }
        guard !subject.actors.contains(actors[0]) && subject.subject != actors[0] else {
            throw WardenError(.invalidRequest, "the agent is already in the delegation chain")
        }
        // Every agent of the chain must be active, must be allowed the audience, and bounds the scopes, which also
        // stay within the subject token's (no scope claim means none).
        var ceiling = subject.scopes.intersection(scopes(of: actor))
        for party in [subject.subject] + subject.actors {
            guard let p = agents.agent(party) else {
                // A user (from a trusted identity provider) is not an agent; an agent that is gone ends the chain.
                if party.hasPrefix("spiffe://") {
                    throw WardenError(.invalidRequest, "a party in the delegation chain is no longer registered")
                }
                continue
            }
            guard p.state == .active else {
                throw WardenError(.invalidRequest, "a party in the delegation chain is \(p.state.rawValue)")
            }
            guard audiences(of: p).contains(audience) else {
                throw WardenError(.invalidTarget, "a delegating agent may not reach that audience")
            }
            ceiling.formIntersection(scopes(of: p))
        }
        return try delegated(
            subject: subject.subject, actors: actors, scope: try narrow(requested, within: ceiling),
            until: subject.expiresAt, audience: audience, binding: binding, now: t)
    }

    /// An agent acting for a user: the subject token comes from a trusted identity provider and names the agent as
    /// its audience (the user's consent). The new token has `sub` = the user and `act` = the agent; scopes are those
    /// the user's token grants (`scope`, none when absent) within the agent's manifest; it expires no later than the
    /// user's token.
    func userExchange(
        _ token: String, issuer trusted: TrustedIssuer, actor: AgentRecord, binding: TokenBinding, audience: String,
        requested: Set<String>?, now t: Int64
    ) throws(WardenError) -> TokenResponse {
        let user = try UserSubjectToken(
            token, issuer: trusted, actor: actor.spiffeID.description, now: t, skew: config.clockSkew)
        if let jti = user.jti, revocations.isRevoked(jti) {
            throw WardenError(.invalidRequest, "subject_token is revoked")
        }
        return try delegated(
            subject: user.subject, actors: [actor.spiffeID.description],
            scope: try narrow(requested, within: user.scopes.intersection(scopes(of: actor))), until: user.expiresAt,
            audience: audience, binding: binding, now: t)
    }

    /// The scope string for `requested` (all of `allowed` when nothing is requested); `invalid_scope` when the request
    /// asks for more than `allowed`.
    func narrow(_ requested: Set<String>?, within allowed: Set<String>) throws(WardenError) -> String {
        if let requested, !requested.isSubset(of: allowed) {
            throw WardenError(
                .invalidScope,
                "scopes can only narrow; not granted: \(requested.subtracting(allowed).sorted().joined(separator: " "))"
            )
        }
        return (requested ?? allowed).sorted().joined(separator: " ")
    }

    /// Signs a delegated token that expires no later than `until` (the subject token's expiry).
    func delegated(
        subject: String, actors: [String], scope: String, until: Int64, audience: String, binding: TokenBinding,
        now t: Int64
    ) throws(WardenError) -> TokenResponse {
        let exp = min(t + config.accessTTL, until)
        guard exp > t else { throw WardenError(.invalidRequest, "subject_token has expired") }
        let contents = AccessTokenContents(
            subject: subject, audiences: [audience], binding: binding, issuedAt: t, expiresAt: exp, scope: scope,
            actors: actors)
        return TokenResponse(
            accessToken: try sign(contents), expiresIn: exp - t, scope: scope, issuedTokenType: Self.accessTokenType,
            contents: contents)
    }

    func sign(_ c: AccessTokenContents) throws(WardenError) -> String {
        do {
            return try AccessTokenIssuer(key: keys.current, issuer: issuer).issue(c)
        } catch {
            throw WardenError(.storage, "the token could not be signed")
        }
    }

    // MARK: Request authentication

    /// Authenticates a request to a protected endpoint: token and DPoP proof (see ``RequestAuthenticator``), then the
    /// revocation list, then the state of the agent and of every agent in its delegation chain.
    public func authenticate(
        authorization: String?, dpop: String?, method: String, path: String, base: String? = nil,
        certificate: ClientCertificate? = nil
    ) throws(WardenError) -> AuthenticatedAgent {
        let (claims, entry) = try verifyCredentials(
            authorization: authorization, dpop: dpop, method: method, path: path, base: base, certificate: certificate)
        let who = AuthenticatedAgent(claims: claims, agent: entry.record)
        do throws(WardenError) {
            try admit(who, key: entry.key, certificate: certificate)
        } catch {
            throw error.naming(entry.record.spiffeID.description)
        }
        return who
    }

    /// The first half of ``authenticate``: the token and its proof of possession; returns the claims and the token's
    /// agent. A failure here names no agent (the credentials prove nothing).
    public func verifyCredentials(
        authorization: String?, dpop: String?, method: String, path: String, base: String? = nil,
        certificate: ClientCertificate? = nil
    ) throws(WardenError) -> (AccessTokenClaims, AgentDirectory.Entry) {
        let claims = try authenticator.authenticate(
            authorization: authorization, dpop: dpop, method: method, url: (base ?? issuer) + path,
            clientCertificate: certificate?.thumbprint)
        guard let entry = agents.entry(claims.agent.description) else {
            throw WardenError(.invalidToken, "the token's agent is not registered")
        }
        return (claims, entry)
    }

    /// The agent whose genuine token was presented with another key's proof (or another client certificate), when
    /// `error` is that refusal: the token alone verifies and is not revoked. Used to attribute the theft to the
    /// victim (the risk engine revokes its tokens); never to admit anything.
    /// A certificate-bound token over a connection with another SVID of the same agent (a renewal race) is not a
    /// theft: the certificate proves who is calling.
    public func stolenTokenHolder(_ error: WardenError, authorization: String?, certificate: ClientCertificate? = nil)
        -> AgentDirectory.Entry?
    {
        guard RequestAuthenticator.isKeyMismatch(error),
            let claims = authenticator.claimsOfPresentedToken(authorization: authorization),
            !revocations.isRevoked(claims.jti)
        else { return nil }
        if let certificate, certificate.spiffeID == claims.agent { return nil }
        if let cutoff = risk.revokedBefore(claims.agent.description), claims.issuedAt < cutoff { return nil }
        return agents.entry(claims.agent.description)
    }

    /// The second half of ``authenticate``: the revocation list, the agent's state, the token's binding to its
    /// enrolled key or SVID, and the state of every agent in the delegation chain. A failure here is the named
    /// agent's (its token is genuine).
    public func admit(_ who: AuthenticatedAgent, key: AgentDirectory.EnrolledKey?, certificate: ClientCertificate?)
        throws(WardenError)
    {
        let (claims, record) = (who.claims, who.agent)
        guard !revocations.isRevoked(claims.jti) else {
            throw WardenError(.invalidToken, "the access token is revoked", reason: "token_revoked")
        }
        if let cutoff = risk.revokedBefore(claims.agent.description), claims.issuedAt < cutoff {
            throw WardenError(.invalidToken, "the access token is revoked", reason: "token_revoked")
        }
        switch record.state {
        case .active: break
        case .quarantined: throw WardenError(.accessDenied, "the agent is quarantined", reason: "quarantined")
        case .pending, .revoked, .decommissioned:
            throw WardenError(
                .invalidToken, "the agent is \(record.state.rawValue)", reason: "agent_\(record.state.rawValue)")
        }
        switch claims.binding {
        case .dpop(let jkt):
            guard let enrolled = key?.thumbprint, DPoPVerifier.constantTimeEqual(enrolled, jkt) else {
                throw WardenError(.invalidToken, "the access token is not bound to the agent's enrolled key")
            }
        case .certificate:
            // The thumbprint matched the presented certificate; it must also be the agent's own SVID.
            guard certificate?.spiffeID == claims.agent else {
                throw WardenError(.invalidToken, "the client certificate is not the agent's")
            }
        }
        for party in claims.delegation {
            if let a = agents.agent(party), a.state != .active {
                throw WardenError(
                    .invalidToken, "a party in the delegation chain is \(a.state.rawValue)",
                    reason: "delegation_\(a.state.rawValue)")
            }
        }
    }

    // MARK: SVIDs and metadata

    /// Issues an X.509-SVID for the authenticated agent from a PEM CSR; returns `(chain PEM, bundle PEM, expiry)`.
    public func issueSVID(csrPEM: String, for who: AuthenticatedAgent) throws(WardenError) -> (String, String, Int64) {
        let t = now()
        do {
            let cert = try ca.issueSVID(
                csrPEM: csrPEM, id: who.agent.spiffeID, lifetime: TimeInterval(config.svidTTL),
                now: Date(timeIntervalSince1970: TimeInterval(t)))
            try store.record(
                AgentEvent(
                    agentID: who.agent.id, at: t, kind: "svid_issued", actor: "agent",
                    reason: "serial \(cert.serialNumber), expires \(Int64(cert.notValidAfter.timeIntervalSince1970))"))
            return (try ca.chainPEM(cert), bundlePEM, Int64(cert.notValidAfter.timeIntervalSince1970))
        } catch let e as WardenError {
            throw e
        } catch {
            throw WardenError(.invalidRequest, "the SVID could not be issued")
        }
    }

    /// `/.well-known/jwks.json`.
    public func jwks() -> JSONValue { keys.jwks() }

    /// `/.well-known/spiffe-bundle`: the SPIFFE trust bundle (a JWKS with the root CA as an `x509-svid` authority and
    /// the token keys as `jwt-svid` authorities).
    public func spiffeBundle() -> JSONValue {
        var entries: [JSONValue] = []
        let root = ECPublicJWK(ca.rootKey.publicKey)
        var der = DER.Serializer()
        if (try? der.serialize(ca.root)) != nil {
            entries.append(
                .object([
                    ("use", .string("x509-svid")), ("kty", .string("EC")), ("crv", .string("P-256")),
                    ("x", .string(Base64URL.encode(root.x))), ("y", .string(Base64URL.encode(root.y))),
                    ("x5c", .array([.string(Data(der.serializedBytes).base64EncodedString())])),
                ]))
        }
        for e in keys.verifying() { entries.append(SigningKeyRing.jwk(e.key, use: "jwt-svid")) }
        return .object([
            ("keys", .array(entries)), ("spiffe_sequence", .number(String(keys.currentCreatedAt))),
            ("spiffe_refresh_hint", .number("300")),
        ])
    }

    /// RFC 8705 §5 metadata when the mutual-TLS listener runs.
    var mtlsMetadata: [(String, JSONValue)] {
        guard let tls = config.tlsBase else { return [] }
        return [
            ("tls_client_certificate_bound_access_tokens", .bool(true)),
            ("mtls_endpoint_aliases", .object([("token_endpoint", .string(tls + "/v1/token"))])),
        ]
    }

    /// `/.well-known/oauth-authorization-server` (RFC 8414).
    public func authorizationServerMetadata() -> JSONValue {
        .object(
            [
                ("issuer", .string(issuer)), ("token_endpoint", .string(tokenEndpoint)),
                ("jwks_uri", .string(issuer + "/.well-known/jwks.json")),
                ("grant_types_supported", .array([.string("client_credentials"), .string(Self.tokenExchangeGrant)])),
                (
                    "token_endpoint_auth_methods_supported",
                    .array([.string("private_key_jwt")] + (config.tlsBase == nil ? [] : [.string("tls_client_auth")]))
                ),
                ("token_endpoint_auth_signing_alg_values_supported", .array([.string("ES256")])),
                ("dpop_signing_alg_values_supported", .array([.string("ES256")])),
                ("response_types_supported", .array([])),
                ("enrollment_endpoint", .string(enrollEndpoint)), ("svid_endpoint", .string(issuer + "/v1/svid")),
                ("spiffe_bundle_endpoint", .string(issuer + "/.well-known/spiffe-bundle")),
            ] + mtlsMetadata)
    }
}
