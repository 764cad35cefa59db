import Foundation
import Testing

/// The enforcement gateway driven by clients others wrote (`Tests/Interop/gateway_interop.py`): against a live
/// `warden serve --config` with two routes to an upstream recorder in Python, joserfc makes the agents' keys, DPoP
/// proofs and client assertions, requests and curl make the calls; the script checks what the agent gets back and
/// what the upstream receives (the brokered credential, never the agent's token or proof; the forwarding headers),
/// the scope and Cedar refusals with their reason codes, stolen tokens, replayed proofs, missing credentials, a live
/// policy reload, quarantine, the audit entries and `/metrics`. `--selftest` checks the script's own pieces and needs
/// no package.
@Suite("Gateway interop: joserfc, requests and curl through /r/<route> to a recording upstream")
struct GatewayInteropTests {
    static let script = IdentityInteropTests.root.appendingPathComponent("Tests/Interop/gateway_interop.py").path

    /// Runs the script with `arguments`: its exit status and standard output.
    static func runScript(_ python: String, _ arguments: [String]) throws -> (Int32, String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: python)
        p.arguments = [script] + arguments
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    /// Records every "FAIL ..." line as an issue and expects a clean summary.
    static func expectAllPassed(_ status: Int32, _ text: String) {
        let failures = text.split(separator: "\n").filter { $0.hasPrefix("FAIL") }
        for f in failures { Issue.record("\(f)") }
        #expect(status == 0, "\(text.suffix(2000))")
        #expect(text.contains(" passed, 0 failed"))
    }

    @Test("forwarding, brokered credential, scope and policy refusals, stolen token, replay, quarantine, metrics")
    func liveServer() throws {
        guard let python = IdentityInteropTests.python, IdentityInteropTests.hasPackages(python) else {
            print("skipped: no Python with joserfc, pyjwt, cryptography and requests (bash .ci/run installs them)")
            return
        }
        let binary = IdentityInteropTests.binary
        guard FileManager.default.isExecutableFile(atPath: binary) else {
            print("skipped: \(binary) is not built (swift build --build-tests builds it)")
            return
        }
        let name = "warden-gateway-interop-\(UUID().uuidString)"
        let work = FileManager.default.temporaryDirectory.appendingPathComponent(name)
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: work) }
        let (status, text) = try Self.runScript(python, [binary, work.path])
        Self.expectAllPassed(status, text)
    }

    @Test("self-test: the recording upstream, the metrics parser, htu and the RFC 9449 ath example")
    func selfTest() throws {
        guard let python = AuditInteropTests.anyPython else {
            print("skipped: no python3 (set WARDEN_PYTHON)")
            return
        }
        let (status, text) = try Self.runScript(python, ["--selftest"])
        Self.expectAllPassed(status, text)
    }
}
