import Cedar
import WardenCore
import WardenStore

// What the control plane keeps, as protocols it owns: the seam a second database (PostgreSQL for replicas) plugs
// into. `SQLiteStore` (WardenStore, through GRDB) is the embedded implementation; nothing here names GRDB. Every
// change that must be on the record is recorded by the implementation in the same transaction as the change (an
// agent's transition and its `agent.state` audit entry commit or roll back together), which is why these are
// operations, not rows.

/// Agents, their join tokens and lifecycle events.
package protocol AgentStorage: Sendable {
    /// A new agent (pending) with its first join token, and its `registered` event.
    func register(_ r: AgentRecord, joinTokenHash: String, joinTokenExpiresAt: Int64, actor: String)
        throws(WardenError)
    /// By id, name or SPIFFE ID.
    func agent(_ ref: String) throws(WardenError) -> AgentRecord?
    func agents() throws(WardenError) -> [AgentRecord]
    func issueJoinToken(agentID: String, hash: String, expiresAt: Int64, now: Int64, actor: String)
        throws(WardenError)
    func joinTokenIsLive(hash: String, now: Int64) throws(WardenError) -> Bool
    /// Marks every unused join token of the agent used (a node-attested agent never enrolls with one).
    func retireJoinTokens(agentID: String, now: Int64) throws(WardenError)
    /// The join tokens neither used nor expired: their agents' ids and expiry times.
    func outstandingJoinTokens(now: Int64) throws(WardenError) -> [(agentID: String, expiresAt: Int64)]
    /// Uses a join token up (single use), returning its agent.
    func burnJoinToken(hash: String, now: Int64) throws(WardenError) -> AgentRecord
    func completeEnrollment(agentID: String, keyJWK: String, thumbprint: String, attestation: String, now: Int64)
        throws(WardenError) -> AgentRecord
    func transition(agentID: String, to state: AgentState, actor: String, reason: String, now: Int64)
        throws(WardenError) -> AgentRecord
    func record(_ event: AgentEvent) throws(WardenError)
    func events(agentID: String) throws(WardenError) -> [AgentEvent]
}

/// What credentials depend on: revoked token ids, used client-assertion ids, the signing keys and their rotation.
package protocol CredentialStorage: Sendable {
    func revokeToken(jti: String, until: Int64, agentID: String?, reason: String, now: Int64) throws(WardenError)
    func revokedTokens(now: Int64) throws(WardenError) -> [RevokedToken]
    /// Records a client assertion id until `until`; false when it is recorded and live (a replay).
    func useAssertion(key: String, until: Int64, now: Int64) throws(WardenError) -> Bool
    func signingKeys() throws(WardenError) -> [SigningKeyRow]
    func saveRotation(new: SigningKeyRow?, retiredKid: String?, at: Int64, actor: String) throws(WardenError)
    func deleteSigningKeys(_ kids: [String]) throws(WardenError)
}

/// Brokered upstream credentials, sealed before they get here.
package protocol SecretStorage: Sendable {
    func putSecret(_ row: SecretRow, actor: String) throws(WardenError)
    func deleteSecret(name: String, actor: String) throws(WardenError)
    func secrets() throws(WardenError) -> [SecretRow]
}

/// The risk engine's learned baselines (by agent or role), kept across restarts.
package protocol RiskBaselineStorage: Sendable {
    func saveRiskBaselines(_ items: [(key: String, isRole: Bool, json: [UInt8])], now: Int64) throws(WardenError)
    func riskBaselines() throws(WardenError) -> [(key: String, isRole: Bool, json: [UInt8])]
}

/// Pinned MCP tool definitions and the operators' decisions on them.
package protocol PinStorage: Sendable {
    func mcpTools(server: String?) throws(WardenError) -> [MCPToolRow]
    func recordMCPTool(_ row: MCPToolRow, event: AuditEvent) throws(WardenError)
    func decideMCPTool(server: String, tool: String, digest: String, approve: Bool, actor: String, now: Int64)
        throws(WardenError)
}

/// Everything the control plane and its gateways keep, in one database.
package protocol ControlPlaneStorage: AgentStorage, CredentialStorage, SecretStorage, RiskBaselineStorage,
    PinStorage
{
    /// Whether the database answers (`/readyz`).
    func ping() -> Bool
}

extension SQLiteStore: ControlPlaneStorage {}
