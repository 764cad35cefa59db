import Foundation
import Testing

/// Interop with clients others wrote, against a live `warden serve` on 127.0.0.1: joserfc makes the DPoP proofs and
/// client assertions, pyjwt verifies tokens against the published JWKS, `cryptography` makes the CSR and `openssl`
/// verifies the SVID (`Tests/Interop/identity_interop.py`). Needs the built `warden` binary and a Python with those
/// packages (`.ci/run` installs them into `.venv`).
@Suite("Identity interop with joserfc, pyjwt and openssl against a live server")
struct IdentityInteropTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    static var python: String? {
        if let p = ProcessInfo.processInfo.environment["WARDEN_PYTHON"], FileManager.default.isExecutableFile(atPath: p)
        {
            return p
        }
        let venv = root.appendingPathComponent(".venv/bin/python").path
        return FileManager.default.isExecutableFile(atPath: venv) ? venv : nil
    }

    static var binary: String {
        ProcessInfo.processInfo.environment["WARDEN_BIN"] ?? root.appendingPathComponent(".build/debug/warden").path
    }

    /// Whether the interpreter has the client packages.
    static func hasPackages(_ python: String) -> Bool {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: python)
        p.arguments = ["-c", "import joserfc, jwt, cryptography, requests"]
        p.standardError = FileHandle.nullDevice
        guard (try? p.run()) != nil else { return false }
        p.waitUntilExit()
        return p.terminationStatus == 0
    }

    @Test("enroll, token, whoami, JWKS, SVID, replay, stolen token, revocation, restart")
    func liveServer() throws {
        guard let python = Self.python, Self.hasPackages(python) else {
            print("skipped: no Python with joserfc, pyjwt, cryptography and requests (bash .ci/run installs them)")
            return
        }
        guard FileManager.default.isExecutableFile(atPath: Self.binary) else {
            print("skipped: \(Self.binary) is not built (swift build --build-tests builds it)")
            return
        }
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("warden-interop-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: work) }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: python)
        p.arguments = [
            Self.root.appendingPathComponent("Tests/Interop/identity_interop.py").path, Self.binary, work.path,
        ]
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        let text = String(decoding: data, as: UTF8.self)
        let failures = text.split(separator: "\n").filter { $0.hasPrefix("FAIL") }
        for f in failures { Issue.record("\(f)") }
        #expect(p.terminationStatus == 0, "\(text.suffix(2000))")
        #expect(text.contains(" passed, 0 failed"))
    }
}
