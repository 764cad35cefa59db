import Synchronization
import WardenCore

/// One agent's trust override, read without a lock on the hot path (the directory entry carries it). -1 means "the
/// attestation's baseline".
public final class TrustCell: Sendable {
    let value = Atomic<Int>(-1)
    public init() {}
}

/// Trust scores (0–100) per agent, as policies see them in `context.trust`. An agent's score is its attestation's
/// strength (90 when its binary was attested with its manifest, 70 for the manifest alone, 0 before enrollment) until
/// the risk engine lowers it; it recovers towards that baseline over clean time. Reads are lock-free: each agent's
/// override lives in an atomic cell that its directory entry holds; writes (the risk engine's) look the cell up.
public final class TrustScores: Sendable {
    private let cells = Mutex<[String: TrustCell]>([:])

    public init() {}

    /// The score the attestation earns.
    public static func baseline(_ r: AgentRecord) -> Int {
        switch r.attestation {
        case "manifest+binary": 90
        case "manifest": 70
        default: 0
        }
    }

    /// The cell of an agent (created on first use; the same cell for the agent's whole life).
    public func cell(_ agentID: String) -> TrustCell {
        cells.withLock { c in
            if let cell = c[agentID] { return cell }
            let cell = TrustCell()
            c[agentID] = cell
            return cell
        }
    }

    /// The agent's current score, lock-free given its cell.
    public static func score(_ r: AgentRecord, cell: TrustCell) -> Int {
        let v = cell.value.load(ordering: .relaxed)
        return v >= 0 ? v : baseline(r)
    }

    /// The agent's current score (looks the cell up: for paths without a directory entry at hand).
    public func score(_ r: AgentRecord) -> Int { Self.score(r, cell: cell(r.id)) }

    /// Sets an agent's score (clamped to 0...100); nil returns it to its baseline.
    public func set(_ agentID: String, _ score: Int?) {
        cell(agentID).value.store(score.map { min(100, max(0, $0)) } ?? -1, ordering: .relaxed)
    }
}
