import Foundation
import Testing
import WardenRisk

@testable import WardenSimulation

/// `warden simulate --workload irregular`: the engine scored on irregular traffic with labelled attacks.
@Suite("Risk evaluation on irregular workloads (simulated clock, no HTTP)")
struct EvaluationTests {
    static func attack(_ r: Evaluation.Report, _ prefix: String) throws -> Evaluation.AttackScore {
        try #require(r.attacks.first { $0.name.hasPrefix(prefix) })
    }

    @Test("two weeks of irregular work: the evaluation's attacks caught, the multi-segment role never flagged")
    func twoWeeks() throws {
        var options = Evaluation.Options()
        options.days = 14
        let r = Evaluation.run(options)
        #expect(r.normalRequests > 100_000)
        #expect(r.attacks.count == 11)
        #expect(r.attacks.filter { $0.origin == "evaluation" }.count == 6)
        // The bulk pull: caught by the sliding volume window within its first 30 pulls, then contained.
        let bulk = try Self.attack(r, "bulk exfiltration")
        #expect(bulk.detectedBy.contains("volume_spike"))
        #expect((bulk.servedBeforeContainment ?? .max) <= 30, "\(bulk)")
        // Stuffing at the token endpoint, by source; a stolen token; an impersonation spree.
        #expect(try Self.attack(r, "credential stuffing").detectedBy.contains("denial_burst"))
        let stolen = try Self.attack(r, "stolen token")
        #expect(stolen.detectedBy.contains("stolen_token") && stolen.served == 0)
        #expect(try Self.attack(r, "impersonation spree").detectedBy.contains("impossible_delegation"))
        // Lateral movement to a permitted segment: held by the policy on context.risk.newSegment, never served.
        let lateral = try Self.attack(r, "lateral movement")
        #expect(lateral.detectedBy.contains("lateral_movement") && lateral.served == 0)
        // The operations role moves between three segments within seconds all the time: never lateral movement,
        // and no normal agent is held by the policy or contained.
        let lateralScore = try #require(r.detectors.first { $0.name == "lateral_movement" })
        #expect(lateralScore.falsePositives == 0)
        #expect(r.normalHeld == 0 && r.falseContainments.isEmpty && r.normalRefusedByEngine == 0)
        #expect(r.falseAlertsPer10k < 1, "\(r.table)")
        // The scores add up: every true positive belongs to a detected attack.
        let caught = Set(r.attacks.flatMap(\.detectedBy))
        for d in r.detectors where d.truePositives > 0 { #expect(caught.contains(d.name), "\(d.name)") }
        #expect(r.table.contains("precision") && r.json["attacks"]?.arrayValue?.count == 11)
    }

    @Test("without the hold policy the first lateral call is served; the same seed gives the same run")
    func withoutHoldAndDeterministic() throws {
        var options = Evaluation.Options()
        options.days = 10
        options.holdNewSegments = false
        let a = Evaluation.run(options)
        let b = Evaluation.run(options)
        let lateral = try Self.attack(a, "lateral movement")
        #expect(lateral.detectedBy.contains("lateral_movement"))
        #expect(lateral.servedBeforeContainment == 1)
        #expect(a.json.serialized == b.json.serialized)
    }

    @Test("precision and recall from the counts; nil when there is nothing to divide by")
    func scores() {
        let d = Evaluation.DetectorScore(
            name: "x", truePositives: 3, falsePositives: 1, attacksExpected: 4, attacksCaught: 3)
        #expect(d.precision == 0.75 && d.recall == 0.75)
        let none = Evaluation.DetectorScore(
            name: "y", truePositives: 0, falsePositives: 0, attacksExpected: 0, attacksCaught: 0)
        #expect(none.precision == nil && none.recall == nil)
    }
}
