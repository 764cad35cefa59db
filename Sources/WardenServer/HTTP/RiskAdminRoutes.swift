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
            // Where to start: `after` (an alert id, exclusive), `since` (inclusive) or the stream's `Last-Event-ID`.
            let after = try alertsAfter(request)
            let wantsStream = request.headers[.accept]?.contains("text/event-stream") ?? false
            if let after, !wantsStream {
                // A page of the record, from the audit log.
                let limit = try AuditRoutes.integer(request, "limit", default: 100, range: 1...1000)
                let page = try RiskHub.alerts(in: cp.audit, after: after, limit: Int(limit))
                return HTTPSupport.json(
                    .ok, .object([("alerts", .array(page.alerts)), ("next", .number(String(page.next)))]))
            }
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
                        // Resuming: what the log holds after the client's last id (subscribed first, so nothing
                        // published meanwhile is missed; what both give is sent once).
                        var sent = after ?? 0
                        if let after {
                            var next = after
                            while true {
                                let page = try RiskHub.alerts(in: cp.audit, after: next, limit: 500)
                                for alert in page.alerts { try await writer.write(ByteBuffer(string: event(alert))) }
                                if page.alerts.isEmpty { break }
                                next = page.next
                            }
                            sent = next
                        }
                        for await line in stream {
                            if line.isEmpty {
                                try await writer.write(ByteBuffer(string: ": keep-alive\n\n"))
                                continue
                            }
                            guard let alert = try? JSONValue.parse(line), let n = alert["id"]?.integerValue, n > sent
                            else { continue }
                            sent = n
                            try await writer.write(ByteBuffer(string: event(alert)))
                        }
                    } onGracefulShutdown: {
                        cp.risk.unsubscribe(id)
                    }
                    try await writer.finish(nil)
                })
        }
    }

    /// One alert as a server-sent event: its id (the audit entry's sequence number), so that a client resumes with
    /// `Last-Event-ID`.
    static func event(_ alert: JSONValue) -> String {
        "id: \(alert["id"]?.integerValue ?? 0)\nevent: alert\ndata: \(alert.serialized)\n\n"
    }

    /// The alert id to start after: `after` (exclusive), `since` (inclusive) or the `Last-Event-ID` header; nil for
    /// a stream of what comes next.
    static func alertsAfter(_ request: Request) throws(WardenError) -> Int64? {
        let range: ClosedRange<Int64> = 0...Int64.max
        if request.uri.queryParameters["after"] != nil {
            return try AuditRoutes.integer(request, "after", default: nil, range: range)
        }
        if request.uri.queryParameters["since"] != nil {
            return max(0, try AuditRoutes.integer(request, "since", default: nil, range: range) - 1)
        }
        guard let text = request.headers[HTTPField.Name("Last-Event-ID")!] else { return nil }
        guard let n = Int64(text.trimmingCharacters(in: .whitespaces)), n >= 0 else {
            throw WardenError(.invalidRequest, "Last-Event-ID must be an alert id")
        }
        return n
    }
}
