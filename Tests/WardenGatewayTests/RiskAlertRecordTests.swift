import AsyncHTTPClient
import Cedar
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing
import WardenCore
import WardenTestSupport

@testable import WardenControlPlane
@testable import WardenGateway
@testable import WardenRisk
@testable import WardenServer

/// Alerts are records: each is a `risk.alert` audit entry whose sequence number is its id, naming the entry of the
/// call that triggered it, with the detector's evidence; paged from the log and resumable as a stream.
@Suite("Risk alerts as records (ids, causes, evidence, paging, Last-Event-ID)")
struct RiskAlertRecordTests {
    static func admin(_ env: GatewayEnv) throws -> HTTPFields { [.authorization: "Bearer \(try adminToken(env.f))"] }

    @Test("an alert names the triggering call's audit entry and carries the detector's evidence")
    func causeAndEvidence() async throws {
        try await withGateway { env in
            try await RiskContainmentTests.withEngine(env) { engine in
                let a = try env.f.agent("support-bot")
                let token = try env.token(a)
                for _ in 0..<5 {
                    #expect(try await env.call(a, .get, "/r/billing/v1/invoices", token: token).status == .forbidden)
                }
                try await RiskContainmentTests.drain(engine, env)
                let page = try await env.client.execute(
                    uri: "/v1/admin/risk/alerts?after=0", method: .get, headers: try Self.admin(env), body: nil)
                #expect(page.status == .ok)
                let alerts = page.json?["alerts"]?.arrayValue ?? []
                let alert = try #require(alerts.first)
                #expect(alerts.count == 1)
                // The id is the alert's own audit entry.
                let id = try #require(alert["id"]?.integerValue)
                let own = try #require(try env.f.cp.audit.entries(after: id - 1, limit: 1).first)
                #expect(own.0 == id && own.1.contains("\"action\":\"risk.alert\""))
                #expect(page.json?["next"]?.integerValue == id)
                // The cause is the fifth refusal's entry: the agent's, denied, before the alert.
                let cause = try #require(alert["cause_seq"]?.integerValue)
                let entry = try JSONValue.parse(
                    try #require(try env.f.cp.audit.entries(after: cause - 1, limit: 1).first).1)
                #expect(cause < id)
                #expect(entry["agent"]?.stringValue == a.id && entry["decision"]?.stringValue == "deny")
                #expect(entry["resource"]?.stringValue?.contains("billing") == true)
                // The detector's evidence: five refusals within the 60-second window.
                let finding = try #require(alert["findings"]?.arrayValue?.first)
                #expect(finding["detector"]?.stringValue == "denial_burst")
                #expect(finding["evidence"]?["refusals"]?.integerValue == 5)
                #expect(finding["evidence"]?["window_seconds"]?.integerValue == 60)
                #expect(alert["event_time"] != nil && alert["severity"]?.stringValue == "medium")
            }
        }
    }

    @Test("more alerts than any buffer: paged from the audit log; the stream resumes after Last-Event-ID, once each")
    func pagingAndResume() async throws {
        try await withGateway { env in
            env.f.cp.risk.heartbeatMillis.store(50, ordering: .relaxed)
            try await RiskContainmentTests.withEngine(env) { engine in
                // 150 alerts (a stolen-token report for each of 150 agents), more than /v1/admin/risk keeps.
                func theft(_ i: Int) {
                    engine.submit(
                        RiskEvent(
                            time: env.f.clock.wallSeconds, agentID: "spiffe://warden.local/agent/v\(i)",
                            kind: .tokenMisuse,
                            resource: "/r/x", allowed: false))
                }
                for i in 0..<150 { theft(i) }
                try await RiskContainmentTests.drain(engine, env)
                var ids: [Int64] = []
                var after: Int64 = 0
                for _ in 0..<10 {
                    let r = try await env.client.execute(
                        uri: "/v1/admin/risk/alerts?after=\(after)&limit=100", method: .get,
                        headers: try Self.admin(env),
                        body: nil)
                    let page = r.json?["alerts"]?.arrayValue ?? []
                    if page.isEmpty { break }
                    ids += page.compactMap { $0["id"]?.integerValue }
                    after = try #require(r.json?["next"]?.integerValue)
                }
                #expect(ids.count == 150 && ids == ids.sorted() && Set(ids).count == 150)
                // `since` is inclusive.
                let since = try await env.client.execute(
                    uri: "/v1/admin/risk/alerts?since=\(ids[149])", method: .get, headers: try Self.admin(env),
                    body: nil)
                #expect(since.json?["alerts"]?.arrayValue?.first?["id"]?.integerValue == ids[149])
                // A client that saw up to the 148th resumes: the last two from the log, then a new one live, each once.
                var request = HTTPClientRequest(
                    url: "http://127.0.0.1:\(try #require(env.client.port))/v1/admin/risk/alerts")
                request.headers.add(name: "Authorization", value: "Bearer \(try adminToken(env.f))")
                request.headers.add(name: "Accept", value: "text/event-stream")
                request.headers.add(name: "Last-Event-ID", value: String(ids[147]))
                let response = try await HTTPClient.shared.execute(request, timeout: .seconds(5))
                #expect(response.status == .ok)
                var text = ""
                var live = false
                for try await chunk in response.body.prefix(400) {
                    text += String(buffer: chunk)
                    let seen = text.components(separatedBy: "\nid: ").count + (text.hasPrefix("id: ") ? 1 : 0)
                    if !live, text.contains("id: \(ids[149])\n") {
                        live = true
                        theft(150)
                    }
                    if live, seen >= 4 { break }
                }
                let streamed = text.split(separator: "\n").filter { $0.hasPrefix("id: ") }.compactMap {
                    Int64($0.dropFirst(4))
                }
                #expect(streamed.count == 3, "\(text)")
                #expect(Array(streamed.prefix(2)) == [ids[148], ids[149]])
                #expect((streamed.last ?? 0) > ids[149])
                // A bad Last-Event-ID is refused, not taken as "from the start".
                var bad = HTTPClientRequest(
                    url: "http://127.0.0.1:\(try #require(env.client.port))/v1/admin/risk/alerts")
                bad.headers.add(name: "Authorization", value: "Bearer \(try adminToken(env.f))")
                bad.headers.add(name: "Last-Event-ID", value: "yesterday")
                #expect(try await HTTPClient.shared.execute(bad, timeout: .seconds(5)).status == .badRequest)
            }
        }
    }
}
