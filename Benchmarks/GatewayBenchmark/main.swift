// The gateway benchmark's two halves (Benchmarks/gateway/run.sh drives them with nginx and `warden serve`):
//
//   GatewayBenchmark setup --dir DIR [--agents N]
//       Writes DIR/warden.yaml (route `bench` to the nginx upstream on 127.0.0.1:18080), registers and enrolls N agents
//       directly on the data directory, and issues their tokens: DPoP-bound ones (keys in DIR/agents) and, for
//       agent 0, an X.509-SVID and a certificate-bound token for the mutual-TLS listener. Tokens live 300 s: run
//       the measurements right after.
//   GatewayBenchmark run --dir DIR [--seconds S] [--connections 1,16,64] [--targets direct,nginx,dpop,mtls]
//       A closed-loop HTTP/1.1 load generator (SwiftNIO, one event-loop thread, keep-alive connections): for each
//       connection count and target, 1 s of warm-up then S seconds measured; prints throughput and the median and
//       p99 latency, and what each proxy adds over direct. DPoP proofs are signed before each run (not timed).
//       Also measures one P-256 signature verification (the DPoP target's budget is nginx's figure + 1.5x that).
//   GatewayBenchmark soak --dir DIR --server-pid PID [--seconds 600] [--connections 16] [--round 20]
//       DPoP for ten minutes in rounds (proofs signed before each round, tokens renewed at the token endpoint every
//       200 s), printing the server's resident memory after each round and its spread once the replay window filled.
//   GatewayBenchmark run --dir DIR --rates 1000,3000 [--seconds S] [--targets ...]
//       Open loop instead (the way agentgateway publishes its figures): requests are due at a fixed rate whatever the
//       answers do, sent on the first idle one of 64 connections (queued when none is idle), and each latency runs
//       from when the request was due, so a stall counts for every request it delayed (no coordinated omission).
//       Prints the achieved rate, median, p99 and p99.9 per target, and what each adds over direct at that rate.
import Cedar
import Crypto
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import SwiftASN1
import Synchronization
import WardenClient
import WardenControlPlane
import WardenCore
import WardenGateway
import WardenIdentity
import WardenServer
import X509

let args = CommandLine.arguments
func option(_ name: String) -> String? {
    args.firstIndex(of: name).flatMap { $0 + 1 < args.count ? args[$0 + 1] : nil }
}
guard args.count >= 2, let dir = option("--dir") else {
    print("usage: GatewayBenchmark setup|run --dir DIR [...]")
    exit(2)
}
let upstreamPort = 18080
let nginxPort = 18081
let wardenPort = 18443
let wardenTLSPort = 18444

// MARK: setup

