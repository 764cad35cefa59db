import Cedar
import Foundation
import Hummingbird
import Testing
import WardenCore
import WardenIdentity
import WardenRisk
import WardenSimulation
import WardenTestSupport

@testable import WardenControlPlane
@testable import WardenGateway
@testable import WardenServer

/// `warden simulate --server`'s driver against a Warden listening on loopback, configured from `warden simulate
/// --setup` (the workload's routes, a warm-up of seconds): real time, HTTP only (admin API, enrollment, token
/// endpoint, `/r/` with DPoP, the live alert stream).
@Suite("warden simulate --server: a live server driven in real time")
struct LiveSimulationTests {

    /// Runs `body` with a Warden configured by `warden simulate --setup` listening on loopback (the workload's
    /// upstream running unless `upstream` is false), and its admin token.
    static func withLiveServer(
        upstream running: Bool = true, _ body: (LiveSimulation.Options, ControlPlane) async throws -> Void
    ) async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("warden-live-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let port = try Simulation.freePort()
        let upstreamPort = try Simulation.freePort()
        let path = try Simulation.writeSetup(
            directory: dir, listen: "127.0.0.1:\(port)", upstream: "127.0.0.1:\(upstreamPort)", warmup: 3,
            warmupEvents: 5)
        // Nothing is overwritten.
        #expect(throws: WardenError.self) { try Simulation.writeSetup(directory: dir) }
        let config = try WardenConfig(parsing: try SecureFile.read(path, maxBytes: 1 << 16), file: path)
        #expect(config.routes.count == Simulation.services.count && config.risk.settings.warmupSeconds == 3)

        let upstream = Simulation.fillerUpstream(host: "127.0.0.1", port: upstreamPort)
        let upstreamTask = Task { if running { try await upstream.runService() } }
        defer { upstreamTask.cancel() }
        let cp = try ControlPlane(config: config)
        let gateway = try Gateway(cp: cp)
        let engine = RiskEngine(
            actions: ControlPlaneRiskActions(cp: cp), settings: config.risk.settings, playbooks: config.risk.playbooks)
        cp.risk.attach(engine)
        let consumer = Task { await cp.risk.run(engine, audit: cp.audit) }
        let app = Application(
            router: WardenRouter.build(cp, gateway: gateway),
            configuration: .init(address: .hostname("127.0.0.1", port: port)))
        let appTask = Task { try await app.runService() }
        defer {
            appTask.cancel()
            engine.stop()
            consumer.cancel()
        }
        let base = "http://127.0.0.1:\(port)"
        try await Simulation.waitUntilListening(.shared, base + "/healthz")
        var options = LiveSimulation.Options(
            server: base, adminToken: try SecureFile.readSecret(config.data + "/admin.token", maxBytes: 1024))
        options.normalSeconds = 6
        options.tick = 0.25
        options.exfilSeconds = 2
        do {
            try await body(options, cp)
            await gateway.shutdown()
        } catch {
            await gateway.shutdown()
            throw error
        }
    }

    @Test("routes that do not lead to the simulation's upstream stop the run before any workload")
    func notSetUp() async throws {
        try await Self.withLiveServer(upstream: false) { options, cp in
            do {
                _ = try await LiveSimulation.run(options)
                Issue.record("a run against routes with no filler upstream was reported")
            } catch {
                #expect("\(error)".contains("the server's routes must lead to this command's --upstream-listen"))
            }
            // The agents it registered are decommissioned all the same.
            let active = try cp.store.agents().filter { $0.state == .active }
            #expect(active.isEmpty)
        }
    }

    @Test("every attack blocked; probing, pivot, lateral movement and the modified binary detected; no false positive")
    func live() async throws {
        try await Self.withLiveServer { options, cp in
            let report = try await LiveSimulation.run(options)
            let out = report.json.serialized
            func attack(_ prefix: String) -> Simulation.AttackResult? {
                report.attacks.first { $0.name.hasPrefix(prefix) }
            }
            #expect(report.attacks.count == 5)
            for name in ["stolen-key", "prompt-injected", "document service", "supply-chain"] {
                #expect(attack(name)?.blocked == true, "\(name): \(out)")
                #expect(attack(name)?.detected == true, "\(name): \(out)")
            }
            // Contained on the next request, within 100 ms of the event (the stolen token: the victim's tokens revoked).
            for name in ["stolen-key", "prompt-injected", "document service"] {
                let ms = try #require(attack(name)?.containmentMillis, "\(name): \(out)")
                #expect(ms < 100, "\(name): \(ms) ms")
            }
            // Seconds cannot make a day: the slow exfiltration is served and not detected, and the report says why.
            #expect(attack("slow exfiltration")?.detected == false)
            #expect(attack("slow exfiltration")?.note?.contains("3 completed days") == true)
            #expect(report.falsePositives == 0, "\(out)")
            #expect(report.normalRequests > 20, "\(out)")
            // The run's agents were decommissioned at the end.
            let left = try cp.store.agents().filter { $0.manifest.name.hasPrefix("sim-") && $0.state == .active }
            #expect(left.isEmpty, "\(left.map(\.manifest.name))")
        }
    }
}
