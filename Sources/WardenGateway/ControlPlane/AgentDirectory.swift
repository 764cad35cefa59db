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

    /// A record and its parsed key (nil before enrollment).
    public struct Entry: Sendable {
        public let record: AgentRecord
        public let key: EnrolledKey?
    }

    private let agents = Mutex<[String: Entry]>([:])

    public init(_ records: [AgentRecord] = []) {
        for r in records { update(r) }
    }

    public func entry(_ spiffeID: String) -> Entry? { agents.withLock { $0[spiffeID] } }

    public func agent(_ spiffeID: String) -> AgentRecord? { entry(spiffeID)?.record }

    public func update(_ r: AgentRecord) {
        // A stored key that does not parse leaves the agent without a usable key: it cannot authenticate (fail closed).
        let key = r.keyJWK.flatMap { try? JSONValue.parse($0) }.flatMap { try? ECPublicJWK(json: $0) }.flatMap { jwk in
            (try? jwk.publicKey()).map { EnrolledKey(publicKey: $0, thumbprint: jwk.thumbprint) }
        }
        agents.withLock { $0[r.spiffeID.description] = Entry(record: r, key: key) }
    }

    public var count: Int { agents.withLock { $0.count } }

    /// How many agents are in each state.
    public func states() -> [AgentState: Int64] {
        agents.withLock { all in all.values.reduce(into: [:]) { $0[$1.record.state, default: 0] += 1 } }
    }
}
