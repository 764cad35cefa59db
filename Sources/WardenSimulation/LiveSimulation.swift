import AsyncHTTPClient
import Cedar
import Crypto
import Foundation
import NIOCore
import Synchronization
import WardenClient
import WardenControlPlane
import WardenCore
import WardenGateway
import WardenIdentity
import WardenServer

/// `warden simulate --server URL` (`docs/risk.md`): the simulation's workload and attacks against a running Warden,
/// in real time, through its public HTTP interfaces only — the admin API to register the agents, enrollment and the
/// token endpoint as each agent, `/r/<route>` with DPoP for the calls, and the live alert stream
/// (`/v1/admin/risk/alerts`) for what the server's risk engine concluded. The server needs the workload's routes
/// (`warden simulate --setup DIR` writes such a configuration; their upstream is ``Simulation/fillerUpstream``, which the
/// command starts) and, for minutes of traffic to be enough, a compressed risk warm-up.
///
/// A live run lasts minutes, so the detectors that judge days of history (slow exfiltration, off hours) cannot fire:
/// the report says so in the attack's note instead of pretending.
public enum LiveSimulation {
    public struct Options: Sendable {
        public var server: String
        public var adminToken: String
        /// Seconds of normal traffic before the attacks: the server's risk warm-up must fit in them.
        public var normalSeconds: Double = 240
        /// Seconds of slow exfiltration.
        public var exfilSeconds: Double = 60
        /// Seconds between two ticks of the workload.
        public var tick: Double = 1
        /// How long to wait for the server's alert about an attack.
        public var alertWait: Duration = .seconds(3)

        public init(server: String, adminToken: String) {
            self.server = server
            // A token read from a file keeps its newline; a header cannot carry it.
            self.adminToken = adminToken.trimmingCharacters(in: .whitespacesAndNewlines)
        }
    }

    /// An agent registered and enrolled for this run, its token renewed every two minutes.
    final class LiveAgent: Sendable {
        let spiffeID: String
        let client: AgentClient
        let token = Mutex<(String, ContinuousClock.Instant)?>(nil)

        init(spiffeID: String, client: AgentClient) {
            self.spiffeID = spiffeID
            self.client = client
        }
    }

    /// The alerts the server streams, in arrival order.
    final class AlertFeed: Sendable {
        let alerts = Mutex<(list: [JSONValue], seen: Set<String>)>(([], []))
        let opened = Atomic<Bool>(false)

        /// Adds an alert unless it is already there (the stream and the backfill overlap).
        func add(_ alert: JSONValue) {
            let key = alert.serialized
            alerts.withLock { a in
                guard a.seen.count < 100_000, a.seen.insert(key).inserted else { return }
                a.list.append(alert)
            }
        }

        /// The server's last 100 alerts (`GET /v1/admin/risk`), for what a reconnecting stream missed.
        func backfill(_ admin: AdminClient) async {
            guard let status = try? await admin.call("GET", "/v1/admin/risk"),
                case .array(let recent)? = status["recent_alerts"]
            else { return }
            for alert in recent { add(alert) }
        }

        var count: Int { alerts.withLock { $0.list.count } }

        func since(_ mark: Int, where match: (String) -> Bool) -> [JSONValue] {
            alerts.withLock { a in
                a.list.dropFirst(mark).filter { match($0["agent"]?.stringValue ?? "") }
            }
        }

        /// Follows `GET /v1/admin/risk/alerts` (server-sent events) until cancelled, reconnecting (at most 100 times,
        /// half a second apart) when the stream ends.
        func follow(_ admin: AdminClient) -> Task<Void, Never> {
            Task {
                for _ in 0..<100 where !Task.isCancelled {
                    await followOnce(admin)
                    try? await Task.sleep(for: .milliseconds(500))
                }
            }
        }

