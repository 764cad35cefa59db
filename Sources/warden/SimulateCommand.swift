import ArgumentParser
import Cedar
import Foundation
import WardenClient
import WardenControlPlane
import WardenCore
import WardenGateway
import WardenServer
import WardenSimulation

struct SimulateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "simulate",
        abstract: "Drive Warden with a multi-agent workload and inject attacks; report detection.",
        discussion: """
            Without --server: starts an embedded Warden on loopback (a temporary data directory, the demo policies, \
            an upstream that answers with bodies of the asked size, the risk engine) and drives it over HTTP with \
            DPoP on a simulated clock: a support bot around the clock with daytime peaks, a document processor's \
            nightly batches, a finance reconciliation agent every hour and a fraud detector's steady stream, for \
            --days days. Then the attacks: a stolen token replayed with another key, the prompt-injected support bot \
            pivoting to billing, the document service reaching finance within seconds, slow exfiltration under every \
            rate limit, and a modified binary at enrollment. Prints, per attack, whether it was blocked, detected, \
            and the time from the triggering event to containment; and the false positives on the normal workload.

            With --server URL: the same workload and attacks against a running Warden, in real time, for --minutes \
            of normal traffic, through its admin API, enrollment, token endpoint and /r/ routes; alerts are read \
            from its live stream. The server needs the workload's routes and a short risk warm-up: \
            'warden simulate --setup DIR' writes such a configuration (DIR/warden.yaml) to start it with. This \
            command serves the routes' upstream on --upstream-listen. Detectors that need days of history (slow \
            exfiltration) cannot fire in minutes; the report says so.

            With --workload irregular: the risk engine judged on irregular traffic with known attacks in it, on a \
            simulated clock (no HTTP): weeks of work by six agent families (log-normal think times, shift changes, \
            month-end closes, nightly batches, a role spanning three segments, tools adopted over time, a growing \
            customer pool, an agent joining halfway) and eleven attacks, six from an independent evaluation and five \
            shapes the detectors were not tuned to. Prints precision and recall per detector, false findings per \
            10,000 requests and the requests each attack had served before containment. --config FILE judges with \
            that file's risk: settings (per role and agent too); --seed picks another run.
            """)

    @Flag(name: .long, help: "Print one JSON object.") var json = false
    @Option(
        name: .long,
        help:
            "Days of normal traffic before the attacks, embedded mode (at least 8; default 9), or of --workload (default 35)."
    ) var days: Int?
    @Option(name: .long, help: "A running server's URL: drive it in real time.") var server: String?
    @Option(name: .long, help: "File holding the admin token, with --server (or set WARDEN_ADMIN_TOKEN).")
    var adminTokenFile: String?
    @Option(name: .long, help: "Minutes of normal traffic before the attacks, with --server.") var minutes = 4.0
    @Option(name: .long, help: "host:port for the workload's upstream, with --server or --setup.")
    var upstreamListen = "127.0.0.1:9480"
    @Option(name: .long, help: "Write a live server's configuration for --server into DIR, and exit.")
    var setup: String?
    @Option(name: .long, help: "host:port the --setup server listens on.") var listen = "127.0.0.1:8443"
    @Option(name: .long, help: "The --setup server's risk warm-up, seconds.") var warmup = 120
    @Option(name: .long, help: "The --setup server's risk warm-up, events per agent.") var warmupEvents = 60
    @Option(name: .long, help: "irregular: score the risk engine on irregular traffic with labelled attacks.")
    var workload: String?
    @Option(name: .long, help: "With --workload: the run's seed.") var seed: UInt64 = 1
    @Option(name: .long, help: "With --workload: judge with this warden.yaml's risk settings.") var config: String?
    @Flag(name: .long, help: "With --workload: without the hold-new-segments policy.") var noHold = false

    func validate() throws {
        guard minutes > 0, minutes <= 24 * 60 else { throw ValidationError("--minutes must be between 0 and 1440") }
        guard (1...3650).contains(days ?? 9) else { throw ValidationError("--days must be between 1 and 3650") }
        guard (0...86_400).contains(warmup), (0...1_000_000).contains(warmupEvents) else {
            throw ValidationError("--warmup must be 0 to 86400 seconds and --warmup-events 0 to 1000000")
        }
        if setup != nil, server != nil { throw ValidationError("--setup writes a configuration; run --server after") }
        if let workload {
            guard workload == "irregular" else { throw ValidationError("--workload must be irregular") }
            guard server == nil, setup == nil else { throw ValidationError("--workload runs on its own") }
            guard (10...400).contains(days ?? 35) else {
                throw ValidationError("--workload needs --days from 10 to 400")
            }
        }
    }

    func run() async throws {
        try await reporting {
            if let setup {
                let dir = URL(fileURLWithPath: setup).standardizedFileURL.path
                let path = try Simulation.writeSetup(
                    directory: dir, listen: listen, upstream: upstreamListen, warmup: warmup, warmupEvents: warmupEvents
                )
                print(
                    """
                    wrote \(path) (routes to the workload's upstream on \(upstreamListen), risk warm-up \(warmup) s and \(warmupEvents) events)
                    start the server:   warden serve --config \(path)
                    then drive it:      warden simulate --server http://\(listen) --admin-token-file \(dir)/data/admin.token --upstream-listen \(upstreamListen)
                    """)
                return
            }
            if workload != nil {
                var options = Evaluation.Options()
                options.days = days ?? 35
                options.seed = seed
                options.holdNewSegments = !noHold
                if let config {
                    options.tunings = try WardenConfig(
                        parsing: try SecureFile.read(config, maxBytes: 1 << 20), file: config
                    ).risk.tunings
                }
                let report = Evaluation.run(options)
                print(json ? report.json.serialized : report.table)
                return
            }
            let report: Simulation.Report
            let quiet = json
            let progress: @Sendable (String) -> Void = { line in
                if !quiet { FileHandle.standardError.write(Data((line + "\n").utf8)) }
            }
            if let server {
                report = try await live(server: server, progress: progress)
            } else {
                report = try await Simulation.run(days: days ?? 9, progress: progress)
            }
            print(json ? report.json.serialized : Self.table(report))
        }
    }

    func live(server: String, progress: @escaping @Sendable (String) -> Void) async throws -> Simulation.Report {
        try WardenHTTP(server: server).checkCredentialsAllowed()
        let token = try AdminOptions.adminToken(file: adminTokenFile)
        guard let colon = upstreamListen.lastIndex(of: ":"), let port = Int(upstreamListen[colon...].dropFirst()),
            (1...65535).contains(port)
        else { throw ValidationError("--upstream-listen must be host:port") }
        var host = String(upstreamListen[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        let upstream = Simulation.fillerUpstream(host: host, port: port)
        let upstreamTask = Task { try await upstream.runService() }
        defer { upstreamTask.cancel() }
        do {
            try await Simulation.waitUntilListening(.shared, "http://\(upstreamListen)/ready", attempts: 300)
        } catch {
            throw ValidationError("the workload's upstream could not listen on \(upstreamListen) (in use?)")
        }
        var options = LiveSimulation.Options(server: server, adminToken: token)
        options.normalSeconds = minutes * 60
        // A quarter of the normal phase, at most a minute: long enough to show that minutes do not make a day.
        options.exfilSeconds = min(60, max(2, options.normalSeconds / 4))
        return try await LiveSimulation.run(options, progress: progress)
    }

    static func table(_ report: Simulation.Report) -> String {
        var lines = ["attack\tblocked\tdetected\tcontainment"]
        for a in report.attacks {
            lines.append(
                "\(a.name)\t\(a.blocked ? "yes" : "no")\t\(a.detected ? "yes" : "no")\t\(a.containmentMillis.map { String(format: "%.1f ms", $0) } ?? "-")"
            )
            if let note = a.note { lines.append("  (\(note))") }
        }
        let per10k =
            report.normalRequests == 0 ? 0 : Double(report.falsePositives) * 10_000 / Double(report.normalRequests)
        lines.append(
            "normal requests: \(report.normalRequests), false positives: \(report.falsePositives) (\(String(format: "%.2f", per10k)) per 10,000)"
        )
        return lines.joined(separator: "\n")
    }
}
