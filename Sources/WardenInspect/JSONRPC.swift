import Cedar
import WardenCore

/// JSON-RPC 2.0 as MCP uses it: one message per HTTP body or stdio line, objects only (batches were removed from MCP
/// in 2025-06-18), ids that are strings or integers. Parsing is bounded (size and depth) and never traps: whatever
/// the bytes, the result is a message or an ``RPCError`` that can be sent back.
public enum JSONRPC {
    /// Standard codes (JSON-RPC 2.0 §5.1).
    public static let parseError = -32700
    public static let invalidRequest = -32600
    public static let methodNotFound = -32601
    public static let invalidParams = -32602
    public static let internalError = -32603
    /// Warden's own codes, in the implementation-defined band (-32000 to -32019; the SDKs use -32000 and -32001
    /// themselves).
    public static let accessDenied = -32003
    public static let approvalRefused = -32010
    public static let toolChanged = -32011
    public static let resultWithheld = -32012
    public static let upstreamUnavailable = -32013
    public static let rateLimited = -32014
    /// MCP 2026-07-28: the HTTP headers disagree with the body, or required ones are missing or repeated.
    public static let headerMismatch = -32020
    /// MCP 2026-07-28: the request's protocol version is not served.
    public static let unsupportedProtocolVersion = -32022

    /// Deepest nesting accepted in a message.
    public static let maxDepth = 64

    /// A request or notification id: a string or an integer (kept as its JSON text).
    public enum ID: Sendable, Hashable {
        case string(String)
        case number(String)

        public var json: JSONValue {
            switch self {
            case .string(let s): .string(s)
            case .number(let n): .number(n)
            }
        }
    }

    public enum Message: Sendable {
        case request(id: ID, method: String, params: JSONValue?)
        case notification(method: String, params: JSONValue?)
        case response(id: ID?, body: JSONValue)

        public var method: String? {
            switch self {
            case .request(_, let m, _), .notification(let m, _): m
            case .response: nil
            }
        }
    }

    /// A JSON-RPC error to send back; `id` is the request's when it could be read.
    public struct RPCError: Error, Sendable {
        public var code: Int
        public var message: String
        public var id: ID?
        public var data: JSONValue?

        public init(_ code: Int, _ message: String, id: ID? = nil, data: JSONValue? = nil) {
            self.code = code
            self.message = message
            self.id = id
            self.data = data
        }

        public var json: JSONValue { JSONRPC.error(id: id, code: code, message: message, data: data) }
    }

    /// Parses one message. Batches (arrays) are refused with `invalidRequest`.
    public static func parse(_ bytes: [UInt8], maxBytes: Int) throws(RPCError) -> Message {
        guard bytes.count <= maxBytes else {
            throw RPCError(invalidRequest, "the message is larger than \(maxBytes) bytes")
        }
        let value: JSONValue
        do {
            value = try JSONValue.parse(bytes, maxDepth: maxDepth, maxBytes: maxBytes)
        } catch {
            throw RPCError(parseError, "the body is not JSON: \(String(describing: error).prefix(200))")
        }
        return try message(value)
    }

