import AsyncHTTPClient
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
import WardenGateway
import WardenIdentity
import WardenRisk
import WardenServer

/// `warden simulate` (`docs/risk.md`): an embedded Warden on loopback (its own data directory, the demo policies plus
/// the simulation's segments, an upstream that answers with bodies of the asked size, the risk engine), driven over
/// HTTP with DPoP by a multi-agent workload on a simulated clock — days of normal traffic in seconds — and then the
/// attacks of `../shared/SCENARIOS.md`. For each attack: whether it was blocked, whether it was detected, and the time
/// from the triggering event to containment as the engine measured it; and the false positives on the normal traffic.
public enum Simulation {
    public struct AttackResult: Sendable {
        public let name: String
        public let blocked: Bool
        public let detected: Bool
        public let containmentMillis: Double?
        /// Why a result is what it is, when that needs saying (a live run too short for a detector's history).
        public let note: String?

        public init(name: String, blocked: Bool, detected: Bool, containmentMillis: Double?, note: String? = nil) {
            self.name = name
            self.blocked = blocked
            self.detected = detected
            self.containmentMillis = containmentMillis
            self.note = note
        }
    }

    public struct Report: Sendable {
        public let attacks: [AttackResult]
        public let normalRequests: Int
        public let falsePositives: Int

        public init(attacks: [AttackResult], normalRequests: Int, falsePositives: Int) {
            self.attacks = attacks
            self.normalRequests = normalRequests
            self.falsePositives = falsePositives
        }

        public var json: JSONValue {
            .object([
                (
                    "attacks",
                    .array(
                        attacks.map {
                            var pairs: [(String, JSONValue)] = [
                                ("name", .string($0.name)), ("blocked", .bool($0.blocked)),
                                ("detected", .bool($0.detected)),
                                (
                                    "containment_ms",
                                    $0.containmentMillis.map { .number(String(format: "%.1f", $0)) } ?? .null
                                ),
                            ]
                            if let note = $0.note { pairs.append(("note", .string(note))) }
                            return .object(pairs)
                        })
                ),
                ("normal_requests", .number(String(normalRequests))),
                ("false_positives", .number(String(falsePositives))),
            ])
        }
    }

    /// An agent of the workload: its key, token (renewed on the simulated clock) and manifest.
    final class SimAgent: Sendable {
        let name: String
        let spiffeID: String
        let key: P256.Signing.PrivateKey
        let token = Mutex<(String, Int64)?>(nil)
        init(name: String, spiffeID: String, key: P256.Signing.PrivateKey) {
            self.name = name
            self.spiffeID = spiffeID
            self.key = key
        }
    }

    static let start = 1_763_856_000.0  // Monday 2026-11-23 00:00 UTC

