import ArgumentParser
import Cedar
import Foundation
import WardenControlPlane
import WardenCore

struct PostureCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "posture",
        abstract:
            "The posture of the non-human identities: inventory, credentials, least privilege, detections, maturity.",
        discussion: """
            From the server's own records (a running server with --server, or the data directory): agents by state \
            and attestation strength, outstanding join tokens, credential ages, signing-key rotation, agents idle or \
            never seen, over-permissive and unused permits, unused manifest scopes, refusals and detections over \
            the window with the time to containment, the share of calls from verified identities, a maturity level \
            from 1 to 5 with the checks of each level, and suggestions. Text by default; --json, --markdown, or \
            --html FILE (one self-contained page with charts).
            """)

    @OptionGroup var admin: AdminOptions
    @Option(name: .long, help: "The window of audit log read: 7d, 30d ... (default 30d).") var window = "30d"
    @Flag(name: .long, help: "Print the report's JSON.") var json = false
    @Flag(name: .long, help: "Print the report as Markdown.") var markdown = false
    @Option(name: .long, help: "Write the report as one self-contained HTML page to FILE.") var html: String?

    func run() async throws {
        try await reporting {
            guard let seconds = WardenConfig.parseDuration(window), seconds >= 86_400, seconds <= 366 * 86_400 else {
                throw ValidationError("--window must be a duration of 1d to 366d")
            }
            let report: JSONValue
            if let client = try admin.client() {
                report = try await client.call("GET", "/v1/admin/posture?window=\(seconds / 86_400)d")
            } else {
                let (cp, lock) = try admin.local()
                report = try cp.posture(windowDays: seconds / 86_400)
                withExtendedLifetime(lock) {}
            }
            if let html {
                try SecureFile.write(PostureRender.html(report), to: html, mode: 0o644)
                print("warden posture: \(html) (maturity level \(report["maturity"]?["level"]?.integerValue ?? 0))")
            } else if json {
                print(report.serialized)
            } else {
                print(PostureRender.markdown(report, plain: !markdown))
            }
        }
    }
}

/// The posture report's renderings: Markdown (or plain text) and a self-contained HTML page with inline SVG charts.
enum PostureRender {
    static func int(_ v: JSONValue?) -> Int64 { v?.integerValue ?? 0 }
    static func strings(_ v: JSONValue?) -> [String] { (v?.arrayValue ?? []).compactMap(\.stringValue) }
    static func pairs(_ v: JSONValue?) -> [(String, Int64)] {
        guard case .object(let p)? = v else { return [] }
        return p.map { ($0.0, $0.1.integerValue ?? 0) }
    }

