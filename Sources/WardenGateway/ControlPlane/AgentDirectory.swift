import Synchronization
import WardenCore

/// The agents the hot path needs, in memory: looked up by SPIFFE ID on every request (O(1)), loaded from the store at
/// start and replaced on every write the control plane makes, so a revocation or quarantine applies to the very next
/// request.
public final class AgentDirectory: Sendable {
    private let agents = Mutex<[String: AgentRecord]>([:])

    public init(_ records: [AgentRecord] = []) {
        agents.withLock { a in for r in records { a[r.spiffeID.description] = r } }
    }

    public func agent(_ spiffeID: String) -> AgentRecord? { agents.withLock { $0[spiffeID] } }

    public func update(_ r: AgentRecord) { agents.withLock { $0[r.spiffeID.description] = r } }

    public var count: Int { agents.withLock { $0.count } }
}