    /// Runs the simulation: `days` of normal traffic (at least 8: the detectors' warm-up and a week of hours), then
    /// the attacks. `progress` receives a line per phase.
    public static func run(days: Int = 9, progress: @escaping @Sendable (String) -> Void = { _ in }) async throws
        -> Report
    {
        let days = max(days, 8)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("warden-sim-\(UUID().uuidString)").path
        try SecureFile.ensureDirectory(dir)
        try SecureFile.ensureDirectory(dir + "/policies")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try SecureFile.write(policies, to: dir + "/policies/sim.cedar", mode: 0o644)
        let clock = ManualClock(wallSeconds: start)

        let upstreamPort = try freePort()
        let upstream = fillerUpstream(host: "127.0.0.1", port: upstreamPort)
        let upstreamTask = Task { try await upstream.runService() }
        defer { upstreamTask.cancel() }
        let base = "http://127.0.0.1:\(upstreamPort)"
        let port = try freePort()

        var config = WardenConfig()
        config.data = dir
        config.listen = "127.0.0.1:\(port)"
        config.policies = [dir + "/policies"]
        var routes: [String: RouteConfig] = [:]
        for (name, segment) in services {
            routes[name] = RouteConfig(name: name, upstream: base, segment: segment)
        }
        config.routes = routes
        config.rateLimitPerAgent = RateLimit(perSecond: 50, burst: 100)
        config.dpopReplayCacheSize = 1_000_000
        let cp = try ControlPlane(config: config, clock: clock)
        // Rate limits on the simulated clock too (days of traffic pass in seconds of real time).
        let gateway = try Gateway(cp: cp, limiter: RateLimiter(clock: clock))
        do {
            let engine = RiskEngine(actions: ControlPlaneRiskActions(cp: cp), clock: clock)
            cp.risk.attach(engine)
            let consumer = Task { await cp.risk.run(engine, audit: cp.audit) }
            defer {
                engine.stop()
                consumer.cancel()
            }
            let app = Application(
                router: WardenRouter.build(cp, gateway: gateway),
                configuration: .init(address: .hostname("127.0.0.1", port: port)), logger: quietLogger)
            let appTask = Task { try await app.runService() }
            defer { appTask.cancel() }
            let wardenBase = "http://127.0.0.1:\(port)"
            let http = HTTPClient.shared
            try await waitUntilListening(http, wardenBase + "/healthz")
            try await waitUntilListening(http, base + "/ready")

            // The agents.
            func enroll(_ name: String, roles: [String], team: String? = nil, routes: [String], peers: [String] = [])
                throws -> SimAgent
            {
                var m = AgentManifest(name: name, owner: "ops@example.com")
                m.roles = roles
                m.team = team
                m.routes = routes
                m.peers = peers
                let reg = try cp.register(manifest: m)
                let key = P256.Signing.PrivateKey()
                _ = try cp.enroll(
                    body: .object([
                        ("join_token", .string(reg.joinToken)), ("jwk", ECPublicJWK(key.publicKey).json),
                        ("attestation", .object([("manifest_digest", .string(reg.agent.manifestDigest))])),
                    ]),
                    dpop: try DPoPProofSigner(key: key).proof(method: "POST", url: cp.enrollEndpoint, now: cp.now()))
                return SimAgent(name: name, spiffeID: reg.agent.spiffeID.description, key: key)
            }
            let support = try enroll("support-bot", roles: ["support"], routes: ["tickets", "kb"])
            let docs = try enroll("doc-processor", roles: ["documents"], routes: ["documents"])
            let finance = try enroll(
                "finance-recon", roles: ["finance"], team: "finance", routes: ["billing", "ledger"])
            let fraud = try enroll("fraud-detector", roles: ["fraud"], routes: ["transactions"])

            func token(_ a: SimAgent) throws -> String {
                let now = cp.now()
                if let (t, issued) = a.token.withLock({ $0 }), now - issued < 240 { return t }
                let t = try cp.token(
                    form: [
                        "grant_type": "client_credentials", "client_assertion_type": ClientAssertion.type,
                        "client_assertion": try ClientAssertion.sign(
                            clientID: a.spiffeID, audience: cp.tokenEndpoint, key: a.key, now: now,
                            jti: UUID().uuidString),
                    ], dpop: try DPoPProofSigner(key: a.key).proof(method: "POST", url: cp.tokenEndpoint, now: now)
                ).accessToken
                a.token.withLock { $0 = (t, now) }
                return t
            }
            /// One call as `a` (or with `a`'s token and another key's proof); the status.
            func call(_ a: SimAgent, _ path: String, size: Int = 256, proofKey: P256.Signing.PrivateKey? = nil)
                async throws -> Int
            {
                for attempt in 0..<2 {
                    // A contained agent gets no new token: that is a refusal too (400 from the token endpoint).
                    guard let t = try? token(a) else { return 400 }
                    let url = wardenBase + path
                    var req = HTTPClientRequest(url: url + "?size=\(size)")
                    req.headers.add(name: "Authorization", value: "DPoP \(t)")
                    req.headers.add(
                        name: "DPoP",
                        value: try DPoPProofSigner(key: proofKey ?? a.key).proof(
                            method: "GET", url: url, accessToken: t, now: cp.now()))
                    let r = try await http.execute(req, timeout: .seconds(10))
                    _ = try await r.body.collect(upTo: 2 << 20)
                    // A revoked token: the agent asks for a new one once, as a real client does.
                    if r.status == .unauthorized, proofKey == nil, attempt == 0 {
                        a.token.withLock { $0 = nil }
                        continue
                    }
                    return Int(r.status.code)
                }
                return 401
            }

            // Normal traffic, minute by minute.
            var normal = 0
            var unexpected = 0
            for day in 0..<days {
                for minute in 0..<1440 {
                    clock.set(wallSeconds: start + Double(day) * 86_400 + Double(minute) * 60)
                    let hour = minute / 60
                    var plan: [(SimAgent, String, Int)] = []
                    if minute % 10 == 0 || (hour >= 9 && hour < 17 && minute % 4 == 0) {
                        plan.append((support, minute % 20 == 0 ? "/r/kb/v1/articles" : "/r/tickets/v1/tickets", 2048))
                    }
                    if hour >= 1 && hour < 3 { plan.append((docs, "/r/documents/v1/docs", 20_000)) }
                    if minute % 60 == 5 {
                        for i in 0..<5 {
                            plan.append((finance, i % 2 == 0 ? "/r/billing/v1/invoices" : "/r/ledger/v1/entries", 4096))
                        }
                    }
                    if minute % 5 == 0 { plan.append((fraud, "/r/transactions/v1/batch", 65_536)) }
                    for (a, path, size) in plan {
                        let status = try await call(a, path, size: size)
                        if status != 200 {
                            unexpected += 1
                            if unexpected <= 3 { progress("unexpected \(status) for \(a.name) \(path)") }
                        }
                        normal += 1
                    }
                }
                progress("day \(day + 1): \(normal) normal requests so far")
            }
            try await drain(engine, cp)
            let falsePositives = cp.risk.recentAlertCount
            progress("normal traffic: \(normal) requests, \(unexpected) not answered 200, \(falsePositives) alerts")

            // The attacks.
            var results: [AttackResult] = []
            let attackStart = start + Double(days) * 86_400 + 10 * 3600
            func alerts(since: Int, agent: String) -> [JSONValue] {
                cp.risk.alertsSince(since).filter { $0["agent"]?.stringValue == agent }
            }
            func containment(_ a: [JSONValue]) -> Double? {
                a.compactMap {
                    $0["containment_ms"].flatMap { v -> Double? in if case .number(let n) = v { Double(n) } else { nil }
                    }
                }
                .first
            }

            // 1. A stolen token replayed with another key.
            clock.set(wallSeconds: attackStart)
            var mark = cp.risk.recentAlertCount
            let thief = P256.Signing.PrivateKey()
            var refused = true
            for _ in 0..<20 where try await call(support, "/r/tickets/v1/tickets", proofKey: thief) == 200 {
                refused = false
            }
            try await drain(engine, cp)
            // The theft is the victim's (its tokens are revoked); the probing is its source's.
            let victimAlerts = alerts(since: mark, agent: support.spiffeID)
            let stolenAlerts = victimAlerts + alerts(since: mark, agent: "source:127.0.0.1")
            results.append(
                AttackResult(
                    name: "stolen-key replay", blocked: refused, detected: !stolenAlerts.isEmpty,
                    containmentMillis: containment(victimAlerts)))

            // 2. The prompt-injected support bot pivots to billing.
            clock.set(wallSeconds: attackStart + 600)
            mark = cp.risk.recentAlertCount
            var blocked = try await call(support, "/r/billing/v1/invoices") != 200
            try await drain(engine, cp)
            let nextTickets = try await call(support, "/r/tickets/v1/tickets")
            let pivot = alerts(since: mark, agent: support.spiffeID)
            results.append(
                AttackResult(
                    name: "prompt-injected bot pivoting to billing", blocked: blocked, detected: !pivot.isEmpty,
                    containmentMillis: nextTickets == 200 ? nil : containment(pivot)))

            // 3. The document service reaches finance within seconds.
            clock.set(wallSeconds: attackStart + 1200)
            mark = cp.risk.recentAlertCount
            blocked = true
            for path in ["/r/ledger/v1/entries", "/r/payments/v1/transfers"] where try await call(docs, path) == 200 {
                blocked = false
            }
            try await drain(engine, cp)
            let lateral = alerts(since: mark, agent: docs.spiffeID)
            results.append(
                AttackResult(
                    name: "document service to finance lateral movement", blocked: blocked, detected: !lateral.isEmpty,
                    containmentMillis: containment(lateral)))

            // 4. Slow exfiltration: the fraud detector's usual schedule, four times the data per call, under every limit.
            mark = cp.risk.recentAlertCount
            var served = 0
            var exfilDetected: [JSONValue] = []
            for minute in stride(from: 0, to: 1440, by: 5) {
                clock.set(wallSeconds: attackStart + 1800 + Double(minute) * 60)
                if try await call(fraud, "/r/transactions/v1/batch", size: 4 * 65_536) == 200 { served += 1 }
                if minute % 60 == 0 {
                    try await drain(engine, cp)
                    exfilDetected = alerts(since: mark, agent: fraud.spiffeID)
                    if !exfilDetected.isEmpty { break }
                }
            }
            try await drain(engine, cp)
            exfilDetected = alerts(since: mark, agent: fraud.spiffeID)
            let lastStatus = try await call(fraud, "/r/transactions/v1/batch", size: 4 * 65_536)
            let stillServed = lastStatus == 200
            progress("exfiltration: \(served) calls served before containment, then \(lastStatus)")
            results.append(
                AttackResult(
                    name: "slow exfiltration under the rate limit", blocked: served == 0 && !stillServed,
                    detected: !exfilDetected.isEmpty,
                    containmentMillis: containment(exfilDetected)))

            // 5. A supply-chain-modified binary at enrollment.
            mark = cp.risk.recentAlertCount
            var m = AgentManifest(name: "invoice-bot", owner: "ops@example.com")
            m.binarySHA256 = String(repeating: "a", count: 64)
            let reg = try cp.register(manifest: m)
            let key = P256.Signing.PrivateKey()
            var enrollBlocked = false
            do {
                _ = try cp.enroll(
                    body: .object([
                        ("join_token", .string(reg.joinToken)), ("jwk", ECPublicJWK(key.publicKey).json),
                        (
                            "attestation",
                            .object([
                                ("manifest_digest", .string(reg.agent.manifestDigest)),
                                ("binary_sha256", .string(String(repeating: "b", count: 64))),
                            ])
                        ),
                    ]), dpop: try DPoPProofSigner(key: key).proof(method: "POST", url: cp.enrollEndpoint, now: cp.now())
                )
            } catch {
                enrollBlocked = true
            }
            try await drain(engine, cp)
            let supply = alerts(since: mark, agent: reg.agent.spiffeID.description)
            results.append(
                AttackResult(
                    name: "supply-chain-modified binary at enrollment", blocked: enrollBlocked,
                    detected: !supply.isEmpty,
                    containmentMillis: containment(supply)))

            await gateway.shutdown()
            return Report(attacks: results, normalRequests: normal, falsePositives: falsePositives)
        } catch {
            await gateway.shutdown()
            throw error
        }
    }