        func followOnce(_ admin: AdminClient) async {
            guard (try? admin.http.checkCredentialsAllowed(path: "/v1/admin/risk/alerts")) != nil else { return }
            var request = HTTPClientRequest(url: admin.http.base + "/v1/admin/risk/alerts")
            request.headers.add(name: "Authorization", value: "Bearer \(admin.tokenValue)")
            request.headers.add(name: "Accept", value: "text/event-stream")
            guard let response = try? await HTTPClient.shared.execute(request, timeout: .seconds(10)),
                response.status == .ok
            else { return }
            opened.store(true, ordering: .relaxed)
            var pending: [UInt8] = []
            do {
                for try await chunk in response.body {
                    pending += chunk.readableBytesView
                    while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                        let line = pending[..<newline]
                        pending.removeSubrange(...newline)
                        guard line.starts(with: Array("data: ".utf8)),
                            let alert = try? JSONValue.parse(Array(line.dropFirst(6)), maxDepth: 32)
                        else { continue }
                        add(alert)
                    }
                    // One alert is a few hundred bytes: a longer line is not an alert.
                    if pending.count > 1 << 20 { pending.removeAll() }
                }
            } catch {}
        }
    }

    static func containment(_ alerts: [JSONValue]) -> Double? {
        alerts.lazy.compactMap { a -> Double? in
            if case .number(let n)? = a["containment_ms"] { return Double(n) }
            return nil
        }.first
    }

    /// Runs the workload for `normalSeconds`, then the five attacks; the agents it registered are decommissioned at
    /// the end. `progress` receives a line per phase.
    public static func run(_ o: Options, progress: @escaping @Sendable (String) -> Void = { _ in }) async throws
        -> Simulation.Report
    {
        let admin = AdminClient(server: o.server, token: o.adminToken)
        try admin.http.checkCredentialsAllowed()
        let status = try await admin.call("GET", "/v1/admin/risk")
        guard status["enabled"] == .bool(true) else {
            throw WardenClientError("the server's risk engine is disabled (risk.enabled: false): nothing would detect")
        }
        let feed = AlertFeed()
        let follower = feed.follow(admin)
        defer { follower.cancel() }
        for _ in 0..<500 where !feed.opened.load(ordering: .relaxed) { try await Task.sleep(for: .milliseconds(10)) }
        guard feed.opened.load(ordering: .relaxed) else {
            throw WardenClientError("the server's alert stream (/v1/admin/risk/alerts) could not be followed")
        }

        // This run's agents: fresh names, so that runs do not mix (their roles' baselines are shared on purpose).
        let run = String(UInt32.random(in: 0...UInt32.max), radix: 16)
        var registered: [String] = []
        func enroll(
            _ name: String, roles: [String], team: String? = nil, routes: [String], binary: String? = nil,
            presenting presented: String? = nil
        ) async throws -> LiveAgent {
            var m = AgentManifest(name: "sim-\(run)-\(name)", owner: "simulation@example.com")
            m.roles = roles
            m.team = team
            m.routes = routes
            m.binarySHA256 = binary
            let reg = try await admin.call("POST", "/v1/admin/agents", raw: Array(m.json.serialized.utf8))
            guard let spiffe = reg["spiffe_id"]?.stringValue, let join = reg["join_token"]?.stringValue,
                let digest = reg["manifest_digest"]?.stringValue
            else { throw WardenClientError("the server's registration answer lacks spiffe_id, join_token or digest") }
            registered.append(m.name)
            let client = AgentClient(server: o.server, key: P256.Signing.PrivateKey())
            let agent = LiveAgent(spiffeID: spiffe, client: client)
            _ = try await client.enroll(
                joinToken: join,
                evidence: AttestationEvidence(manifestDigest: digest, binarySHA256: presented ?? binary))
            return agent
        }
        func decommissionAll() async {
            for name in registered {
                _ = try? await admin.call(
                    "POST", "/v1/admin/agents/\(WardenHTTP.percentEncode(name))/decommission",
                    json: .object([("reason", .string("simulation finished"))]))
            }
        }
        do {
            let report = try await drive(o, run: run, admin: admin, feed: feed, enroll: enroll, progress: progress)
            await decommissionAll()
            return report
        } catch {
            await decommissionAll()
            throw error
        }
    }

    typealias Enroll = (
        _ name: String, _ roles: [String], _ team: String?, _ routes: [String], _ binary: String?, _ presented: String?
    ) async throws -> LiveAgent

    /// The workload and the attacks.
    static func drive(
        _ o: Options, run: String, admin: AdminClient, feed: AlertFeed, enroll: Enroll,
        progress: @escaping @Sendable (String) -> Void
    ) async throws -> Simulation.Report {
        let support = try await enroll("support-bot", ["support"], nil, ["tickets", "kb"], nil, nil)
        let docs = try await enroll("doc-processor", ["documents"], nil, ["documents"], nil, nil)
        let finance = try await enroll("finance-recon", ["finance"], "finance", ["billing", "ledger"], nil, nil)
        let fraud = try await enroll("fraud-detector", ["fraud"], nil, ["transactions"], nil, nil)
        let normalAgents = Set([support, docs, finance, fraud].map(\.spiffeID))
        progress("4 agents registered and enrolled at \(o.server)")

        /// The agent's token, renewed at half its lifetime (`expires_in`).
        func token(_ a: LiveAgent) async throws -> String {
            if let (t, renewAt) = a.token.withLock({ $0 }), ContinuousClock.now < renewAt { return t }
            let answer = try await a.client.token(spiffeID: a.spiffeID)
            guard let t = answer["access_token"]?.stringValue else {
                throw WardenClientError("the token endpoint answered without access_token")
            }
            let lifetime: Double
            if case .number(let n)? = answer["expires_in"], let seconds = Double(n) {
                lifetime = seconds
            } else {
                lifetime = 60
            }
            a.token.withLock { $0 = (t, .now + .seconds(max(1, lifetime / 2))) }
            return t
        }
        /// Refused by Warden: the token endpoint (400), authentication (401) or policy and state (403). Anything else
        /// (a missing route, an unreachable upstream) is not a block.
        func refused(_ status: Int) -> Bool { status == 400 || status == 401 || status == 403 }
        /// One call as `a` (or with `a`'s token and `proofKey`'s proof); the status.
        func call(_ a: LiveAgent, _ path: String, size: Int = 256, proofKey: P256.Signing.PrivateKey? = nil)
            async throws -> Int
        {
            for attempt in 0..<2 {
                // A contained agent gets no new token: that is a refusal too.
                guard let t = try? await token(a) else { return 400 }
                let client = proofKey.map { AgentClient(server: o.server, key: $0) } ?? a.client
                let r = try await client.withProof("GET", path + "?size=\(size)", accessToken: t)
                // A revoked token: the agent asks for a new one once, as a real client does.
                if r.status == 401, proofKey == nil, attempt == 0 {
                    a.token.withLock { $0 = nil }
                    continue
                }
                return r.status
            }
            return 401
        }
        /// The alerts since `mark` matching `agent`, waiting (bounded) for the first.
        func awaitAlerts(since mark: Int, _ match: @escaping (String) -> Bool) async throws -> [JSONValue] {
            let deadline = ContinuousClock.now + o.alertWait
            var polled = ContinuousClock.now
            while ContinuousClock.now < deadline {
                // The stream is the source; the server's recent alerts fill a gap while it reconnects.
                if ContinuousClock.now - polled > .milliseconds(500) {
                    polled = .now
                    await feed.backfill(admin)
                }
                let found = feed.since(mark, where: match)
                if !found.isEmpty {
                    // Let the rest of the burst's alerts arrive.
                    try await Task.sleep(for: .milliseconds(100))
                    return feed.since(mark, where: match)
                }
                try await Task.sleep(for: .milliseconds(20))
            }
            return []
        }

        // The routes must lead to this simulation's upstream (which answers `?size=N` with N bytes of "x"): otherwise
        // the workload would reach real services, and every refusal would be misread as a block.
        for (a, path) in [
            (support, "/r/tickets/v1/probe"), (support, "/r/kb/v1/probe"), (docs, "/r/documents/v1/probe"),
            (finance, "/r/billing/v1/probe"), (finance, "/r/ledger/v1/probe"), (fraud, "/r/transactions/v1/probe"),
        ] {
            let r = try await a.client.withProof("GET", path + "?size=1234", accessToken: try await token(a))
            guard r.status == 200, r.body.count == 1234, r.body.allSatisfy({ $0 == UInt8(ascii: "x") }) else {
                throw WardenClientError(
                    "\(path.split(separator: "/").dropFirst().prefix(2).joined(separator: "/")) answered \(r.status) without the simulation's filler: the server's routes must lead to this command's --upstream-listen (start the server from 'warden simulate --setup DIR')"
                )
            }
        }

        // Normal traffic in real time: the support bot every tick (the knowledge base one tick in four), the document
        // processor and the fraud detector every other tick, the finance agent's burst of five every ten ticks.
        let began = ContinuousClock.now
        var normal = 0
        var unexpected = 0
        let ticks = max(1, Int(o.normalSeconds / o.tick))
        for tick in 0..<ticks {
            var plan: [(LiveAgent, String, Int)] = [
                (support, tick % 4 == 0 ? "/r/kb/v1/articles" : "/r/tickets/v1/tickets", 2048)
            ]
            if tick % 2 == 0 { plan.append((docs, "/r/documents/v1/docs", 20_000)) }
            if tick % 2 == 1 { plan.append((fraud, "/r/transactions/v1/batch", 65_536)) }
            if tick % 10 == 5 {
                for i in 0..<5 {
                    plan.append((finance, i % 2 == 0 ? "/r/billing/v1/invoices" : "/r/ledger/v1/entries", 4096))
                }
            }
            for (a, path, size) in plan {
                let status = try await call(a, path, size: size)
                if status != 200 {
                    unexpected += 1
                    if unexpected <= 3 { progress("unexpected \(status) for \(path)") }
                }
                normal += 1
            }
            if (tick + 1) % max(1, Int(30 / o.tick)) == 0 {
                progress("\(Int(Double(tick + 1) * o.tick)) s: \(normal) normal requests")
            }
            try await Task.sleep(until: began + .seconds(Double(tick + 1) * o.tick), clock: .continuous)
        }
        // A run whose normal traffic is refused measures nothing.
        guard unexpected * 20 <= normal else {
            throw WardenClientError(
                "\(unexpected) of \(normal) normal requests were not answered 200: the server is not set up for the simulation (its policies or rate limits refuse the workload)"
            )
        }
        try await Task.sleep(for: .milliseconds(200))
        await feed.backfill(admin)
        let falsePositives = feed.since(0, where: { normalAgents.contains($0) }).count
        progress("normal traffic: \(normal) requests, \(unexpected) not answered 200, \(falsePositives) alerts")
        let notWarm =
            "not detected: the server's risk warm-up (risk.warmup, risk.warmup_events) may not have passed in this run; use the configuration of 'warden simulate --setup' or a longer --minutes"
        var results: [Simulation.AttackResult] = []

        // 1. A stolen token replayed with another key (a fresh one: an expired token would prove nothing).
        support.token.withLock { $0 = nil }
        _ = try await token(support)
        var mark = feed.count
        let thief = P256.Signing.PrivateKey()
        var allRefused = true
        for _ in 0..<20 where !refused(try await call(support, "/r/tickets/v1/tickets", proofKey: thief)) {
            allRefused = false
        }
        // Detected means attributed to the token's agent (a source's probing alert could be anyone's on a shared
        // server).
        let stolen = try await awaitAlerts(since: mark) { $0 == support.spiffeID }
        results.append(
            Simulation.AttackResult(
                name: "stolen-key replay", blocked: allRefused, detected: !stolen.isEmpty,
                containmentMillis: containment(stolen)))
        // The revocation cut-off is a whole second: the support bot's next token must be issued after it.
        try await Task.sleep(for: .milliseconds(1100))

        // 2. The prompt-injected support bot pivots to billing.
        mark = feed.count
        var blocked = refused(try await call(support, "/r/billing/v1/invoices"))
        let pivot = try await awaitAlerts(since: mark) { $0 == support.spiffeID }
        let nextTickets = try await call(support, "/r/tickets/v1/tickets")
        results.append(
            Simulation.AttackResult(
                name: "prompt-injected bot pivoting to billing", blocked: blocked, detected: !pivot.isEmpty,
                containmentMillis: nextTickets == 200 ? nil : containment(pivot), note: pivot.isEmpty ? notWarm : nil))

        // 3. The document service reaches finance within seconds.
        mark = feed.count
        blocked = true
        for path in ["/r/ledger/v1/entries", "/r/payments/v1/transfers"] where !refused(try await call(docs, path)) {
            blocked = false
        }
        let lateral = try await awaitAlerts(since: mark) { $0 == docs.spiffeID }
        results.append(
            Simulation.AttackResult(
                name: "document service to finance lateral movement", blocked: blocked, detected: !lateral.isEmpty,
                containmentMillis: containment(lateral), note: lateral.isEmpty ? notWarm : nil))

        // 4. Slow exfiltration: the fraud detector's usual pace, four times the data per call, under every limit.
        mark = feed.count
        var served = 0
        let exfilStart = ContinuousClock.now
        let exfilTicks = max(1, Int(o.exfilSeconds / (2 * o.tick)))
        var exfil: [JSONValue] = []
        for i in 0..<exfilTicks {
            if try await call(fraud, "/r/transactions/v1/batch", size: 4 * 65_536) == 200 { served += 1 }
            exfil = feed.since(mark) { $0 == fraud.spiffeID }
            if !exfil.isEmpty { break }
            try await Task.sleep(until: exfilStart + .seconds(Double(i + 1) * 2 * o.tick), clock: .continuous)
        }
        if exfil.isEmpty { exfil = try await awaitAlerts(since: mark) { $0 == fraud.spiffeID } }
        let stillServed = !refused(try await call(fraud, "/r/transactions/v1/batch", size: 4 * 65_536))
        progress("exfiltration: \(served) calls served, then \(stillServed ? "still served" : "refused")")
        results.append(
            Simulation.AttackResult(
                name: "slow exfiltration under the rate limit", blocked: served == 0 && !stillServed,
                detected: !exfil.isEmpty, containmentMillis: containment(exfil),
                note: exfil.isEmpty
                    ? "not detected: slow exfiltration is judged against at least 3 completed days of the agent's history; a live run of minutes cannot show it (the embedded simulation, without --server, can)"
                    : nil))

        // 5. A supply-chain-modified binary at enrollment.
        mark = feed.count
        var enrollBlocked = false
        var modifiedID = ""
        do {
            modifiedID =
                try await enroll(
                    "invoice-bot", ["billing"], nil, [], String(repeating: "a", count: 64),
                    String(repeating: "b", count: 64)
                ).spiffeID
        } catch {
            enrollBlocked = true
        }
        let supply = try await awaitAlerts(since: mark) { $0 == modifiedID || $0.hasSuffix("/sim-\(run)-invoice-bot") }
        results.append(
            Simulation.AttackResult(
                name: "supply-chain-modified binary at enrollment", blocked: enrollBlocked, detected: !supply.isEmpty,
                containmentMillis: containment(supply)))
        return Simulation.Report(attacks: results, normalRequests: normal, falsePositives: falsePositives)
    }
}