func setup(agents: Int) throws {
    let data = dir + "/data"
    try FileManager.default.createDirectory(atPath: dir + "/agents", withIntermediateDirectories: true)
    try FileManager.default.createDirectory(atPath: dir + "/policies", withIntermediateDirectories: true)
    try
        (PolicyEngine.demoPolicies
            + """
            @id("bench")
            permit (principal in Role::"bench", action == Action::"call", resource in Segment::"bench");

            """).write(toFile: dir + "/policies/bench.cedar", atomically: true, encoding: .utf8)
    let yaml = """
        trust_domain: warden.local
        listen: 127.0.0.1:\(wardenPort)
        tls: {listen: 127.0.0.1:\(wardenTLSPort)}
        data: \(data)
        policies: [\(dir)/policies]
        rate_limits: null
        routes:
          bench: {upstream: "http://127.0.0.1:\(upstreamPort)", segment: bench}

        """
    try yaml.write(toFile: dir + "/warden.yaml", atomically: true, encoding: .utf8)
    let config = try WardenConfig(parsing: yaml, file: "warden.yaml")
    let cp = try ControlPlane(config: config)
    var tokens: [JSONValue] = []
    for i in 0..<agents {
        var m = AgentManifest(name: "bench-\(i)", owner: "bench@example.com")
        m.roles = ["bench"]
        m.routes = ["bench"]
        let reg = try cp.register(manifest: m)
        let key = P256.Signing.PrivateKey()
        let now = cp.now()
        let proof = try DPoPProofSigner(key: key).proof(method: "POST", url: cp.enrollEndpoint, now: now)
        _ = try cp.enroll(
            body: .object([
                ("join_token", .string(reg.joinToken)), ("jwk", ECPublicJWK(key.publicKey).json),
                ("attestation", .object([("manifest_digest", .string(reg.agent.manifestDigest))])),
            ]), dpop: proof)
        let id = reg.agent.spiffeID.description
        func form() throws -> [String: String] {
            [
                "grant_type": "client_credentials", "client_assertion_type": ClientAssertion.type,
                "client_assertion": try ClientAssertion.sign(
                    clientID: id, audience: cp.tokenEndpoint, key: key, now: cp.now(), jti: UUID().uuidString),
            ]
        }
        let token = try cp.token(
            form: try form(), dpop: try DPoPProofSigner(key: key).proof(method: "POST", url: cp.tokenEndpoint, now: now)
        )
        try key.pemRepresentation.write(toFile: dir + "/agents/\(i).key", atomically: true, encoding: .utf8)
        var entry: [(String, JSONValue)] = [
            ("key", .string(dir + "/agents/\(i).key")), ("token", .string(token.accessToken)), ("id", .string(id)),
        ]
        if i == 0 {
            // The mutual-TLS client: an SVID and a token bound to it.
            let tlsKey = P256.Signing.PrivateKey()
            let csr = try CertificateSigningRequest(
                version: .v1, subject: try DistinguishedName { CommonName("bench") }, privateKey: .init(tlsKey),
                attributes: .init(), signatureAlgorithm: .ecdsaWithSHA256)
            let who = try cp.authenticate(
                authorization: "DPoP \(token.accessToken)",
                dpop: try DPoPProofSigner(key: key).proof(
                    method: "POST", url: cp.url(path: "/v1/svid"), accessToken: token.accessToken, now: now),
                method: "POST", path: "/v1/svid")
            let (chain, bundle, _) = try cp.issueSVID(csrPEM: try csr.serializeAsPEM().pemString, for: who)
            try chain.write(toFile: dir + "/svid.pem", atomically: true, encoding: .utf8)
            try bundle.write(toFile: dir + "/bundle.pem", atomically: true, encoding: .utf8)
            try tlsKey.pemRepresentation.write(toFile: dir + "/svid.key", atomically: true, encoding: .utf8)
            let end = "-----END CERTIFICATE-----"
            let leaf = try Certificate(pemEncoded: String(chain[..<chain.range(of: end)!.upperBound]))
            var der = DER.Serializer()
            try der.serialize(leaf)
            let certificate = try ClientCertificate(der: der.serializedBytes)
            let bound = try cp.token(form: try form(), dpop: nil, certificate: certificate)
            entry.append(("mtls_token", .string(bound.accessToken)))
        }
        tokens.append(.object(entry))
    }
    try JSONValue.array(tokens).serialized.write(toFile: dir + "/tokens.json", atomically: true, encoding: .utf8)
    print("setup: \(agents) agents enrolled with tokens in \(dir)/tokens.json; config \(dir)/warden.yaml")
}

// MARK: load generator

/// A request to send: path and extra headers.
struct Shot: Sendable {
    let path: String
    let headers: [(String, String)]
}

/// Where requests come from: fixed, or pre-signed DPoP proofs taken in order (each used once).
final class ShotSource: Sendable {
    let shots: [Shot]
    let cycle: Bool
    let next = Atomic<Int>(0)
    init(_ shots: [Shot], cycle: Bool) {
        self.shots = shots
        self.cycle = cycle
    }
    func take() -> Shot? {
        let i = next.add(1, ordering: .relaxed).oldValue
        if cycle { return shots[i % shots.count] }
        return i < shots.count ? shots[i] : nil
    }
}

/// Samples and counters shared by the connections of one run.
final class Recorder: Sendable {
    let state = Mutex<(samples: [UInt32], errors: Int, measuring: Bool, stopped: Bool)>(([], 0, false, false))
    func record(_ micros: UInt32, ok: Bool) -> Bool {
        state.withLock { s in
            guard !s.stopped else { return false }
            if s.measuring {
                if ok { s.samples.append(micros) } else { s.errors += 1 }
            }
            return true
        }
    }
}