    static func markdown(_ r: JSONValue, plain: Bool) -> String {
        var out: [String] = []
        func h(_ text: String) { out.append(plain ? "\n" + text.uppercased() : "\n## " + text) }
        let level = int(r["maturity"]?["level"])
        out.append(
            (plain ? "" : "# ") + "Warden posture: \(r["trust_domain"]?.stringValue ?? "") at "
                + "\(r["generated_at"]?.stringValue ?? ""), last \(int(r["window_days"])) days")
        out.append("\nMaturity level \(level) of 5")
        for l in r["maturity"]?["levels"]?.arrayValue ?? [] {
            let met = l["met"] == .bool(true)
            out.append("\n- Level \(int(l["level"])) \(l["name"]?.stringValue ?? ""): \(met ? "met" : "not met")")
            for c in l["checks"]?.arrayValue ?? [] {
                out.append("  - [\(c["passed"] == .bool(true) ? "x" : " ")] \(c["check"]?.stringValue ?? "")")
            }
        }
        let inv = r["inventory"]
        h("Inventory")
        out.append(
            "\(int(inv?["agents"])) agents; by state: "
                + pairs(inv?["by_state"]).map { "\($0.0) \($0.1)" }.joined(separator: ", "))
        out.append(
            "active agents by attestation: "
                + pairs(inv?["active_by_attestation"]).map { "\($0.0) \($0.1)" }.joined(separator: ", "))
        if !plain {
            out.append("\n| agent | state | attestation | owner | credential age (d) | last seen (d ago) |")
            out.append("|---|---|---|---|---:|---:|")
        }
        for a in inv?["list"]?.arrayValue ?? [] {
            let seen =
                a["last_seen_days_ago"].flatMap { $0 == .null ? nil : $0.integerValue }.map(String.init) ?? "never"
            let age = a["credential_age_days"]?.integerValue.map(String.init) ?? "-"
            let cells = [
                a["name"]?.stringValue ?? "", a["state"]?.stringValue ?? "", a["attestation"]?.stringValue ?? "",
                a["owner"]?.stringValue ?? "", age, seen,
            ]
            out.append(plain ? "  " + cells.joined(separator: "  ") : "| " + cells.joined(separator: " | ") + " |")
        }
        let cr = r["credentials"]
        h("Credentials")
        out.append(
            "access tokens \(int(cr?["access_token_ttl_seconds"])) s, SVIDs \(int(cr?["svid_ttl_seconds"])) s; signing key "
                + "\(int(cr?["signing_key"]?["age_seconds"]) / 3600) h old, rotation every "
                + "\(int(cr?["signing_key"]?["rotation_seconds"]) / 3600) h (\(cr?["signing_key"]?["compliant"] == .bool(true) ? "compliant" : "OVERDUE"))"
        )
        out.append("join tokens outstanding: \((cr?["join_tokens_outstanding"]?.arrayValue ?? []).count)")
        let old = strings(cr?["enrolled_keys_90_days_or_older"])
        out.append("enrolled keys 90 days or older: \(old.isEmpty ? "none" : old.joined(separator: ", "))")
        let act = r["activity"]
        h("Activity")
        out.append(
            "\(int(act?["decisions"])) decisions, \(int(act?["verified"])) from verified identities "
                + "(\(act?["verified_share"]?.numberText ?? "")), \(int(act?["denied"])) denied: "
                + pairs(act?["denied_by_reason"]).map { "\($0.0) \($0.1)" }.joined(separator: ", "))
        out.append("idle agents: \(strings(act?["idle_agents"]).joined(separator: ", ").ifEmpty("none"))")
        out.append("never seen: \(strings(act?["never_seen_agents"]).joined(separator: ", ").ifEmpty("none"))")
        let d = r["detections"]
        h("Detections")
        out.append(
            "\(int(d?["alerts"])) alerts"
                + (pairs(d?["by_severity"]).isEmpty
                    ? "" : " (" + pairs(d?["by_severity"]).map { "\($0.0) \($0.1)" }.joined(separator: ", ") + ")")
                + ", \(int(d?["containments"])) contained, median "
                + "\(d?["containment_ms_median"]?.numberText ?? "n/a") ms, max \(d?["containment_ms_max"]?.numberText ?? "n/a") ms"
        )
        let p = r["policies"]
        h("Policies")
        out.append("\(int(p?["count"])) policies")
        for o in p?["over_permissive"]?.arrayValue ?? [] {
            out.append("- over-permissive \(o["id"]?.stringValue ?? ""): \(o["why"]?.stringValue ?? "")")
        }
        out.append("unused permits: \(strings(p?["unused_permits"]).joined(separator: ", ").ifEmpty("none"))")
        for u in p?["unused_scopes"]?.arrayValue ?? [] {
            out.append("- \(u["agent"]?.stringValue ?? ""): unused \(strings(u["scopes"]).joined(separator: ", "))")
        }
        h("Suggestions")
        let s = strings(r["suggestions"])
        out.append(s.isEmpty ? "none" : s.map { "- " + $0 }.joined(separator: "\n"))
        return out.joined(separator: "\n")
    }

    static func esc(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }

    /// A horizontal bar chart as inline SVG.
    static func bars(_ title: String, _ data: [(String, Int64)], color: String) -> String {
        let maxValue = max(1, data.map(\.1).max() ?? 1)
        let rowH = 26
        var svg =
            "<figure><figcaption>\(esc(title))</figcaption><svg role=\"img\" aria-label=\"\(esc(title))\" width=\"460\" height=\"\(max(1, data.count) * rowH + 6)\">"
        if data.isEmpty { svg += "<text x=\"0\" y=\"18\" class=\"muted\">none</text>" }
        for (i, (label, value)) in data.enumerated() {
            let y = i * rowH + 4
            let w = Int(Double(value) / Double(maxValue) * 240)
            svg += "<text x=\"0\" y=\"\(y + 15)\">\(esc(label))</text>"
            svg += "<rect x=\"170\" y=\"\(y)\" width=\"\(max(w, 2))\" height=\"18\" rx=\"3\" fill=\"\(color)\"/>"
            svg += "<text x=\"\(176 + w)\" y=\"\(y + 15)\">\(value)</text>"
        }
        return svg + "</svg></figure>"
    }

