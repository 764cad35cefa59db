import Cedar
import WardenControlPlane
import WardenCore

/// The caller of a call once ``Authenticate`` let it through: its verified token and agent record, its Cedar
/// principal (manifest attributes, roles and team as parents) and its trust score at that moment.
package struct Caller: Sendable {
    package let agent: AuthenticatedAgent
    package let principal: Entity
    package let trust: Int

    package var spiffeID: String { agent.agent.spiffeID.description }
}

/// One call through the pipeline: where it came in and when, filled stage by stage (``Caller`` after
/// authentication). Each front end carries its own facts beside it (the route and canonical path of `/r/`; the MCP
/// era, server and tool).
package struct Call: Sendable {
    package let start: ContinuousClock.Instant
    /// The client's address (nil in in-process tests).
    package let source: String?
    package var caller: Caller?

    package init(source: String?, start: ContinuousClock.Instant = .now) {
        self.source = source
        self.start = start
    }

    /// Microseconds since the call came in.
    package var elapsedMicros: Int64 { Self.micros(ContinuousClock.now - start) }

    package static func micros(_ d: Duration) -> Int64 {
        d.components.seconds * 1_000_000 + d.components.attoseconds / 1_000_000_000_000
    }
}
