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

    package init(claims: AccessTokenClaims, agent: AgentRecord) {
        self.claims = claims
        self.agent = agent
    }
}

/// The control plane: agents and their lifecycle, enrollment with attestation, the token endpoint (client credentials
/// and token exchange), request authentication, SVIDs, revocation and signing-key rotation. The HTTP layer and the
/// offline CLI are thin shells over it.
public final class ControlPlane: Sendable {
    public static let tokenExchangeGrant = "urn:ietf:params:oauth:grant-type:token-exchange"
    public static let accessTokenType = "urn:ietf:params:oauth:token-type:access_token"
    public static let jwtTokenType = "urn:ietf:params:oauth:token-type:jwt"

    public let config: WardenConfig
    /// What the control plane keeps (``ControlPlaneStorage``; the data directory's SQLite database).
    package let store: any ControlPlaneStorage
    /// The tamper-evident audit log (in the store's database).
    package let audit: AuditLog
    package let ca: CertificateAuthority
    package let keys: SigningKeyRing
    package let agents: AgentDirectory
    package let revocations: RevocationList
    package let authenticator: RequestAuthenticator
    /// Per-source limits on unauthenticated work, and the summaries of refusals that name no agent.
    package let sources: SourceGuard

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
    package let policies: PolicyEngine
    /// Brokered upstream credentials.
    package let secrets: SecretStore
    /// Trust scores as policies see them.
    package let trust: TrustScores
    /// The risk engine's side of the control plane (events in, responses out).
    package let risk = RiskHub()
    public let dataPath: String
    /// The one clock (``WardenClock``) everything here reads.
    public let clock: any WardenClock

    /// Seconds since the Unix epoch, from ``clock``.
    public func now() -> Int64 { clock.seconds }
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
        config: WardenConfig, clock: any WardenClock = SystemClock(), guardRestart: Bool = false
    ) throws(WardenError) {
        let dir = try DataDirectory.open(
            path: config.data, trustDomain: config.trustDomain, clock: clock, audit: Self.auditSettings(config))
        try self.init(config: config, directory: dir, clock: clock, guardRestart: guardRestart)
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
        config: WardenConfig, directory: DataDirectory, clock: any WardenClock, guardRestart: Bool = false
    ) throws(WardenError) {
        self.config = config
        self.store = directory.store
        self.audit = directory.audit
        self.ca = directory.ca
        self.dataPath = directory.path
        self.adminTokenDigest = SHA256.hash(data: Array(directory.adminToken.utf8))
        self.metricsTokenDigest = SHA256.hash(data: Array(directory.metricsToken.utf8))
        self.clock = clock
        self.issuer = config.issuer
        self.tokenEndpoint = config.issuer + "/v1/token"
        self.enrollEndpoint = config.issuer + "/v1/enroll"
        do { self.bundlePEM = try directory.ca.bundlePEM() } catch {
            throw WardenError(.invalidConfig, "the root certificate cannot be encoded")
        }
        // A retired key verifies for the longest token lifetime plus skew, then leaves the JWKS.
        self.keys = try SigningKeyRing(
            entries: directory.signingKeys, overlap: config.accessTTL + config.clockSkew, clock: clock)
        let trust = TrustScores()
        self.trust = trust
        self.agents = AgentDirectory(try directory.store.agents(), trust: trust)
        self.revocations = RevocationList()
        for r in try directory.store.revokedTokens(now: clock.seconds) {
            revocations.revoke(jti: r.jti, until: r.until)
        }
        var tokens = AccessTokenVerifier(
            key: { [keys] kid in keys.publicKey(kid: kid) }, issuer: config.issuer, audience: config.issuer,
            clock: clock)
        tokens.skew = config.clockSkew
        tokens.maxLifetime = config.accessTTL
        // A proof is acceptable while its `iat` is between `max_age` ago and `skew` ahead: its identifier is
        // remembered that long and a second more. One key may hold a tenth of the cache (with the defaults: about
        // 21,000 proofs a second sustained in all, 2,100 for one key).
        let proofSkew = min(config.clockSkew, 5)
        var proofs = DPoPVerifier(
            replayCache: ReplayCache(
                capacity: config.dpopReplayCacheSize, ttlSeconds: config.dpopMaxAge + proofSkew + 1,
                perPartitionCapacity: max(1, config.dpopReplayCacheSize / 10)),
            clock: clock)
        proofs.maxAge = config.dpopMaxAge
        proofs.skew = proofSkew
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
        self.sources = SourceGuard(limits: config.limits.perSource, clock: clock)
        if guardRestart {
            // From the later of now and the newest audit entry (every accepted call wrote one): a clock stepped back
            // across the restart does not reopen the window in which a proof accepted before it could be replayed.
            let lastWritten = (try directory.audit.latestTime()).map { $0 / 1_000_000 + 1 } ?? 0
            proofs.startGuard = .init(notBefore: max(clock.seconds, lastWritten) + proofs.skew, nonces: processNonces)
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
        self.policies = try PolicyEngine(sources: config.policySources, now: clock.seconds)
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
        if let node = record.manifest.node {
            throw WardenError(
                .invalidGrant,
                "agent '\(record.name)' is attested by its node '\(node)' (warden node), not enrolled with a join token"
            )
        }
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
                    time: clock.wallSeconds, agentID: record.spiffeID.description, roles: record.manifest.roles,
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

    // MARK: Refusals

    /// Records a refused request (authentication failures at protected endpoints, refused enrollments, bad admin
    /// credentials) without waiting: the request is denied whatever happens to its record.
    ///
    /// The risk engine sees it too, as the gateway's refusals are seen: by source address when it names no agent
    /// (credential stuffing at the token endpoint, join-token guessing), as the agent's refusal when its credentials
    /// verified. An agent merely named by an unverified credential (a forged assertion's `iss`) is not charged with it:
    /// anyone could otherwise lower a victim's trust, or have it throttled, by forging assertions in its name.
    public func auditDenial(
        action: String, error: WardenError, resource: String?, source: String?, agent: AgentRecord? = nil
    ) {
        // A genuine but revoked token is a containment's consequence, not new behaviour (as on the gateway).
        if agent == nil || error.auditReason != "token_revoked" {
            risk.submit(
                RiskEvent(
                    time: clock.wallSeconds,
                    agentID: agent?.spiffeID.description ?? "source:" + (source ?? "unknown"),
                    roles: agent?.manifest.roles ?? [], kind: agent == nil ? .authFailure : .call,
                    resource: String((resource ?? action).prefix(256)), allowed: false, reason: error.auditReason))
        }
        // A refusal that names no agent is summarised per source (`SourceGuard`), not written one by one.
        guard let agent else {
            sources.refused(source, reason: error.auditReason, now: now())
            return
        }
        try? audit.submit(
            AuditEvent(
                kind: .decision, action: action, actor: agent.spiffeID.description, agent: agent.spiffeID.description,
                agentID: agent.id, resource: resource, decision: .deny, reason: error.auditReason, source: source,
                message: error.message))
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
