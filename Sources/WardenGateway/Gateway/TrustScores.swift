import Synchronization
import WardenCore

/// Trust scores (0–100) per agent, as policies see them in `context.trust`. Until the risk engine lowers or restores a
/// score, an agent's score is its attestation's strength: 90 when its binary was attested with its manifest, 70 for
/// the manifest alone, 0 before enrollment.
public final class TrustScores: Sendable {
    private let overrides = Mutex<[String: Int]>([:])

    public init() {}

    /// The score the attestation earns.
    public static func baseline(_ r: AgentRecord) -> Int {
        switch r.attestation {
        case "manifest+binary": 90
        case "manifest": 70
        default: 0
        }
    }

    /// The agent's current score.
    public func score(_ r: AgentRecord) -> Int { overrides.withLock { $0[r.id] } ?? Self.baseline(r) }

    /// Sets an agent's score (clamped to 0...100); nil returns it to its baseline.
    public func set(_ agentID: String, _ score: Int?) {
        overrides.withLock { $0[agentID] = score.map { min(100, max(0, $0)) } }
    }
}
