import Cedar
import Foundation
import Testing

/// The `warden policy` verbs, run as a user runs them: the built binary on the shipped example.
@Suite("warden policy CLI")
struct CLITests {
    /// The built `warden` binary (`$WARDEN_BIN`, else `.build/debug/warden`, which `swift build --build-tests` makes).
    static var binary: String? {
        if let b = ProcessInfo.processInfo.environment["WARDEN_BIN"] { return b }
        let path = TestSupport.packageRoot.appendingPathComponent(".build/debug/warden").path
        return FileManager.default.isExecutableFile(atPath: path) ? path : nil
    }

    static func binaryOrSkip() -> String? {
        if binary == nil { print("skipping: no warden binary (run swift build first)") }
        return binary
    }

    static let examples = TestSupport.packageRoot.appendingPathComponent("examples")

    @Test("policy test passes on the example and ends with the summary line")
    func policyTest() throws {
        guard let warden = Self.binaryOrSkip() else { return }
        let (status, out) = try TestSupport.run(
            warden, ["policy", "test", "--root", Self.examples.path, Self.examples.path + "/agents/tests.json"])
        #expect(status == 0)
        #expect(out.split(separator: "\n").last == "9 passed, 0 failed")
    }

    @Test("policy test reports mismatches and unloadable files, and exits non-zero")
    func policyTestFailures() throws {
        guard let warden = Self.binaryOrSkip() else { return }
        let dir = try TestSupport.temporaryDirectory("cli")
        defer { try? FileManager.default.removeItem(at: dir) }
        try "permit(principal, action, resource);".write(
            to: dir.appendingPathComponent("p.cedar"), atomically: true, encoding: .utf8)
        try "[]".write(to: dir.appendingPathComponent("e.json"), atomically: true, encoding: .utf8)
        let request = """
            {"description": "wrong expectation", "principal": {"type": "A", "id": "a"},
             "action": {"type": "Action", "id": "x"}, "resource": {"type": "R", "id": "r"}, "context": {},
             "decision": "deny", "reason": [], "errors": []}
            """
        try "{\"policies\": \"p.cedar\", \"entities\": \"e.json\", \"requests\": [\(request), \(request)]}".write(
            to: dir.appendingPathComponent("t.json"), atomically: true, encoding: .utf8)
        let (status, out) = try TestSupport.run(
            warden,
            [
                "policy", "test", "--root", dir.path, dir.appendingPathComponent("t.json").path,
                dir.path + "/missing.json",
            ])
        #expect(status != 0)
        #expect(out.contains("t.json: wrong expectation: decision allow, expected deny"))
        #expect(out.contains("missing.json: cannot load the test"))
        #expect(out.split(separator: "\n").last == "0 passed, 3 failed")
    }

    @Test("policy authorize and policy test name a policy by its @id; policy test accepts either name")
    func namedPolicies() throws {
        guard let warden = Self.binaryOrSkip() else { return }
        let dir = try TestSupport.temporaryDirectory("named")
        defer { try? FileManager.default.removeItem(at: dir) }
        try """
        @id("admins-may") permit (principal == A::"admin", action, resource);
        permit (principal == A::"b", action, resource);
        """.write(to: dir.appendingPathComponent("p.cedar"), atomically: true, encoding: .utf8)
        try "[]".write(to: dir.appendingPathComponent("e.json"), atomically: true, encoding: .utf8)
        func request(_ who: String, _ reason: String) -> String {
            """
            {"principal": {"type": "A", "id": "\(who)"}, "action": {"type": "Action", "id": "x"},
             "resource": {"type": "R", "id": "r"}, "context": {}, "decision": "allow", "reason": ["\(reason)"], "errors": []}
            """
        }
        let requests = [request("admin", "admins-may"), request("admin", "policy0"), request("b", "policy1")]
        try requests.map { $0.replacingOccurrences(of: "\n", with: " ") }.joined(separator: "\n").write(
            to: dir.appendingPathComponent("r.jsonl"), atomically: true, encoding: .utf8)
        let (status, out) = try TestSupport.run(
            warden,
            [
                "policy", "authorize", "--policies", dir.path + "/p.cedar", "--entities", dir.path + "/e.json",
                "--requests", dir.path + "/r.jsonl",
            ])
        #expect(status == 0)
        let lines = try out.split(separator: "\n").map { try JSONValue.parse(String($0)) }
        #expect(
            lines.map { $0["reasons"] } == [
                .array([.string("admins-may")]), .array([.string("admins-may")]), .array([.string("policy1")]),
            ])
        try "{\"policies\": \"p.cedar\", \"entities\": \"e.json\", \"requests\": [\(requests.joined(separator: ","))]}"
            .write(
                to: dir.appendingPathComponent("t.json"), atomically: true, encoding: .utf8)
        let (s2, test) = try TestSupport.run(warden, ["policy", "test", "--root", dir.path, dir.path + "/t.json"])
        #expect(s2 == 0, "\(test)")
        #expect(test.split(separator: "\n").last == "3 passed, 0 failed")
        // A wrong expectation names the policy both ways.
        try "{\"policies\": \"p.cedar\", \"entities\": \"e.json\", \"requests\": [\(request("admin", "policy1"))]}"
            .write(
                to: dir.appendingPathComponent("w.json"), atomically: true, encoding: .utf8)
        let (s3, wrong) = try TestSupport.run(warden, ["policy", "test", "--root", dir.path, dir.path + "/w.json"])
        #expect(s3 != 0 && wrong.contains("reasons [\"policy0 (@id admins-may)\"], expected [\"policy1\"]"), "\(wrong)")
    }

    @Test("policy authorize prints one JSON decision per request; export and import round-trip")
    func authorizeAndFormats() throws {
        guard let warden = Self.binaryOrSkip() else { return }
        let agents = Self.examples.appendingPathComponent("agents").path
        let (status, out) = try TestSupport.run(
            warden,
            [
                "policy", "authorize", "--policies", agents + "/policies.cedar", "--entities",
                agents + "/entities.json",
                "--requests", agents + "/requests.jsonl",
            ])
        #expect(status == 0)
        let lines = try out.split(separator: "\n").map { try JSONValue.parse(String($0)) }
        #expect(lines.count == 9)
        #expect(lines.first?["decision"] == .string("allow"))
        #expect(lines.first?["reasons"] == .array([.string("support-tickets")]))  // its @id
        #expect(lines.last?["errors"] == .array([.string("finance-billing")]))

        let dir = try TestSupport.temporaryDirectory("formats")
        defer { try? FileManager.default.removeItem(at: dir) }
        let (s1, json) = try TestSupport.run(warden, ["policy", "export", agents + "/policies.cedar"])
        #expect(s1 == 0)
        try json.write(to: dir.appendingPathComponent("p.json"), atomically: true, encoding: .utf8)
        let (s2, text) = try TestSupport.run(warden, ["policy", "import", dir.appendingPathComponent("p.json").path])
        #expect(s2 == 0)
        let original = try PolicySet(text: String(contentsOfFile: agents + "/policies.cedar", encoding: .utf8))
        #expect(PolicyJSON.encode(try PolicySet(text: text)) == PolicyJSON.encode(original))
    }
}
