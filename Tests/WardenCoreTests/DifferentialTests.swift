import Cedar
import Foundation
import Testing
import WardenControlPlane
import WardenCore

/// Differential tests against the Rust reference engine (cedarpy 4.12.2): `Tests/Differential/gen_cases.py` generates
/// random policies, entities and requests from a seed, asks cedarpy for the answers, and writes them in the
/// integration-test format; the Swift engine must agree on every decision, reason and erroring policy. The same
/// run checks that the Swift parser rejects the policy texts cedarpy rejects, accepts the ones it accepts (with the
/// same policy JSON), and rejects the entity files cedarpy rejects.
@Suite("Differential against cedarpy")
struct DifferentialTests {
    @Test("random policies, entities and requests decide exactly as the Rust engine")
    func differential() throws {
        guard let python = TestSupport.python else {
            print("skipping: no Python with cedarpy (set WARDEN_PYTHON or run .ci/run to create .venv)")
            return
        }
        let (probe, _) = try TestSupport.run(python, ["-c", "import cedarpy"])
        guard probe == 0 else {
            print("skipping: \(python) cannot import cedarpy")
            return
        }
        let cases = TestSupport.scale("CEDAR_DIFF_CASES", default: 3000)
        let seed = TestSupport.scale("CEDAR_DIFF_SEED", default: 20_261_122)
        let dir = try TestSupport.temporaryDirectory("differential")
        defer { try? FileManager.default.removeItem(at: dir) }
        let script = TestSupport.packageRoot.appendingPathComponent("Tests/Differential/gen_cases.py").path
        let (status, _) = try TestSupport.run(
            python, [script, "--seed", String(seed), "--count", String(cases), "--out", dir.path])
        try #require(status == 0, "gen_cases.py failed")

        let files = try FileManager.default.contentsOfDirectory(atPath: dir.path)
            .filter { $0.hasPrefix("case-") && $0.hasSuffix(".json") && !$0.hasSuffix(".entities.json") }
        #expect(files.count > cases * 9 / 10)
        var runner = PolicyTestRunner(root: dir)
        for f in files.sorted() { runner.run(file: dir.appendingPathComponent(f).path) }
        for f in runner.failures.prefix(25) { Issue.record("\(f)") }
        #expect(runner.failed == 0)
        #expect(runner.passed > cases * 5)
        print("differential (seed \(seed), \(cases) cases): \(runner.passed) passed, \(runner.failed) failed")

        try checkParseErrors(dir)
        try checkAccepted(dir)
        try checkEntityErrors(dir)
    }

    @Test("random schemas and policies validate exactly as the Rust validator: valid or not, and the error kinds")
    func validation() throws {
        guard let python = TestSupport.python else {
            print("skipping: no Python with cedarpy (set WARDEN_PYTHON or run .ci/run to create .venv)")
            return
        }
        guard try TestSupport.run(python, ["-c", "import cedarpy"]).0 == 0 else {
            print("skipping: \(python) cannot import cedarpy")
            return
        }
        let cases = TestSupport.scale("CEDAR_VALIDATION_CASES", default: 2000)
        let seed = TestSupport.scale("CEDAR_DIFF_SEED", default: 20_261_122)
        let dir = try TestSupport.temporaryDirectory("validation-differential")
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("cases.jsonl")
        let script = TestSupport.packageRoot.appendingPathComponent("Tests/Differential/gen_validation.py").path
        let (status, _) = try TestSupport.run(
            python, [script, "--seed", String(seed), "--count", String(cases), "--out", out.path])
        try #require(status == 0, "gen_validation.py failed")
        var agree = 0
        var valid = 0
        var failures: [String] = []
        for item in try lines(out) {
            guard case .string(let schemaText)? = item["schema"], case .string(let policies)? = item["policies"],
                case .bool(let expected)? = item["valid"], case .array(let kindValues)? = item["kinds"]
            else { continue }
            let expectedKinds = Set(kindValues.compactMap { if case .string(let k) = $0 { k } else { nil } })
            do {
                let issues = Validator(schema: try Schema(text: schemaText)).validate(try PolicySet(text: policies))
                let kinds = Set(issues.map(\.kind))
                if issues.isEmpty == expected && kinds == expectedKinds {
                    agree += 1
                    if expected { valid += 1 }
                } else {
                    failures.append(
                        "expected \(expected ? "valid" : expectedKinds.sorted().description), got \(kinds.sorted()) "
                            + "[\(issues.map(\.message).joined(separator: "; "))]\n\(policies)\n\(schemaText)")
                }
            } catch {
                failures.append("did not load: \(error)\n\(policies)\n\(schemaText)")
            }
        }
        for f in failures.prefix(10) { Issue.record("\(f)") }
        #expect(failures.isEmpty)
        #expect(agree >= cases * 9 / 10 && valid > cases / 10)
        print("validation differential (seed \(seed)): \(agree) of \(agree + failures.count) agree, \(valid) valid")
        // The reference accepts Warden's schema, and the demo policy set validates against it there too.
        let schemaFile = dir.appendingPathComponent("warden.cedarschema")
        let demoFile = dir.appendingPathComponent("demo.cedar")
        try WardenSchema.text.write(to: schemaFile, atomically: true, encoding: .utf8)
        try PolicyEngine.demoPolicies.write(to: demoFile, atomically: true, encoding: .utf8)
        let (demoStatus, demoOut) = try TestSupport.run(
            python,
            [
                "-c",
                "import cedarpy,sys; r = cedarpy.validate_policies(open(sys.argv[1]).read(), open(sys.argv[2]).read()); "
                    + "print('valid' if r.validation_passed else [str(e) for e in r.errors])",
                demoFile.path, schemaFile.path,
            ])
        #expect(demoStatus == 0 && demoOut.contains("valid") && !demoOut.contains("["), "\(demoOut)")
    }