    static func html(_ r: JSONValue) -> String {
        let level = int(r["maturity"]?["level"])
        var ladder = "<div class=\"ladder\">"
        for l in r["maturity"]?["levels"]?.arrayValue ?? [] {
            let n = int(l["level"])
            let met = n <= level
            ladder += "<div class=\"step \(met ? "met" : "")\"><b>\(n)</b> \(esc(l["name"]?.stringValue ?? ""))<ul>"
            for c in l["checks"]?.arrayValue ?? [] {
                ladder +=
                    "<li class=\"\(c["passed"] == .bool(true) ? "ok" : "no")\">\(esc(c["check"]?.stringValue ?? ""))</li>"
            }
            ladder += "</ul></div>"
        }
        ladder += "</div>"
        let inv = r["inventory"]
        var rows = ""
        for a in inv?["list"]?.arrayValue ?? [] {
            let seen =
                a["last_seen_days_ago"].flatMap { $0 == .null ? nil : $0.integerValue }.map(String.init) ?? "never"
            rows +=
                "<tr><td>\(esc(a["name"]?.stringValue ?? ""))</td><td>\(esc(a["state"]?.stringValue ?? ""))</td>"
                + "<td>\(esc(a["attestation"]?.stringValue ?? ""))</td><td>\(esc(a["owner"]?.stringValue ?? ""))</td>"
                + "<td>\(a["credential_age_days"]?.integerValue.map(String.init) ?? "-")</td><td>\(seen)</td></tr>"
        }
        let p = r["policies"]
        var findings = ""
        for o in p?["over_permissive"]?.arrayValue ?? [] {
            findings +=
                "<li><b>\(esc(o["id"]?.stringValue ?? ""))</b>: over-permissive, \(esc(o["why"]?.stringValue ?? ""))</li>"
        }
        for u in strings(p?["unused_permits"]) {
            findings += "<li><b>\(esc(u))</b>: permitted nothing in the window</li>"
        }
        for u in p?["unused_scopes"]?.arrayValue ?? [] {
            findings +=
                "<li><b>\(esc(u["agent"]?.stringValue ?? ""))</b>: unused \(esc(strings(u["scopes"]).joined(separator: ", ")))</li>"
        }
        let act = r["activity"]
        let d = r["detections"]
        let verified = act?["verified_share"]?.numberText.flatMap(Double.init) ?? 0
        let suggestions = strings(r["suggestions"]).map { "<li>\(esc($0))</li>" }.joined()
        return """
            <!doctype html>
            <html lang="en"><head><meta charset="utf-8"><title>Warden posture</title>
            <style>
            body{font-family:system-ui,sans-serif;margin:2rem;color:#1d2433;max-width:1100px}
            h1{margin-bottom:.2rem}.muted{color:#6b7280;fill:#6b7280}
            .grid{display:flex;flex-wrap:wrap;gap:1.5rem}.card{border:1px solid #e5e7eb;border-radius:8px;padding:1rem}
            .big{font-size:2.4rem;font-weight:700}.ladder{display:flex;gap:.5rem}
            .step{flex:1;border:1px solid #e5e7eb;border-radius:8px;padding:.6rem;background:#f9fafb;font-size:.85rem}
            .step.met{background:#ecfdf5;border-color:#10b981}.step ul{padding-left:1rem;margin:.3rem 0}
            li.ok::marker{content:"✔ ";color:#059669}li.no::marker{content:"✘ ";color:#dc2626}
            table{border-collapse:collapse;width:100%;font-size:.9rem}td,th{border-bottom:1px solid #e5e7eb;padding:.3rem;text-align:left}
            figure{margin:0}figcaption{font-weight:600;margin-bottom:.3rem}svg text{font-size:13px}
            </style></head><body>
            <h1>Warden posture</h1>
            <p class="muted">\(esc(r["trust_domain"]?.stringValue ?? "")), \(esc(r["generated_at"]?.stringValue ?? "")), the last \(int(r["window_days"])) days of the audit log</p>
            <div class="grid">
            <div class="card"><div class="muted">Maturity</div><div class="big">\(level) / 5</div></div>
            <div class="card"><div class="muted">Agents</div><div class="big">\(int(inv?["agents"]))</div></div>
            <div class="card"><div class="muted">Calls from verified identities</div><div class="big">\(String(format: "%.1f", verified * 100)) %</div></div>
            <div class="card"><div class="muted">Alerts / contained</div><div class="big">\(int(d?["alerts"])) / \(int(d?["containments"]))</div>
            <div class="muted">median \(esc(d?["containment_ms_median"]?.numberText ?? "n/a")) ms to containment</div></div>
            </div>
            <h2>Maturity</h2>\(ladder)
            <h2>Identities</h2><div class="grid">
            <div class="card">\(bars("Active agents by attestation", pairs(inv?["active_by_attestation"]), color: "#6366f1"))</div>
            <div class="card">\(bars("Agents by state", pairs(inv?["by_state"]), color: "#0ea5e9"))</div>
            <div class="card">\(bars("Refusals by reason", pairs(act?["denied_by_reason"]), color: "#f97316"))</div>
            </div>
            <table><tr><th>agent</th><th>state</th><th>attestation</th><th>owner</th><th>credential age (days)</th><th>last seen (days ago)</th></tr>\(rows)</table>
            <h2>Least privilege</h2><ul>\(findings.isEmpty ? "<li>no findings</li>" : findings)</ul>
            <h2>Suggestions</h2><ul>\(suggestions.isEmpty ? "<li>none</li>" : suggestions)</ul>
            </body></html>
            """
    }
}

extension String {
    fileprivate func ifEmpty(_ other: String) -> String { isEmpty ? other : self }
}

extension JSONValue {
    /// The text of a JSON number.
    fileprivate var numberText: String? { if case .number(let n) = self { n } else { nil } }
}
