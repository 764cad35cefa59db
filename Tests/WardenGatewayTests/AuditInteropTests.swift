import Foundation
import Testing

/// An independent auditor of the tamper-evident audit log, written in Python from `docs/audit.md` and the RFCs
/// (`Tests/Interop/audit_interop.py`): against a live `warden serve` it verifies the signed checkpoints with joserfc
/// and pyjwt, recomputes leaf hashes, RFC 9162 tree heads and the hash chain from the export, checks inclusion and
/// consistency proofs, the OCSF export and the events API; then it runs `warden audit verify` on the stopped
/// server's data and on copies tampered with plain SQL, each of which must be detected and located. `--selftest`
/// checks the script's own hashing and proof code against the RFC 6962 test vectors and needs no package.
@Suite("Audit log interop: an external auditor in Python against a live server and its data")
struct AuditInteropTests {
    static let script = IdentityInteropTests.root.appendingPathComponent("Tests/Interop/audit_interop.py").path

    /// Any Python 3 (the self-test imports nothing beyond the standard library): the interop one, else `python3` on
    /// the PATH.
    static var anyPython: String? {
        if let python = IdentityInteropTests.python { return python }
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin"
        for dir in path.split(separator: ":") {
            let candidate = "\(dir)/python3"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }

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

    @Test("checkpoints, JWS, export, RFC 9162 proofs, OCSF, events, audit verify and tampering")
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
        let name = "warden-audit-interop-\(UUID().uuidString)"
        let work = FileManager.default.temporaryDirectory.appendingPathComponent(name)
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: work) }
        let (status, text) = try Self.runScript(python, [binary, work.path])
        Self.expectAllPassed(status, text)
    }

    @Test("self-test: RFC 6962 vectors, generated and corrupted proofs, tamper procedures")
    func selfTest() throws {
        guard let python = Self.anyPython else {
            print("skipped: no python3 (set WARDEN_PYTHON)")
            return
        }
        let (status, text) = try Self.runScript(python, ["--selftest"])
        Self.expectAllPassed(status, text)
    }
}