final class LoadHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundOut = HTTPClientRequestPart
    let source: ShotSource
    let recorder: Recorder
    let host: String
    var sent: UInt64 = 0
    var status: UInt = 0

    init(source: ShotSource, recorder: Recorder, host: String) {
        self.source = source
        self.recorder = recorder
        self.host = host
    }

    /// Open loop: the scheduler that hands this connection its requests, and when the current one was due.
    var openLoop: OpenLoop?
    var due: UInt64 = 0
    var context: ChannelHandlerContext?

    func send(_ context: ChannelHandlerContext) {
        guard let shot = source.take() else {
            context.close(promise: nil)
            return
        }
        var headers = HTTPHeaders([("Host", host)])
        for (n, v) in shot.headers { headers.add(name: n, value: v) }
        sent = DispatchTime.now().uptimeNanoseconds
        context.write(
            wrapOutboundOut(.head(HTTPRequestHead(version: .http1_1, method: .GET, uri: shot.path, headers: headers))),
            promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
    }

    func channelActive(context: ChannelHandlerContext) {
        if let openLoop {
            self.context = context
            openLoop.idle(self)
        } else {
            send(context)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let h): status = h.status.code
        case .body: break
        case .end:
            if let openLoop {
                openLoop.finished(self, due: due, ok: status == 200)
                return
            }
            let micros = UInt32(min(UInt64(UInt32.max), (DispatchTime.now().uptimeNanoseconds - sent) / 1000))
            if recorder.record(micros, ok: status == 200) { send(context) } else { context.close(promise: nil) }
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        print("connection error: \(error)")
        context.close(promise: nil)
    }
}

struct RunResult {
    let rps: Double
    let median: Double
    let p99: Double
    let errors: Int
}

/// `count` keep-alive connections to `port` on `group` (TLS with `tls`), each with a load handler from `handler`.
func connect(
    group: any EventLoopGroup, port: Int, tls: NIOSSLContext?, count: Int,
    handler: @escaping @Sendable (_ host: String) -> LoadHandler
) throws -> [any Channel] {
    let host = "127.0.0.1:\(port)"
    let bootstrap = ClientBootstrap(group: group).channelOption(.tcpOption(.tcp_nodelay), value: 1)
        .channelInitializer { channel in
            channel.eventLoop.makeCompletedFuture {
                if let tls {
                    try channel.pipeline.syncOperations.addHandler(
                        try NIOSSLClientHandler(context: tls, serverHostname: nil))
                }
                try channel.pipeline.syncOperations.addHTTPClientHandlers()
                try channel.pipeline.syncOperations.addHandler(handler(host))
            }
        }
    return try (0..<count).map { _ in try bootstrap.connect(host: "127.0.0.1", port: port).wait() }
}

/// The `p` quantile of sorted samples (NaN when there are none).
func quantile(_ sorted: [UInt32], _ p: Double) -> Double {
    sorted.isEmpty ? .nan : Double(sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))])
}

func measure(
    group: any EventLoopGroup, port: Int, tls: NIOSSLContext?, connections: Int, seconds: Double, source: ShotSource
) throws -> RunResult {
    let recorder = Recorder()
    let channels = try connect(group: group, port: port, tls: tls, count: connections) { host in
        LoadHandler(source: source, recorder: recorder, host: host)
    }
    Thread.sleep(forTimeInterval: 1)  // warm-up
    let start = DispatchTime.now().uptimeNanoseconds
    recorder.state.withLock { $0.measuring = true }
    Thread.sleep(forTimeInterval: seconds)
    let (samples, errors) = recorder.state.withLock { s in
        s.stopped = true
        return (s.samples, s.errors)
    }
    let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
    for c in channels { try? c.close().wait() }
    let sorted = samples.sorted()
    return RunResult(
        rps: Double(samples.count) / elapsed, median: quantile(sorted, 0.5), p99: quantile(sorted, 0.99),
        errors: errors)
}

