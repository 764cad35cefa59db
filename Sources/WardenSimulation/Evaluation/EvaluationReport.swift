import Cedar
import Foundation

extension Evaluation.Report {
    static func ratio(_ x: Double?) -> String { x.map { String(format: "%.2f", $0) } ?? "-" }

    /// The report as text: detectors, attacks, normal traffic.
    public var table: String {
        var lines = [
            "irregular workload: \(days) days, seed \(seed), \(normalRequests) normal requests", "",
            "detector\ttrue\tfalse\tprecision\trecall",
        ]
        for d in detectors {
            lines.append(
                "\(d.name)\t\(d.truePositives)\t\(d.falsePositives)\t\(Self.ratio(d.precision))\t\(d.recall.map { "\(Self.ratio($0)) (\(d.attacksCaught)/\(d.attacksExpected))" } ?? "-")"
            )
        }
        lines += ["", "attack\torigin\tdetected by\tserved\tserved before containment\tcontainment"]
        for a in attacks {
            lines.append(
                "\(a.name)\t\(a.origin)\t\(a.detectedBy.isEmpty ? "not detected" : a.detectedBy.joined(separator: ", "))\t\(a.served)/\(a.requests)\t\(a.servedBeforeContainment.map(String.init) ?? "-")\t\(a.containment ?? "-")"
            )
        }
        lines += [
            "",
            "false findings: \(falseFindings) (\(String(format: "%.2f", falseFindingsPer10k)) per 10,000 requests), of medium or high severity: \(falseAlerts) (\(String(format: "%.2f", falseAlertsPer10k)) per 10,000)",
            "normal agents contained: \(falseContainments.isEmpty ? "none" : falseContainments.joined(separator: ", "))",
            "normal requests refused by the engine's responses: \(normalRefusedByEngine); held by hold-new-segments: \(normalHeld)",
        ]
        return lines.joined(separator: "\n")
    }

    public var json: JSONValue {
        func num(_ x: Double?) -> JSONValue { x.map { .number(String(format: "%.4f", $0)) } ?? .null }
        return .object([
            ("days", .number(String(days))), ("seed", .number(String(seed))),
            ("normal_requests", .number(String(normalRequests))),
            ("false_findings", .number(String(falseFindings))),
            ("false_findings_per_10k", num(falseFindingsPer10k)),
            ("false_alerts", .number(String(falseAlerts))), ("false_alerts_per_10k", num(falseAlertsPer10k)),
            ("false_containments", .array(falseContainments.map { .string($0) })),
            ("normal_refused_by_engine", .number(String(normalRefusedByEngine))),
            ("normal_held", .number(String(normalHeld))),
            (
                "detectors",
                .array(
                    detectors.map {
                        .object([
                            ("name", .string($0.name)), ("true_positives", .number(String($0.truePositives))),
                            ("false_positives", .number(String($0.falsePositives))), ("precision", num($0.precision)),
                            ("recall", num($0.recall)), ("attacks_expected", .number(String($0.attacksExpected))),
                            ("attacks_caught", .number(String($0.attacksCaught))),
                        ])
                    })
            ),
            (
                "attacks",
                .array(
                    attacks.map {
                        .object([
                            ("name", .string($0.name)), ("origin", .string($0.origin)),
                            ("expected", .array($0.expected.map { .string($0) })),
                            ("detected_by", .array($0.detectedBy.map { .string($0) })),
                            ("detected", .bool($0.detected)), ("requests", .number(String($0.requests))),
                            ("served", .number(String($0.served))),
                            (
                                "served_before_containment",
                                $0.servedBeforeContainment.map { .number(String($0)) } ?? .null
                            ),
                            ("containment", $0.containment.map { .string($0) } ?? .null),
                        ])
                    })
            ),
        ])
    }
}
