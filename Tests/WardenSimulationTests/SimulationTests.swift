import Cedar
import Testing
import WardenGateway
import WardenIdentity
import WardenTestSupport

@testable import WardenControlPlane
@testable import WardenServer
@testable import WardenSimulation

/// `warden simulate` end to end: eight simulated days of normal multi-agent traffic over HTTP with DPoP, then the five
/// attacks; every attack must be detected (and blocked or contained), and the normal traffic must raise no alert.
@Suite("warden simulate")
struct SimulationTests {
    @Test("every injected attack is detected; no false positive on the normal workload")
    func simulate() async throws {
        let report = try await Simulation.run(days: 8)
        #expect(report.normalRequests > 5000)
        #expect(report.falsePositives == 0)
        #expect(report.attacks.count == 5)
        for a in report.attacks {
            #expect(a.detected, "\(a.name) was not detected")
            #expect(a.blocked || a.containmentMillis != nil, "\(a.name) was neither blocked nor contained")
            if let ms = a.containmentMillis { #expect(ms < 100, "\(a.name): containment took \(ms) ms") }
        }
        let exfil = try #require(report.attacks.first { $0.name.hasPrefix("slow exfiltration") })
        #expect(!exfil.blocked && exfil.containmentMillis != nil)
        // The JSON shape scripts rely on.
        let json = report.json
        #expect(json["normal_requests"] != nil && json["false_positives"] != nil)
        let first = try #require(json["attacks"]?.arrayValue?.first)
        for key in ["name", "blocked", "detected", "containment_ms"] { #expect(first[key] != nil, "\(key)") }
    }
}