/// The open-loop scheduler of one run: every request is due at `start + k / rate`; a due request goes out on an idle
/// connection or waits in `queue` for the next one to free up. Runs on the single event loop of all its connections.
final class OpenLoop: @unchecked Sendable {
    let rate: Double
    var start: UInt64 = 0
    var scheduled = 0
    var idleHandlers: [LoadHandler] = []
    var queue: [UInt64] = []
    var queueHead = 0
    /// Latencies (µs from due to answered) of requests due inside the measured window, and failures.
    var samples: [UInt32] = []
    var errors = 0
    var measureFrom: UInt64 = .max
    var measureUntil: UInt64 = .max
    var stopped = false

    let connections: Int

    init(rate: Double, connections: Int) {
        self.rate = rate
        self.connections = connections
    }

    /// Requests due but not answered yet: queued, or in flight on a busy connection.
    var unanswered: Int { queue.count - queueHead + connections - idleHandlers.count }

    func idle(_ h: LoadHandler) {
        if queueHead < queue.count {
            let due = queue[queueHead]
            queueHead += 1
            if queueHead > 4096, queueHead * 2 > queue.count {
                queue.removeFirst(queueHead)
                queueHead = 0
            }
            dispatch(h, due: due)
        } else {
            idleHandlers.append(h)
        }
    }

    func dispatch(_ h: LoadHandler, due: UInt64) {
        guard let context = h.context else { return }
        h.due = due
        h.send(context)
    }

    func finished(_ h: LoadHandler, due: UInt64, ok: Bool) {
        let now = DispatchTime.now().uptimeNanoseconds
        if due >= measureFrom, due < measureUntil {
            if ok { samples.append(UInt32(min(UInt64(UInt32.max), (now - due) / 1000))) } else { errors += 1 }
        }
        idle(h)
    }

    /// Issues every request due by now (called every 100 µs or so).
    func tick() {
        guard !stopped else { return }
        let now = DispatchTime.now().uptimeNanoseconds
        // Request j is due at j / rate: those with j <= elapsed x rate are due now.
        let dueCount = Int(Double(now - start) / 1e9 * rate) + 1
        while scheduled < dueCount {
            let due = start + UInt64(Double(scheduled) / rate * 1e9)
            scheduled += 1
            if let h = idleHandlers.popLast() { dispatch(h, due: due) } else { queue.append(due) }
        }
    }
}

/// One open-loop run at `rate` requests a second over `connections` connections: 1 s of warm-up, `seconds` measured,
/// then up to 2 s for the stragglers (a request still unanswered then counts as an error).
func measureOpen(
    group: any EventLoopGroup, port: Int, tls: NIOSSLContext?, rate: Double, connections: Int, seconds: Double,
    source: ShotSource
) throws -> (result: RunResult, p999: Double) {
    let loop = group.next()
    let open = OpenLoop(rate: rate, connections: connections)
    let recorder = Recorder()
    let channels = try connect(group: loop, port: port, tls: tls, count: connections) { host in
        let handler = LoadHandler(source: source, recorder: recorder, host: host)
        handler.openLoop = open
        return handler
    }
    let begin = DispatchTime.now().uptimeNanoseconds
    try loop.submit {
        open.start = begin
        open.measureFrom = begin + 1_000_000_000
        open.measureUntil = open.measureFrom + UInt64(seconds * 1e9)
    }.wait()
    // A pacer thread wakes the loop when the next request is due (an event-loop timer would be late by up to a
    // millisecond on an idle loop, which the latencies would then include; `nanosleep`'s own slack, about 50 µs, is
    // the same for every target and cancels out of the added figures).
    let end = begin + UInt64((1 + seconds) * 1e9)
    let paced = DispatchSemaphore(value: 0)
    Thread.detachNewThread {
        var next = 0
        while true {
            let due = begin + UInt64(Double(next) / rate * 1e9)
            if due >= end { break }
            let now = DispatchTime.now().uptimeNanoseconds
            if due > now {
                var ts = timespec(tv_sec: Int((due - now) / 1_000_000_000), tv_nsec: Int((due - now) % 1_000_000_000))
                nanosleep(&ts, nil)
            }
            loop.execute { open.tick() }
            next = Int(Double(DispatchTime.now().uptimeNanoseconds - begin) / 1e9 * rate) + 1
        }
        paced.signal()
    }
    paced.wait()
    try loop.submit {
        open.tick()
        open.stopped = true
    }.wait()
    // Stragglers: wait until every request due in the window was answered (at most 2 s).
    for _ in 0..<200 {
        if try loop.submit({ open.unanswered }).wait() == 0 { break }
        Thread.sleep(forTimeInterval: 0.01)
    }
    let (samples, errors) = try loop.submit { (open.samples, open.errors + open.unanswered) }.wait()
    for c in channels { try? c.close().wait() }
    let sorted = samples.sorted()
    return (
        RunResult(
            rps: Double(samples.count) / seconds, median: quantile(sorted, 0.5), p99: quantile(sorted, 0.99),
            errors: errors),
        quantile(sorted, 0.999)
    )
}

