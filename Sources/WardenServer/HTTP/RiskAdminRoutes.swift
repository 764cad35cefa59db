import Cedar
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import ServiceLifecycle
import WardenControlPlane
import WardenCore
import WardenGateway
import WardenRisk

/// `/v1/admin/risk`: the engine's counters, an agent's trust and baseline summary, and the live alert stream
/// (server-sent events, one JSON alert per event).
enum RiskAdminRoutes {
    static func add(to admin: RouterGroup<WardenRequestContext>, _ cp: ControlPlane) {
        let risk = admin.group("risk")
        risk.get("") { request, context in
            guard let e = cp.risk.attached else {
                return HTTPSupport.json(.ok, .object([("enabled", .bool(false))]))
            }
            let alerts = cp.risk.recentAlerts.compactMap { try? JSONValue.parse($0) }
            return HTTPSupport.json(
                .ok,
                .object([
                    ("enabled", .bool(true)),
                    ("processed", .number(String(e.processed.load(ordering: .relaxed)))),
                    ("dropped", .number(String(e.dropped.load(ordering: .relaxed)))),
                    ("alerts", .number(String(e.alerts.load(ordering: .relaxed)))),
                    ("agents_tracked", .number(String(e.trackedAgents))),
                    ("recent_alerts", .array(alerts)),
                ]))
        }
        risk.get("/agents/:name") { request, context in
            let name = context.parameters.get("name") ?? ""
            let record = try cp.agent(name)
            let spiffe = record.spiffeID.description
            var pairs: [(String, JSONValue)] = [
                ("spiffe_id", .string(spiffe)), ("trust", .number(String(cp.trust.score(record)))),
                ("trust_baseline", .number(String(TrustScores.baseline(record)))),
                ("throttled", .bool(cp.risk.isThrottled(spiffe, now: cp.clock.wallSeconds))),
                ("approval_required", .bool(cp.risk.needsApproval(spiffe, now: cp.clock.wallSeconds))),
            ]
            if let (b, penalty, findings) = cp.risk.attached?.snapshot(agentID: spiffe) {
                pairs += [
                    ("penalty", .number(String(format: "%.1f", penalty))), ("findings", .number(String(findings))),
                    ("events", .number(String(b.events))),
                    ("first_seen", .number(String(Int64(b.firstSeen)))),
                    ("resources", .array(b.resources.members.sorted().prefix(100).map { .string($0) })),
                    ("segments", .array(b.segments.members.sorted().map { .string($0) })),
                    ("mean_requests_per_minute", .number(String(format: "%.2f", b.meanRequestsPerMinute))),
                    ("bytes_out_24h", .number(String(b.bytesLast24h(now: cp.clock.wallSeconds)))),
                ]
            }
            if let engine = cp.risk.attached {
                let ready = engine.readiness(agentID: spiffe, roles: record.manifest.roles, time: cp.clock.wallSeconds)
                pairs.append(("tuning", .string(engine.tunings.origin(agentID: spiffe, roles: record.manifest.roles))))
                pairs.append(
                    (
                        "detectors",
                        .array(
                            ready.map { d in
                                .object(
                                    [("name", .string(d.detector)), ("ready", .bool(d.notReady == nil))]
                                        + (d.notReady.map { [("why", .string($0))] } ?? []))
                            })
                    ))
            }
            return HTTPSupport.json(.ok, .object(pairs))
        }
        risk.get("/alerts") { request, context in
            guard let (id, stream) = cp.risk.subscribe() else {
                throw WardenError(.storage, "too many alert subscribers")
            }
            var headers = HTTPFields()
            headers[.contentType] = "text/event-stream"
            headers[.cacheControl] = "no-store"
            return Response(
                status: .ok, headers: headers,
                body: ResponseBody { writer in
                    // Ends when the client goes away (the write fails) or the server begins to shut down: the
                    // listener's graceful drain waits for every response to end.
                    try await withGracefulShutdownHandler {
                        try await writer.write(ByteBuffer(string: ": warden risk alerts\n\n"))
                        for await line in stream {
                            try await writer.write(
                                ByteBuffer(
                                    string: line.isEmpty
                                        ? ": keep-alive\n\n" : "event: alert\ndata: \(line)\n\n"))
                        }
                    } onGracefulShutdown: {
                        cp.risk.unsubscribe(id)
                    }
                    try await writer.finish(nil)
                })
        }
    }
}