    /// Classifies a parsed value as a request, a notification or a response.
    public static func message(_ value: JSONValue) throws(RPCError) -> Message {
        if case .array = value { throw RPCError(invalidRequest, "batches are not supported (MCP sends one message)") }
        guard case .object(let pairs) = value else { throw RPCError(invalidRequest, "a message is a JSON object") }
        var version: JSONValue?
        var idValue: JSONValue?
        var method: JSONValue?
        var params: JSONValue?
        var result: JSONValue?
        var error: JSONValue?
        for (k, v) in pairs {
            switch k {
            case "jsonrpc": version = v
            case "id": idValue = v
            case "method": method = v
            case "params": params = v
            case "result": result = v
            case "error": error = v
            default: continue
            }
        }
        var id: ID?
        if let idValue {
            switch idValue {
            case .string(let s) where s.utf8.count <= 256: id = .string(s)
            case .number(let n) where n.utf8.count <= 20 && Int64(n) != nil: id = .number(n)
            case .null where method == nil: id = nil
            default: throw RPCError(invalidRequest, "an id is a string or an integer")
            }
        }
        guard case .string("2.0") = version else { throw RPCError(invalidRequest, "jsonrpc must be \"2.0\"", id: id) }
        if let method {
            guard case .string(let m) = method, !m.isEmpty, m.utf8.count <= 256 else {
                throw RPCError(invalidRequest, "method must be a non-empty string", id: id)
            }
            if let params {
                guard case .object = params else { throw RPCError(invalidParams, "params must be an object", id: id) }
            }
            guard result == nil, error == nil else {
                throw RPCError(invalidRequest, "a request has no result or error", id: id)
            }
            if let id { return .request(id: id, method: m, params: params) }
            guard idValue == nil else { throw RPCError(invalidRequest, "a request id may not be null") }
            return .notification(method: m, params: params)
        }
        guard (result == nil) != (error == nil) else {
            throw RPCError(invalidRequest, "a message needs a method, or exactly one of result and error", id: id)
        }
        return .response(id: id, body: value)
    }

    public static func result(id: ID, _ result: JSONValue) -> JSONValue {
        .object([("jsonrpc", .string("2.0")), ("id", id.json), ("result", result)])
    }

    public static func error(id: ID?, code: Int, message: String, data: JSONValue? = nil) -> JSONValue {
        var e: [(String, JSONValue)] = [("code", .number(String(code))), ("message", .string(message))]
        if let data { e.append(("data", data)) }
        return .object([("jsonrpc", .string("2.0")), ("id", id?.json ?? .null), ("error", .object(e))])
    }

    public static func request(id: ID, method: String, params: JSONValue?) -> JSONValue {
        var pairs: [(String, JSONValue)] = [("jsonrpc", .string("2.0")), ("id", id.json), ("method", .string(method))]
        if let params { pairs.append(("params", params)) }
        return .object(pairs)
    }

    public static func notification(method: String, params: JSONValue?) -> JSONValue {
        var pairs: [(String, JSONValue)] = [("jsonrpc", .string("2.0")), ("method", .string(method))]
        if let params { pairs.append(("params", params)) }
        return .object(pairs)
    }
}

extension JSONValue {
    /// The object with `key` set to `value` (replaced in place, or appended).
    public func setting(_ key: String, _ value: JSONValue) -> JSONValue {
        guard case .object(var pairs) = self else { return self }
        if let i = pairs.firstIndex(where: { $0.0 == key }) { pairs[i].1 = value } else { pairs.append((key, value)) }
        return .object(pairs)
    }

    /// The object without `key`.
    package func removing(_ key: String) -> JSONValue {
        guard case .object(let pairs) = self else { return self }
        return .object(pairs.filter { $0.0 != key })
    }

    /// Canonical text for digests: object keys sorted by their UTF-16 code units (RFC 8785's order), no whitespace;
    /// numbers as written.
    package var canonical: String {
        var out = ""
        writeCanonical(to: &out)
        return out
    }

    private func writeCanonical(to out: inout String) {
        switch self {
        case .array(let items):
            out += "["
            for (i, v) in items.enumerated() {
                if i > 0 { out += "," }
                v.writeCanonical(to: &out)
            }
            out += "]"
        case .object(let pairs):
            out += "{"
            for (i, (k, v)) in pairs.sorted(by: { Array($0.0.utf16).lexicographicallyPrecedes(Array($1.0.utf16)) })
                .enumerated()
            {
                if i > 0 { out += "," }
                JSONValue.writeString(k, to: &out)
                out += ":"
                v.writeCanonical(to: &out)
            }
            out += "}"
        default:
            out += serialized
        }
    }
}
