import Cedar
import Crypto
import Synchronization
import WardenCore
import WardenIdentity

/// The agents the hot path needs, in memory: looked up by SPIFFE ID on every request (O(1)), loaded from the store at
/// start and replaced on every write the control plane makes, so a revocation or quarantine applies to the very next
/// request. The enrolled key is parsed once, when the record enters the directory, not per token request.
public final class AgentDirectory: Sendable {
    /// An agent's enrolled public key, ready to verify with.
    public struct EnrolledKey: Sendable {
        public let publicKey: P256.Signing.PublicKey
        public let thumbprint: String
    }

    /// A record, its parsed key (nil before enrollment) and its Cedar entity.
    public struct Entry: Sendable {
        public let record: AgentRecord
        public let key: EnrolledKey?
        /// `Agent::"<spiffe id>"` with the manifest's attributes, in `Role::"…"` and `Team::"…"`.
        public let entity: Entity
        /// The agent's trust override (read lock-free on every request).
        public let trust: TrustCell

        /// The agent's current trust score.
        public var trustScore: Int { TrustScores.score(record, cell: trust) }
    }

    /// The Cedar entity of an agent (`../shared/DESIGN.md`, "The Cedar entity model"): attributes `name`, `owner`,
    /// `environment`, `model` (`provider/name`), `modelDigest`, `manifestDigest`, `configDigest`, `team`, `state`,
    /// `tags`, `roles`, `routes`, `peers`, `tools` (sets of strings; optional ones absent when the manifest has none);
    /// parents `Role::"<role>"` and `Team::"<team>"`.
    public static func entity(_ r: AgentRecord) -> Entity {
        let m = r.manifest
        func set(_ items: [String]) -> Value { .set(Set(items.map { .string($0) })) }
        var attrs: [String: Value] = [
            "name": .string(m.name), "owner": .string(m.owner), "manifestDigest": .string(r.manifestDigest),
            "state": .string(r.state.rawValue), "tags": set(m.tags), "roles": set(m.roles), "routes": set(m.routes),
            "peers": set(m.peers), "tools": set(m.tools),
        ]
        if let e = m.environment { attrs["environment"] = .string(e) }
        if let t = m.team { attrs["team"] = .string(t) }
        if let c = m.configDigest { attrs["configDigest"] = .string(c) }
        if let model = m.model {
            let name = [model.provider, model.name].compactMap { $0 }.joined(separator: "/")
            if !name.isEmpty { attrs["model"] = .string(name) }
            if let d = model.digest { attrs["modelDigest"] = .string(d) }
        }
        var parents = Set(m.roles.map { EntityUID("Role", $0) })
        if let t = m.team { parents.insert(EntityUID("Team", t)) }
        return Entity(uid: EntityUID("Agent", r.spiffeID.description), attributes: attrs, parents: parents)
    }

    private let agents = Mutex<[String: Entry]>([:])
    let trust: TrustScores

    public init(_ records: [AgentRecord] = [], trust: TrustScores = TrustScores()) {
        self.trust = trust
        for r in records { update(r) }
    }

    public func entry(_ spiffeID: String) -> Entry? { agents.withLock { $0[spiffeID] } }

    public func agent(_ spiffeID: String) -> AgentRecord? { entry(spiffeID)?.record }

    public func update(_ r: AgentRecord) {
        // A stored key that does not parse leaves the agent without a usable key: it cannot authenticate (fail closed).
        let key = r.keyJWK.flatMap { try? JSONValue.parse($0) }.flatMap { try? ECPublicJWK(json: $0) }.flatMap { jwk in
            (try? jwk.publicKey()).map { EnrolledKey(publicKey: $0, thumbprint: jwk.thumbprint) }
        }
        let entry = Entry(record: r, key: key, entity: Self.entity(r), trust: trust.cell(r.id))
        agents.withLock { $0[r.spiffeID.description] = entry }
    }

    public var count: Int { agents.withLock { $0.count } }

    /// Every agent's record.
    public func all() -> [AgentRecord] { agents.withLock { $0.values.map(\.record) } }

    /// How many agents are in each state.
    public func states() -> [AgentState: Int64] {
        agents.withLock { all in all.values.reduce(into: [:]) { $0[$1.record.state, default: 0] += 1 } }
    }

    /// The agents whose trust score the risk engine lowered below their attestation's baseline, lowest first (at
    /// most `limit`), and how many there are in all.
    public func loweredTrust(limit: Int) -> (agents: [(spiffeID: String, score: Int)], count: Int) {
        let lowered = agents.withLock { all in
            all.compactMap { id, e -> (spiffeID: String, score: Int)? in
                let score = e.trustScore
                return score < TrustScores.baseline(e.record) ? (id, score) : nil
            }
        }
        let lowest = lowered.sorted { ($0.score, $0.spiffeID) < ($1.score, $1.spiffeID) }.prefix(limit)
        return (Array(lowest), lowered.count)
    }
}
