import AsyncHTTPClient
import Cedar
import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import NIOHTTP1
import Synchronization
import WardenAudit
import WardenControlPlane
import WardenCore
import WardenIdentity
import WardenRisk

/// The Cedar request of a gateway call.
extension Gateway {
    // MARK: Cedar

    /// The Cedar request: principal the agent (manifest attributes, roles and team as parents), action `call`,
    /// resource the route's `Service` (or the target `Agent`), and the context.
    func cedarRequest(
        _ who: AuthenticatedAgent, principal: Entity, route: Route, request: Request, path: String, query: Set<Value>,
        source: String?, length: Int?, trust: Int
    ) throws(Refusal) -> (Cedar.Request, Entities) {
        var entities = [principal]
        let resource: EntityUID
        if let service = route.service {
            entities.append(service)
            resource = service.uid
        } else {
            guard let t = cp.agents.entry(route.resource.id) else {
                throw Refusal(
                    status: .serviceUnavailable,
                    error: WardenError(.notFound, "the route's agent is not registered", reason: "target_unavailable"))
            }
            guard t.record.state == .active else {
                throw Refusal(
                    status: .serviceUnavailable,
                    error: WardenError(
                        .accessDenied, "the route's agent is \(t.record.state.rawValue)", reason: "target_unavailable"))
            }
            if t.entity.uid != principal.uid { entities.append(t.entity) }
            resource = t.entity.uid
        }
        var context: [String: Value] = [
            "method": .string(request.method.rawValue),
            "path": .string(path),
            "route": .string(route.config.name),
            "query": .set(query),
            "contentLength": .long(Int64(length ?? -1)),
            "time": .ext(.datetime(CedarDatetime(milliseconds: cp.now() * 1000))),
            "trust": .long(Int64(trust)),
            "delegation": .set(Set(who.claims.delegation.map { .string($0) })),
            "delegated": .bool(!who.claims.actors.isEmpty),
            "subject": .string(who.claims.subject),
        ]
        if let source, let ip = IPAddr.parse(source) { context["source"] = .ext(.ipaddr(ip)) }
        let built: Entities
        do { built = try Entities(entities) } catch {
            throw Refusal(
                status: .forbidden, error: WardenError(.accessDenied, "entities: \(error)", reason: "policy_error"))
        }
        return (
            Cedar.Request(
                principal: principal.uid, action: EntityUID("Action", "call"), resource: resource, context: context),
            built
        )
    }

    /// The most query parameters a request may have (more are refused: every one must reach Cedar).
    static let maxQueryParameters = 64

    /// The names of the query parameters (percent-decoded); at most ``maxQueryParameters`` are read, and a query with
    /// more is refused by ``target(_:query:)``.
    static func queryKeys(_ query: String?) -> Set<Value> {
        guard let query, !query.isEmpty else { return [] }
        var out = Set<Value>()
        for pair in query.split(separator: "&").prefix(maxQueryParameters) {
            let name = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)[0]
            let decoded = String(name).replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? String(name)
            if !decoded.isEmpty { out.insert(.string(decoded)) }
        }
        return out
    }
}