    /// The embedded listeners' logger: cancelling a listener at the end of a run is not an error worth printing (a
    /// listener that cannot start fails the run through ``waitUntilListening``).
    static var quietLogger: Logger {
        var logger = Logger(label: "warden.simulate")
        logger.logLevel = .critical
        return logger
    }

    /// The workload's services (routes) and their segments.
    public static let services: [(String, String)] = [
        ("tickets", "support"), ("kb", "support"), ("documents", "documents"), ("billing", "finance"),
        ("ledger", "finance"), ("payments", "finance"), ("transactions", "fraud"),
    ]

    /// The demo policies and the simulation's segments.
    public static let policies =
        PolicyEngine.demoPolicies + """

            // The simulation's segments.
            @id("documents-segment")
            permit (principal in Role::"documents", action == Action::"call", resource in Segment::"documents");
            @id("fraud-segment")
            permit (principal in Role::"fraud", action == Action::"call", resource in Segment::"fraud");

            """

    /// The workload's services: one upstream answering `GET ...?size=N` with N bytes (at most 1 MiB).
    public static func fillerUpstream(host: String, port: Int) -> some ApplicationProtocol {
        let router = Router()
        router.on("/**", method: .get) { request, _ -> Response in
            let size = request.uri.queryParameters.get("size").flatMap(Int.init).map { min(max($0, 2), 1 << 20) } ?? 64
            return Response(
                status: .ok, headers: [.contentType: "application/octet-stream"],
                body: .init(byteBuffer: ByteBuffer(repeating: UInt8(ascii: "x"), count: size)))
        }
        return Application(
            router: router, configuration: .init(address: .hostname(host, port: port)), logger: quietLogger)
    }

