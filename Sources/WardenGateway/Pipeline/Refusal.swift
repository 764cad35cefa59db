import HTTPTypes
import WardenControlPlane
import WardenCore

/// A reason code: the one word the response, the audit entry, the metrics and the risk event all give for a refusal.
/// The codes of the pipeline's own stages are constants here; authentication's come from the control plane's
/// ``WardenError/auditReason`` (`invalid_token`, `token_revoked`, `agent_quarantined`, ...).
package struct Reason: Hashable, Sendable, CustomStringConvertible {
    package let rawValue: String

    package init(_ rawValue: String) { self.rawValue = rawValue }

    package var description: String { rawValue }

    package static let rateLimited = Reason("rate_limited")
    package static let insufficientScope = Reason("insufficient_scope")
    package static let policyDenied = Reason("policy_denied")
    package static let policyError = Reason("policy_error")
    package static let auditUnavailable = Reason("audit_unavailable")
    package static let credentialUnavailable = Reason("credential_unavailable")
    package static let unknownRoute = Reason("unknown_route")
    package static let invalidPath = Reason("invalid_path")
    package static let methodOverride = Reason("method_override")
    package static let bodyTooLarge = Reason("body_too_large")
    package static let bodyNotAllowed = Reason("body_not_allowed")
    package static let targetUnavailable = Reason("target_unavailable")
}

/// A refused call, as the stage that refused it says: the reason code with the wire error and message, the HTTP
/// status `/r/` answers with, the policies that decided, and the agent when its credentials were genuine (its state,
/// binding or a later stage refused it), so that the refusal is recorded as that agent's. MCP turns the same value
/// into a JSON-RPC error (``MCPGateway``); the recorder writes it down once (``Recorder``).
package struct Refusal: Error, Sendable {
    package var status: HTTPResponse.Status
    package var error: WardenError
    package var policies: [String] = []
    package var retryAfter: Int?
    package var who: AuthenticatedAgent?
    /// The consequence of the risk engine's own response (its throttle): not the agent's behaviour, so not handed
    /// back to the engine as the agent's refusal (it would escalate a throttle into a quarantine).
    package var byRiskEngine = false

    package init(
        status: HTTPResponse.Status, error: WardenError, policies: [String] = [], retryAfter: Int? = nil,
        who: AuthenticatedAgent? = nil
    ) {
        self.status = status
        self.error = error
        self.policies = policies
        self.retryAfter = retryAfter
        self.who = who
    }

    /// A refusal of one of the pipeline's stages.
    package init(
        _ status: HTTPResponse.Status, _ code: WardenError.Code, _ reason: Reason, _ message: String,
        policies: [String] = [], retryAfter: Int? = nil
    ) {
        self.init(
            status: status, error: WardenError(code, message, reason: reason.rawValue), policies: policies,
            retryAfter: retryAfter)
    }

    package var reason: Reason { Reason(error.auditReason) }

    /// The nonce challenge (RFC 9449 §8) is part of the protocol, not a refusal: never recorded or counted.
    package var isChallenge: Bool { error.code == .useDPoPNonce }
}