/// The median cost of one P-256 (ES256) signature verification, microseconds.
func verifyCost() -> Double {
    let key = P256.Signing.PrivateKey()
    let message = Array(repeating: UInt8(7), count: 300)
    let signature = try! key.signature(for: message)
    var samples: [Double] = []
    for _ in 0..<3000 {
        let t = DispatchTime.now().uptimeNanoseconds
        precondition(key.publicKey.isValidSignature(signature, for: message))
        samples.append(Double(DispatchTime.now().uptimeNanoseconds - t) / 1000)
    }
    return samples.sorted()[samples.count / 2]
}

func run() throws {
    let seconds = Double(option("--seconds") ?? "5") ?? 5
    let counts = (option("--connections") ?? "1,16,64").split(separator: ",").compactMap { Int($0) }
    let targets = (option("--targets") ?? "direct,nginx,dpop,mtls").split(separator: ",").map(String.init)
    let tokens = try JSONValue.parse(try String(contentsOfFile: dir + "/tokens.json", encoding: .utf8))
    guard case .array(let agents) = tokens, !agents.isEmpty else { throw WardenError(.invalidConfig, "no tokens") }
    let keys = try agents.map { a in
        try P256.Signing.PrivateKey(
            pemRepresentation: try String(contentsOfFile: a["key"]!.stringValue!, encoding: .utf8))
    }
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    var tlsConfig = TLSConfiguration.makeClientConfiguration()
    tlsConfig.certificateChain = try NIOSSLCertificate.fromPEMFile(dir + "/svid.pem").map { .certificate($0) }
    tlsConfig.privateKey = .privateKey(try NIOSSLPrivateKey(file: dir + "/svid.key", format: .pem))
    tlsConfig.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(dir + "/bundle.pem"))
    tlsConfig.certificateVerification = .noHostnameVerification
    let tls = try NIOSSLContext(configuration: tlsConfig)
    let path = "/r/bench/hello"
    if let rates = option("--rates") {
        try runOpen(
            rates: rates.split(separator: ",").compactMap { Double($0) }, targets: targets, seconds: seconds,
            agents: agents, keys: keys, group: group, tls: tls, path: path)
        try group.syncShutdownGracefully()
        return
    }
    let cost = verifyCost()
    print(String(format: "one P-256 signature verification: %.1f µs (median of 3000)", cost))
    var results: [String: [Int: RunResult]] = [:]
    for c in counts {
        for t in targets {
            let r: RunResult
            switch t {
            case "direct":
                r = try measure(
                    group: group, port: upstreamPort, tls: nil, connections: c, seconds: seconds,
                    source: ShotSource([Shot(path: "/hello", headers: [])], cycle: true))
            case "healthz":
                // Warden's HTTP floor: GET /healthz (no authentication, no upstream).
                r = try measure(
                    group: group, port: wardenPort, tls: nil, connections: c, seconds: seconds,
                    source: ShotSource([Shot(path: "/healthz", headers: [])], cycle: true))
            case "nginx":
                r = try measure(
                    group: group, port: nginxPort, tls: nil, connections: c, seconds: seconds,
                    source: ShotSource([Shot(path: "/hello", headers: [])], cycle: true))
            case "dpop":
                // Enough single-use proofs for the run at a generous rate, signed now (iat must be fresh).
                let expected = Int((seconds + 1.5) * 12_000)
                let url = "http://127.0.0.1:\(wardenPort)" + path
                let shots = ShotSourceBuilder.dpop(agents: agents, keys: keys, url: url, path: path, count: expected)
                r = try measure(
                    group: group, port: wardenPort, tls: nil, connections: c, seconds: seconds,
                    source: ShotSource(shots, cycle: false))
            case "mtls":
                let token = agents[0]["mtls_token"]!.stringValue!
                r = try measure(
                    group: group, port: wardenTLSPort, tls: tls, connections: c, seconds: seconds,
                    source: ShotSource([Shot(path: path, headers: [("Authorization", "Bearer \(token)")])], cycle: true)
                )
            default: throw WardenError(.invalidRequest, "unknown target \(t)")
            }
            results[t, default: [:]][c] = r
            print(
                String(
                    format: "%-6@ %3d conn: %8.0f req/s  median %7.0f µs  p99 %7.0f µs  errors %d", t as NSString, c,
                    r.rps,
                    r.median, r.p99, r.errors))
            fflush(nil)
        }
    }
    print(
        "\n| connections | target | req/s | median µs | p99 µs | added median µs | added p99 µs | throughput vs nginx |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for c in counts {
        guard let direct = results["direct"]?[c] else { continue }
        for t in targets {
            guard let r = results[t]?[c] else { continue }
            let addMedian = t == "direct" ? 0 : r.median - direct.median
            let addP99 = t == "direct" ? 0 : r.p99 - direct.p99
            let vsNginx = results["nginx"]?[c].map { String(format: "%.2f", r.rps / $0.rps) } ?? "-"
            print(
                String(
                    format: "| %d | %@ | %.0f | %.0f | %.0f | %.0f | %.0f | %@ |", c, t as NSString, r.rps, r.median,
                    r.p99,
                    addMedian, addP99, vsNginx as NSString))
        }
    }
    print(
        "\nTargets (per connection count): mTLS adds ≤ 2x nginx's added median and keeps ≥ 0.5 of nginx's throughput;")
    print(String(format: "DPoP adds ≤ nginx's added median + 1.5 x %.1f µs.", cost))
    for c in counts {
        guard let d = results["direct"]?[c], let n = results["nginx"]?[c] else { continue }
        let nAdd = n.median - d.median
        if let m = results["mtls"]?[c] {
            let ok = (m.median - d.median) <= 2 * nAdd && m.rps >= 0.5 * n.rps
            print(
                String(
                    format: "%3d conn: mTLS added %.0f µs vs limit %.0f, throughput %.2f of nginx: %@", c,
                    m.median - d.median, 2 * nAdd, m.rps / n.rps, (ok ? "met" : "NOT met") as NSString))
        }
        if let p = results["dpop"]?[c] {
            let limit = nAdd + 1.5 * cost
            print(
                String(
                    format: "%3d conn: DPoP added %.0f µs vs limit %.0f: %@", c, p.median - d.median, limit,
                    ((p.median - d.median) <= limit ? "met" : "NOT met") as NSString))
        }
    }
    try group.syncShutdownGracefully()
}

