/// Where an agent is in its life. Transitions: pending → active (enrollment); active ↔ quarantined; pending, active
/// or quarantined → revoked or decommissioned; revoked and decommissioned are final.
public enum AgentState: String, Sendable, Hashable, CaseIterable {
    case pending, active, quarantined, revoked, decommissioned

    /// Whether `self → next` is allowed.
    public func canMove(to next: AgentState) -> Bool {
        switch (self, next) {
        case (.pending, .active), (.active, .quarantined), (.quarantined, .active): true
        case (.pending, .revoked), (.pending, .decommissioned): true
        case (.active, .revoked), (.active, .decommissioned): true
        case (.quarantined, .revoked), (.quarantined, .decommissioned): true
        default: false
        }
    }

    /// Whether an agent in this state may get tokens and be served.
    public var isServed: Bool { self == .active }
}

/// A registered agent as the store keeps it.
public struct AgentRecord: Sendable, Hashable {
    /// A random identifier (UUID), stable for the agent's life.
    public var id: String
    public var spiffeID: SPIFFEID
    public var manifest: AgentManifest
    /// `sha256:<hex>` of the manifest's canonical JSON.
    public var manifestDigest: String
    public var state: AgentState
    /// Seconds since the Unix epoch.
    public var createdAt: Int64
    public var updatedAt: Int64
    /// The enrolled public key as JWK JSON text, once enrolled.
    public var keyJWK: String?
    /// RFC 7638 thumbprint of the enrolled key.
    public var keyThumbprint: String?
    /// How the agent was attested at enrollment (`manifest`, `manifest+binary`).
    public var attestation: String?

    public init(
        id: String, spiffeID: SPIFFEID, manifest: AgentManifest, manifestDigest: String, state: AgentState,
        createdAt: Int64, updatedAt: Int64, keyJWK: String? = nil, keyThumbprint: String? = nil,
        attestation: String? = nil
    ) {
        self.id = id
        self.spiffeID = spiffeID
        self.manifest = manifest
        self.manifestDigest = manifestDigest
        self.state = state
        self.createdAt = createdAt
        self.updatedAt = updatedAt
        self.keyJWK = keyJWK
        self.keyThumbprint = keyThumbprint
        self.attestation = attestation
    }

    public var name: String { manifest.name }
}

/// One recorded lifecycle or security event of an agent.
public struct AgentEvent: Sendable, Hashable {
    public var seq: Int64
    public var agentID: String
    public var at: Int64
    /// `registered`, `enrolled`, `attestation_failed`, `state_changed`, `join_token_issued`, `token_revoked`.
    public var kind: String
    public var from: AgentState?
    public var to: AgentState?
    /// Who did it: `admin`, `agent`, `system`.
    public var actor: String
    public var reason: String

    public init(
        seq: Int64 = 0, agentID: String, at: Int64, kind: String, from: AgentState? = nil, to: AgentState? = nil,
        actor: String, reason: String
    ) {
        self.seq = seq
        self.agentID = agentID
        self.at = at
        self.kind = kind
        self.from = from
        self.to = to
        self.actor = actor
        self.reason = reason
    }
}
