import Cedar
import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import Synchronization
import WardenAudit
import WardenControlPlane
import WardenCore
import WardenIdentity
import WardenInspect
import WardenRisk

/// Resources and prompts of one server: listed through Cedar, read and got per call.
extension MCPGateway {
    func listOther(_ c: MCPCall, method: String, params: JSONValue?) async throws(JSONRPC.RPCError) -> JSONValue {
        guard let name = c.server, let s = servers[name] else {
            throw JSONRPC.RPCError(JSONRPC.methodNotFound, "\(method) is served at /mcp/<server>")
        }
        guard hasServerScope(c.agent, name) else {
            let key =
                method == "prompts/list" ? "prompts" : method == "resources/list" ? "resources" : "resourceTemplates"
            return .object([(key, .array([]))])
        }
        let response: JSONValue
        do throws(UpstreamFailure) {
            var p = params?.removing("_meta")
            if case .object(let pairs)? = p, pairs.isEmpty { p = nil }
            response = try await s.upstream.request(method, params: p)
        } catch {
            throw upstreamFailed(s, error)
        }
        guard case .success(let result) = unwrap(response) else {
            if case .failure(let e) = unwrap(response) { throw e }
            throw JSONRPC.RPCError(JSONRPC.internalError, "no result")
        }
        let (key, action, idKey, type) =
            switch method {
            case "prompts/list": ("prompts", "mcp:prompts/get", "name", "Prompt")
            case "resources/list": ("resources", "mcp:resources/read", "uri", "Resource")
            default: ("resourceTemplates", "mcp:resources/read", "uriTemplate", "Resource")
            }
        guard case .array(let items)? = result[key] else { return result }
        let kept = items.filter { item in
            guard let id = item[idKey]?.stringValue else { return false }
            return decide(c, action: action, resource: otherEntity(type, s, id), parent: s.entity, context: [:]).allowed
        }
        return result.setting(key, .array(kept))
    }

    func otherEntity(_ type: String, _ s: MCPServerRuntime, _ id: String) -> Entity {
        let key = type == "Prompt" ? "name" : "uri"
        return Entity(
            uid: EntityUID(type, s.config.name + "/" + id),
            attributes: [
                key: .string(id), "server": .string(s.config.name), "allTools": .string(s.config.name + "/*"),
            ],
            parents: [s.entity.uid])
    }

    /// `resources/read` and `prompts/get`: decided per call, recorded, forwarded, screened.
    func readOther(_ c: MCPCall, method: String, params: JSONValue) async throws(JSONRPC.RPCError) -> JSONValue {
        let isPrompt = method == "prompts/get"
        let key = isPrompt ? "name" : "uri"
        guard let id = params[key]?.stringValue, !id.isEmpty, id.utf8.count <= 2048 else {
            throw JSONRPC.RPCError(JSONRPC.invalidParams, "\(method) needs params.\(key)")
        }
        guard let name = c.server, let s = servers[name] else {
            throw JSONRPC.RPCError(JSONRPC.methodNotFound, "\(method) is served at /mcp/<server>")
        }
        let action = isPrompt ? "mcp:prompts/get" : "mcp:resources/read"
        let entity = otherEntity(isPrompt ? "Prompt" : "Resource", s, id)
        let resource = entity.uid.description
        var extra: [String: Value] = [:]
        var forwarded: [(String, JSONValue)] = [(key, .string(id))]
        var details: [(String, String)] = [("server", name), (key, String(id.prefix(512)))]
        if isPrompt {
            let raw = params["arguments"] ?? .object([])
            guard case .object = raw else {
                throw JSONRPC.RPCError(JSONRPC.invalidParams, "params.arguments must be an object")
            }
            // Numbers in their one spelling, for Cedar and the upstream alike.
            guard let args = JSONNumber.canonicalizing(raw) else {
                throw JSONRPC.RPCError(JSONRPC.invalidParams, Self.numberOutOfRange)
            }
            guard case .some(.some(let argsValue)) = Self.cedarValue(args) else { throw Self.argumentsTooLarge }
            extra["arguments"] = argsValue
            forwarded.append(("arguments", args))
            details.append(
                ("arguments_digest", "sha256:" + Attestation.hex(SHA256.hash(data: Array(args.canonical.utf8)))))
        }
        guard hasServerScope(c.agent, name) else {
            throw refused(
                c, Self.judged(action, resource, details),
                Refusal(.forbidden, .accessDenied, .insufficientScope, "the token carries no tool scope of \(name)"),
                code: JSONRPC.accessDenied)
        }
        let verdict = decide(c, action: action, resource: entity, parent: s.entity, context: extra)
        guard verdict.allowed else {
            throw refused(
                c, Self.judged(action, resource, details), Decide.refusal(verdict), code: JSONRPC.accessDenied)
        }
        do throws(Refusal) {
            try pipeline.limit.run(c.caller)
            try pipeline.recorder.admit(c.call, Self.judged(action, resource, details), policies: verdict.policies)
        } catch {
            throw refused(
                c, Self.judged(action, resource, details), error,
                code: error.reason == .rateLimited ? JSONRPC.rateLimited : JSONRPC.internalError)
        }
        let response: JSONValue
        do throws(UpstreamFailure) {
            response = try await s.upstream.request(method, params: .object(forwarded))
        } catch {
            throw upstreamFailed(s, error)
        }
        switch unwrap(response) {
        case .success(let result): return try screen(c, s, result, resource: resource, details: details)
        case .failure(let e): throw screened(s, e)
        }
    }
}