/// The open-loop runs: each target at each rate, then what each adds over direct at that rate.
func runOpen(
    rates: [Double], targets: [String], seconds: Double, agents: [JSONValue], keys: [P256.Signing.PrivateKey],
    group: any EventLoopGroup, tls: NIOSSLContext, path: String
) throws {
    var results: [String: [Double: (result: RunResult, p999: Double)]] = [:]
    for rate in rates {
        for t in targets {
            let port: Int
            let source: ShotSource
            var context: NIOSSLContext?
            switch t {
            case "direct", "nginx":
                port = t == "direct" ? upstreamPort : nginxPort
                source = ShotSource([Shot(path: "/hello", headers: [])], cycle: true)
            case "healthz":
                port = wardenPort
                source = ShotSource([Shot(path: "/healthz", headers: [])], cycle: true)
            case "dpop":
                port = wardenPort
                let url = "http://127.0.0.1:\(wardenPort)" + path
                source = ShotSource(
                    ShotSourceBuilder.dpop(
                        agents: agents, keys: keys, url: url, path: path, count: Int((seconds + 3) * rate * 1.1)),
                    cycle: false)
            case "mtls":
                port = wardenTLSPort
                context = tls
                let token = agents[0]["mtls_token"]!.stringValue!
                source = ShotSource([Shot(path: path, headers: [("Authorization", "Bearer \(token)")])], cycle: true)
            default: throw WardenError(.invalidRequest, "unknown target \(t)")
            }
            let r = try measureOpen(
                group: group, port: port, tls: context, rate: rate, connections: 64, seconds: seconds, source: source)
            results[t, default: [:]][rate] = r
            print(
                String(
                    format:
                        "%-6@ open loop %5.0f req/s: achieved %6.0f  median %6.0f µs  p99 %6.0f µs  p99.9 %6.0f µs  errors %d",
                    t as NSString, rate, r.result.rps, r.result.median, r.result.p99, r.p999, r.result.errors))
            fflush(nil)
        }
    }
    print("\n| rate req/s | target | achieved | median µs | p99 µs | p99.9 µs | added median µs | added p99 µs |")
    print("|---|---|---|---|---|---|---|---|")
    for rate in rates {
        let direct = results["direct"]?[rate]
        for t in targets {
            guard let r = results[t]?[rate] else { continue }
            let addMedian = direct.map { t == "direct" ? 0 : r.result.median - $0.result.median } ?? .nan
            let addP99 = direct.map { t == "direct" ? 0 : r.result.p99 - $0.result.p99 } ?? .nan
            print(
                String(
                    format: "| %.0f | %@ | %.0f | %.0f | %.0f | %.0f | %.0f | %.0f |", rate, t as NSString,
                    r.result.rps,
                    r.result.median, r.result.p99, r.p999, addMedian, addP99))
        }
    }
    print("\nTarget: at 1,000 and 3,000 req/s, DPoP adds at most 500 µs at p99 over direct.")
    for rate in rates {
        guard let d = results["direct"]?[rate], let p = results["dpop"]?[rate] else { continue }
        let added = p.result.p99 - d.result.p99
        print(
            String(
                format: "%5.0f req/s: DPoP added p99 %.0f µs: %@", rate, added,
                (added <= 500 && p.result.errors == 0 ? "met" : "NOT met") as NSString))
    }
}

