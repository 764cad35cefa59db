import Cedar
import Foundation
import HTTPTypes
import Hummingbird
import WardenControlPlane
import WardenCore

extension HTTPField.Name {
    package static let dpop = HTTPField.Name("DPoP")!
    package static let dpopNonce = HTTPField.Name("DPoP-Nonce")!
}

/// Which error convention an endpoint speaks.
package enum ErrorStyle {
    /// RFC 6749 §5.2 token endpoint errors.
    case token
    /// RFC 6750 / RFC 9449 protected resource errors with `WWW-Authenticate: DPoP`.
    case protected
    /// Admin API (Bearer admin token).
    case admin
    /// Enrollment.
    case enroll
}

package enum HTTPSupport {
    /// Largest request bodies, by endpoint.
    package static let maxFormBytes = 16 * 1024
    package static let maxJSONBytes = 64 * 1024

    package static func json(_ status: HTTPResponse.Status, _ value: JSONValue, headers: HTTPFields = [:]) -> Response {
        var h = headers
        h[.contentType] = "application/json"
        h[.cacheControl] = "no-store"
        return Response(
            status: status, headers: h, body: .init(byteBuffer: ByteBuffer(string: value.serialized + "\n")))
    }

    /// A header value quoted for `WWW-Authenticate` parameters.
    static func quoted(_ s: String) -> String {
        "\"" + s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "'") + "\""
    }

    /// Maps an error to the response its endpoint's convention calls for. Messages never carry secrets (see
    /// ``WardenError``), so they are safe to return.
    package static func response(_ error: WardenError, style: ErrorStyle, nonce: String?) -> Response {
        let code = error.code.description
        var headers: HTTPFields = [:]
        if error.code == .useDPoPNonce, let nonce { headers[.dpopNonce] = nonce }
        let body = JSONValue.object([("error", .string(code)), ("error_description", .string(error.message))])
        switch error.code {
        case .storage, .io:
            return json(
                .serviceUnavailable,
                .object([
                    ("error", .string("temporarily_unavailable")), ("error_description", .string(error.message)),
                ]), headers: headers)
        default: break
        }
        switch style {
        case .token:
            if error.code == .invalidClient {
                // Every 401 carries a challenge (RFC 7235); client authentication here is private_key_jwt.
                headers[.wwwAuthenticate] = "DPoP error=\"invalid_client\", algs=\"ES256\""
                return json(.unauthorized, body, headers: headers)
            }
            return json(.badRequest, body, headers: headers)
        case .protected:
            headers[.wwwAuthenticate] = challenge(error)
            switch error.code {
            case .invalidToken, .invalidDPoPProof, .useDPoPNonce, .unauthenticated:
                return json(.unauthorized, body, headers: headers)
            case .accessDenied:
                return json(.forbidden, body, headers: headers)
            default:
                return json(.badRequest, body, headers: headers)
            }
        case .admin:
            switch error.code {
            case .accessDenied:
                headers[.wwwAuthenticate] = "Bearer realm=\"warden-admin\""
                return json(.unauthorized, body, headers: headers)
            case .notFound: return json(.notFound, body, headers: headers)
            case .conflict: return json(.conflict, body, headers: headers)
            default: return json(.badRequest, body, headers: headers)
            }
        case .enroll:
            switch error.code {
            case .attestationFailed, .accessDenied: return json(.forbidden, body, headers: headers)
            case .conflict: return json(.conflict, body, headers: headers)
            default: return json(.badRequest, body, headers: headers)
            }
        }
    }

    /// The `WWW-Authenticate: DPoP` challenge of a protected resource's refusal (RFC 6750 §3, RFC 9449 §7.1): with
    /// the error for a bad token or proof and for missing scope, bare when no credentials came; nil otherwise.
    package static func challenge(_ error: WardenError) -> String? {
        switch error.code {
        case .invalidToken, .invalidDPoPProof, .useDPoPNonce:
            return
                "DPoP error=\(quoted(error.code.description)), error_description=\(quoted(error.message)), algs=\"ES256\""
        case .unauthenticated:
            return "DPoP algs=\"ES256\""
        default:
            guard error.reason == "insufficient_scope" else { return nil }
            return "DPoP error=\"insufficient_scope\", error_description=\(quoted(error.message)), algs=\"ES256\""
        }
    }

    /// A failure of the upstream exchange (`upstream_busy`, `upstream_timeout`, ...): the code is the reason.
    package static func upstreamFailure(_ status: HTTPResponse.Status, _ code: String, _ message: String) -> Response {
        json(
            status,
            .object([("error", .string(code)), ("error_description", .string(message)), ("reason", .string(code))]))
    }

    /// Collects a body of at most `limit` bytes.
    package static func body(_ request: Request, limit: Int) async throws(WardenError) -> [UInt8] {
        if let length = request.headers[.contentLength].flatMap(Int.init), length > limit {
            throw WardenError(.invalidRequest, "the request body is larger than \(limit) bytes")
        }
        var req = request
        do {
            let buffer = try await req.collectBody(upTo: limit)
            return Array(buffer.readableBytesView)
        } catch {
            throw WardenError(.invalidRequest, "the request body is larger than \(limit) bytes or could not be read")
        }
    }

    /// Parses `application/x-www-form-urlencoded` (RFC 6749 §3.2: no parameter twice, empty values as absent).
    package static func form(_ bytes: [UInt8]) throws(WardenError) -> [String: String] {
        var out: [String: String] = [:]
        var seen = Set<String>()
        for (i, pair) in bytes.split(separator: UInt8(ascii: "&")).enumerated() {
            guard i < 32 else { throw WardenError(.invalidRequest, "too many form parameters") }
            let parts = pair.split(separator: UInt8(ascii: "="), maxSplits: 1, omittingEmptySubsequences: false)
            guard let name = percentDecode(parts[0]), !name.isEmpty,
                let value = percentDecode(parts.count > 1 ? parts[1] : [])
            else {
                throw WardenError(.invalidRequest, "the form body is not valid x-www-form-urlencoded UTF-8")
            }
            guard seen.insert(name).inserted else {
                throw WardenError(.invalidRequest, "parameter \(name) is given twice")
            }
            if !value.isEmpty { out[name] = value }
        }
        return out
    }

    /// `+` as space, then Foundation's percent-decoding (nil for a bad escape or bytes that are not UTF-8).
    static func percentDecode(_ bytes: ArraySlice<UInt8>) -> String? {
        String(validating: bytes, as: UTF8.self)?.replacingOccurrences(of: "+", with: " ").removingPercentEncoding
    }

    /// The single value of a header that must appear at most once.
    package static func single(_ request: Request, _ name: HTTPField.Name, code: WardenError.Code) throws(WardenError)
        -> String?
    {
        let values = request.headers[values: name]
        guard values.count <= 1 else { throw WardenError(code, "the request has more than one \(name) header") }
        return values.first
    }
}
