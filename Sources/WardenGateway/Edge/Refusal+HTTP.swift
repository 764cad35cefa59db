import Cedar
import HTTPTypes
import Hummingbird
import WardenCore

extension Refusal {
    /// The refusal as the agent gets it, on `/r/` and on `/mcp` before a JSON-RPC message is read: the status, the
    /// wire error, its description and the reason code (with the deciding policies), the `WWW-Authenticate: DPoP`
    /// challenge (``HTTPSupport/challenge(_:)``), `Retry-After` for a rate limit, and the current DPoP nonce when
    /// nonces are required (RFC 9449 §9: every refusal carries it, not only the challenge).
    package func response(nonce: String?) -> Response {
        var headers: HTTPFields = [:]
        if let challenge = HTTPSupport.challenge(error) { headers[.wwwAuthenticate] = challenge }
        if let nonce { headers[.dpopNonce] = nonce }
        if let retryAfter { headers[.retryAfter] = String(retryAfter) }
        var pairs: [(String, JSONValue)] = [
            ("error", .string(error.code.description)), ("error_description", .string(error.message)),
            ("reason", .string(error.auditReason)),
        ]
        if !policies.isEmpty { pairs.append(("policies", .array(policies.map { .string($0) }))) }
        return HTTPSupport.json(status, .object(pairs), headers: headers)
    }
}