enum ShotSourceBuilder {
    /// `count` requests, round-robin over the agents, each with its own fresh proof (signed on all cores).
    static func dpop(agents: [JSONValue], keys: [P256.Signing.PrivateKey], url: String, path: String, count: Int)
        -> [Shot]
    {
        let now = Int64(Date().timeIntervalSince1970)
        let tokens = agents.map { $0["token"]!.stringValue! }
        let signers = keys.map { DPoPProofSigner(key: $0) }
        let out = Mutex<[Shot?]>(Array(repeating: nil, count: count))
        DispatchQueue.concurrentPerform(iterations: 4) { part in
            var local: [(Int, Shot)] = []
            for i in stride(from: part, to: count, by: 4) {
                let a = i % tokens.count
                let proof = try! signers[a].proof(method: "GET", url: url, accessToken: tokens[a], now: now)
                local.append((i, Shot(path: path, headers: [("Authorization", "DPoP \(tokens[a])"), ("DPoP", proof)])))
            }
            out.withLock { o in for (i, s) in local { o[i] = s } }
        }
        return out.withLock { $0.compactMap { $0 } }
    }
}

/// The long run: DPoP at `--connections` for `--seconds`, in rounds of `--round` seconds (proofs for a round are signed
/// before it; tokens are renewed at the token endpoint every 200 s, as an agent would), with the server's resident
/// memory after every round. Ends with the spread of the resident memory once the replay cache's window has filled.
func soak() throws {
    let total = Double(option("--seconds") ?? "600") ?? 600
    let round = Double(option("--round") ?? "20") ?? 20
    let connections = Int(option("--connections") ?? "16") ?? 16
    guard let pid = option("--server-pid") else { throw WardenError(.invalidRequest, "--server-pid is required") }
    let tokens = try JSONValue.parse(try String(contentsOfFile: dir + "/tokens.json", encoding: .utf8))
    guard case .array(var agents) = tokens, !agents.isEmpty else { throw WardenError(.invalidConfig, "no tokens") }
    let keys = try agents.map { a in
        try P256.Signing.PrivateKey(
            pemRepresentation: try String(contentsOfFile: a["key"]!.stringValue!, encoding: .utf8))
    }
    func residentMiB() -> Double {
        let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
        let line = status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") } ?? ""
        return (Double(line.split(separator: " ").dropFirst().first ?? "0") ?? 0) / 1024
    }
    /// New access tokens for every agent from the token endpoint (client assertion and DPoP, like any agent).
    func renew() throws {
        let server = "http://127.0.0.1:\(wardenPort)"
        let renewed = Mutex<[Int: String]>([:])
        let done = DispatchSemaphore(value: 0)
        let failure = Mutex<String?>(nil)
        let ids = agents.map { $0["id"]!.stringValue! }
        Task {
            for (i, key) in keys.enumerated() {
                do {
                    let t = try await AgentClient(server: server, key: key).token(spiffeID: ids[i])
                    guard let access = t["access_token"]?.stringValue else { throw WardenClientError("no token") }
                    renewed.withLock { $0[i] = access }
                } catch {
                    failure.withLock { $0 = "agent \(i): \(error)" }
                }
            }
            done.signal()
        }
        done.wait()
        if let f = failure.withLock({ $0 }) { throw WardenError(.invalidRequest, "token renewal failed: \(f)") }
        let fresh = renewed.withLock { $0 }
        agents = agents.enumerated().map { i, a in
            guard case .object(var pairs) = a, let t = fresh[i] else { return a }
            pairs.removeAll { $0.0 == "token" }
            pairs.append(("token", .string(t)))
            return .object(pairs)
        }
    }
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    let path = "/r/bench/hello"
    let url = "http://127.0.0.1:\(wardenPort)" + path
    let clock = ContinuousClock()
    let start = clock.now
    var renewedAt = clock.now
    try renew()
    var figures: [(seconds: Double, rps: Double, mib: Double, errors: Int)] = []
    print("round  elapsed s   req/s  errors  server RSS MiB")
    while clock.now - start < .seconds(total) {
        if clock.now - renewedAt > .seconds(200) {
            try renew()
            renewedAt = clock.now
        }
        let shots = ShotSourceBuilder.dpop(
            agents: agents, keys: keys, url: url, path: path, count: Int((round + 1.5) * 12_000))
        let r = try measure(
            group: group, port: wardenPort, tls: nil, connections: connections, seconds: round,
            source: ShotSource(shots, cycle: false))
        let elapsed = Double((clock.now - start).components.seconds)
        figures.append((elapsed, r.rps, residentMiB(), r.errors))
        print(
            String(
                format: "%5d  %9.0f  %6.0f  %6d  %14.1f", figures.count, elapsed, r.rps, r.errors, figures.last!.mib))
        fflush(nil)
    }
    try group.syncShutdownGracefully()
    // After the proof window (66 s) and a margin the replay cache holds what it will hold: from 120 s on, memory
    // should be flat.
    let settled = figures.filter { $0.seconds >= 120 }
    guard let first = settled.first, let low = settled.map(\.mib).min(), let high = settled.map(\.mib).max() else {
        print("too short to judge (needs rounds after 120 s)")
        return
    }
    let requests = figures.reduce(0.0) { $0 + $1.rps * round }
    print(
        String(
            format:
                "from 120 s to the end: resident %.1f to %.1f MiB (first %.1f, last %.1f; spread %.1f%% of the first); about %.0f requests, %d errors",
            low, high, first.mib, settled.last!.mib, (high - low) / first.mib * 100, requests,
            figures.reduce(0) { $0 + $1.errors }))
}

do {
    switch args[1] {
    case "setup": try setup(agents: Int(option("--agents") ?? "16") ?? 16)
    case "run": try run()
    case "soak": try soak()
    default:
        print("usage: GatewayBenchmark setup|run --dir DIR")
        exit(2)
    }
} catch {
    print("error: \(error)")
    exit(1)
}