    /// `warden simulate --setup DIR`: a configuration for a live server the simulation can drive — the workload's
    /// routes to the filler upstream at `upstream` (which `warden simulate --server` starts), the policies, and a
    /// warm-up compressed to `warmup` seconds and `warmupEvents` events so that minutes of traffic are enough.
    public static func writeSetup(
        directory dir: String, listen: String = "127.0.0.1:8443", upstream: String = "127.0.0.1:9480",
        warmup: Int = 120, warmupEvents: Int = 60
    ) throws -> String {
        let path = dir + "/warden.yaml"
        guard !FileManager.default.fileExists(atPath: path) else {
            throw WardenError(.invalidRequest, "\(path) exists: choose a new directory (nothing was overwritten)")
        }
        try SecureFile.ensureDirectory(dir)
        try SecureFile.ensureDirectory(dir + "/policies")
        try SecureFile.write(policies, to: dir + "/policies/sim.cedar", mode: 0o644)
        // JSON strings are YAML's double-quoted scalars: any directory name survives.
        func quoted(_ s: String) -> String { JSONValue.string(s).serialized }
        var yaml = """
            # warden simulate --server: a live Warden with the simulation's services (their upstream is started by
            # warden simulate on \(upstream)) and a warm-up compressed to minutes. Not for production.
            data: \(quoted(dir + "/data"))
            listen: \(quoted(listen))
            policies: [\(quoted(dir + "/policies"))]
            routes:

            """
        for (name, segment) in services {
            yaml += "  \(name): {upstream: \(quoted("http://" + upstream)), segment: \(segment)}\n"
        }
        yaml += """
            risk:
              warmup_events: \(warmupEvents)
              warmup: \(warmup)s

            """
        _ = try WardenConfig(parsing: yaml, file: path)
        try SecureFile.write(yaml, to: path, mode: 0o600)
        return path
    }