    private func lines(_ url: URL) throws -> [JSONValue] {
        guard FileManager.default.fileExists(atPath: url.path) else { return [] }
        return try String(contentsOf: url, encoding: .utf8).split(separator: "\n").map {
            try JSONValue.parse(String($0))
        }
    }

    private func checkParseErrors(_ dir: URL) throws {
        let items = try lines(dir.appendingPathComponent("parse-errors.jsonl"))
        #expect(items.count > 50)
        for item in items {
            guard case .string(let text)? = item["policies"] else { continue }
            do {
                _ = try PolicySet(text: text)
                Issue.record("accepted a policy text that cedarpy rejects: \(text.prefix(300))")
            } catch {
                #expect(error.location != nil, "parse error without a location: \(error)")
            }
        }
    }

    private func checkAccepted(_ dir: URL) throws {
        let items = try lines(dir.appendingPathComponent("accepted.jsonl"))
        #expect(items.count > 50)
        for item in items {
            guard case .string(let text)? = item["policies"] else { continue }
            let set: PolicySet
            do {
                set = try PolicySet(text: text)
            } catch {
                Issue.record("rejected a policy text that cedarpy accepts: \(error)\n\(text.prefix(300))")
                continue
            }
            // Export to the policy JSON format: the same as the reference implementation's, key order aside.
            if let est = item["est"] {
                let ours = PolicyJSON.encode(set)
                #expect(canonical(ours) == canonical(est), "policy JSON differs for:\n\(text.prefix(300))")
            }
            // Import the JSON back, and print and re-parse the text: both give the same syntax trees.
            let back = try PolicyJSON.decodePolicySet(PolicyJSON.encode(set))
            #expect(PolicyJSON.encode(back) == PolicyJSON.encode(set))
            let reparsed = try PolicySet(text: CedarPrinter.text(set))
            #expect(reparsed.policies.map(stripped) == set.policies.map(stripped), "\(CedarPrinter.text(set))")
        }
    }

    private func checkEntityErrors(_ dir: URL) throws {
        for item in try lines(dir.appendingPathComponent("entity-errors.jsonl")) {
            guard case .string(let text)? = item["entities"] else { continue }
            #expect(throws: CedarError.self, "accepted entities that cedarpy rejects: \(text.prefix(300))") {
                try CedarJSON.entities(text: text)
            }
        }
    }

    private func stripped(_ p: Policy) -> Policy {
        var q = p
        q.location = nil
        return q
    }

    /// JSON with object keys sorted, for comparisons that ignore key order.
    private func canonical(_ v: JSONValue) -> JSONValue {
        switch v {
        case .array(let a): .array(a.map(canonical))
        case .object(let o): .object(o.map { ($0.0, canonical($0.1)) }.sorted { $0.0 < $1.0 })
        default: v
        }
    }
}
