import ArgumentParser
import Cedar
import Foundation
import WardenCore
import WardenGateway

struct SimulateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "simulate",
        abstract: "Drive an embedded Warden with a multi-agent workload and inject attacks; report detection.",
        discussion: """
            Starts an embedded Warden on loopback (a temporary data directory, the demo policies, an upstream that \
            answers with bodies of the asked size, the risk engine) and drives it over HTTP with DPoP on a simulated \
            clock: a support bot around the clock with daytime peaks, a document processor's nightly batches, a \
            finance reconciliation agent every hour and a fraud detector's steady stream, for --days days. Then the \
            attacks: a stolen token replayed with another key, the prompt-injected support bot pivoting to billing, \
            the document service reaching finance within seconds, slow exfiltration under every rate limit, and a \
            modified binary at enrollment. Prints, per attack, whether it was blocked, detected, and the time from \
            the triggering event to containment; and the false positives on the normal workload.
            """)

    @Flag(name: .long, help: "Print one JSON object.") var json = false
    @Option(name: .long, help: "Days of normal traffic before the attacks (at least 8).") var days = 9
    @Option(name: .long, help: "A running server (not supported yet: the simulation needs its clock).")
    var server: String?

    func run() async throws {
        if server != nil {
            throw ValidationError(
                "--server is not supported yet: the simulation drives an embedded Warden on a simulated clock (days of traffic in seconds); run it without --server"
            )
        }
        let quiet = json
        let report = try await Simulation.run(days: days) { line in
            if !quiet { FileHandle.standardError.write(Data((line + "\n").utf8)) }
        }
        if json {
            print(report.json.serialized)
            return
        }
        print("attack\tblocked\tdetected\tcontainment")
        for a in report.attacks {
            print(
                "\(a.name)\t\(a.blocked ? "yes" : "no")\t\(a.detected ? "yes" : "no")\t\(a.containmentMillis.map { String(format: "%.1f ms", $0) } ?? "-")"
            )
        }
        let per10k =
            report.normalRequests == 0 ? 0 : Double(report.falsePositives) * 10_000 / Double(report.normalRequests)
        print(
            "normal requests: \(report.normalRequests), false positives: \(report.falsePositives) (\(String(format: "%.2f", per10k)) per 10,000)"
        )
    }
}