    /// Waits (bounded) until the engine has taken every event handed over so far.
    static func drain(_ engine: RiskEngine, _ cp: ControlPlane) async throws {
        await cp.risk.settle(engine)
    }

    /// A loopback port nobody listens on, for a server whose address must be written into its configuration before
    /// it starts. Drawn at random below Linux's ephemeral range (32768 and up), where the many listeners that bind
    /// port 0 (tests running in parallel, outgoing connections) never land between this check and the server's own
    /// bind; the kernel's choice when none of 64 draws is free.
    public static func freePort() throws -> Int {
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<64 {
            let candidate = Int.random(in: 20_000..<32_768, using: &rng)
            if (try? bindLoopback(port: candidate)) != nil { return candidate }
        }
        return try bindLoopback(port: 0)
    }

    /// Binds a TCP socket to 127.0.0.1:`port` (0: the kernel's choice), closes it, and returns the port it had.
    private static func bindLoopback(port: Int) throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw WardenError(.io, "no socket") }
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = UInt16(port).bigEndian
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard bound == 0 else { throw WardenError(.io, "no free port") }
        let named = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
        }
        guard named == 0 else { throw WardenError(.io, "no free port") }
        return Int(UInt16(bigEndian: addr.sin_port))
    }

    /// Waits (bounded) until `url` answers.
    public static func waitUntilListening(_ http: HTTPClient, _ url: String, attempts: Int = 500) async throws {
        for _ in 0..<attempts {
            if let r = try? await http.execute(HTTPClientRequest(url: url), timeout: .seconds(1)) {
                _ = try? await r.body.collect(upTo: 1 << 20)
                return
            }
            try await Task.sleep(for: .milliseconds(10))
        }
        throw WardenError(.io, "the embedded listener at \(url) did not start")
    }
}
