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

    /// The decision on a `/r/` call (``Decide``): action `call` on the route's `Service` (in its `Segment`) or on the
    /// target `Agent`, with this front end's context keys: `method`, `path` (canonical), `route`, `query` (parameter
    /// names), `contentLength` (-1 when unknown).
    func decide(
        _ caller: Caller, call: Call, route: Route, request: Request, path: String, query: Set<Value>, length: Int?
    ) throws(Refusal) -> PolicyEngine.Verdict {
        var entities: [Entity] = []
        let resource: EntityUID
        if let service = route.service {
            entities.append(service)
            resource = service.uid
        } else {
            guard let t = cp.agents.entry(route.resource.id) else {
                throw Refusal(.serviceUnavailable, .notFound, .targetUnavailable, "the route's agent is not registered")
            }
            guard t.record.state == .active else {
                throw Refusal(
                    .serviceUnavailable, .accessDenied, .targetUnavailable,
                    "the route's agent is \(t.record.state.rawValue)")
            }
            if t.entity.uid != caller.principal.uid { entities.append(t.entity) }
            resource = t.entity.uid
        }
        return pipeline.decide.run(
            caller, source: call.source, action: "call", resource: resource, entities: entities,
            context: Self.callContext(
                method: request.method.rawValue, path: path, route: route.config.name, query: query, length: length),
            feed: route.riskFeed)
    }

    /// This front end's context keys (`docs/configuration.md`): `method`, `path` (canonical), `route`, `query`
    /// (parameter names), `contentLength` (-1 when unknown).
    static func callContext(method: String, path: String, route: String, query: Set<Value>, length: Int?)
        -> [String: Value]
    {
        [
            "method": .string(method), "path": .string(path), "route": .string(route), "query": .set(query),
            "contentLength": .long(Int64(length ?? -1)),
        ]
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
