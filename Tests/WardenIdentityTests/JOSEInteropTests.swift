import Cedar
import Crypto
import Foundation
import Testing
import WardenCore
import WardenIdentity

/// Interop with joserfc, a JOSE implementation others wrote: its DPoP proofs pass our verifier (and its thumbprint is
/// ours), and its verifier accepts our ES256 signatures. Needs `.venv` with joserfc (`.ci/run` installs it).
@Suite("JOSE interop with joserfc")
struct JOSEInteropTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    static var python: String? {
        if let p = ProcessInfo.processInfo.environment["WARDEN_PYTHON"] { return p }
        let venv = root.appendingPathComponent(".venv/bin/python").path
        return FileManager.default.isExecutableFile(atPath: venv) ? venv : nil
    }

    static func helper(_ args: [String]) throws -> JSONValue? {
        guard let python else { return nil }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: python)
        p.arguments = [root.appendingPathComponent("Tests/Interop/jose_interop.py").path] + args
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else { return nil }
        return try JSONValue.parse(String(decoding: data, as: UTF8.self))
    }

    @Test("a DPoP proof made by joserfc verifies, with the same thumbprint")
    func joserfcProof() throws {
        let now = Int64(Date().timeIntervalSince1970)
        let token = "header.payload.signature"
        guard let result = try Self.helper(["proof", "POST", "https://127.0.0.1:8443/v1/token", String(now), token])
        else {
            print("skipping: no Python with joserfc (run .ci/run to create .venv)")
            return
        }
        guard case .string(let proof)? = result["proof"], case .string(let thumbprint)? = result["thumbprint"] else {
            Issue.record("unexpected helper output: \(result.serialized)")
            return
        }
        let verifier = DPoPVerifier(clock: ManualClock(seconds: now))
        let verified = try verifier.verify(
            proof: proof, method: "POST", url: "https://127.0.0.1:8443/v1/token", accessToken: token,
            expectedThumbprint: thumbprint)
        #expect(verified.thumbprint == thumbprint)
        #expect(throws: WardenError(.invalidDPoPProof, "")) {
            try verifier.verify(
                proof: proof, method: "POST", url: "https://127.0.0.1:8443/v1/token", accessToken: token)
        }
    }

    @Test("joserfc verifies our ES256 signatures and rejects a tampered one")
    func ourSignatures() throws {
        let key = P256.Signing.PrivateKey()
        let jwk = ECPublicJWK(key.publicKey).json.serialized
        let compact = try CompactJWS.signES256(
            header: .object([("alg", .string("ES256")), ("typ", .string("JWT"))]),
            payload: .object([("sub", .string("spiffe://warden.local/agent/a")), ("exp", .number("2000000000"))]),
            key: key)
        guard let ok = try Self.helper(["verify", compact, jwk]) else {
            print("skipping: no Python with joserfc (run .ci/run to create .venv)")
            return
        }
        #expect(ok["valid"] == .bool(true))
        #expect(ok["claims"]?["sub"] == .string("spiffe://warden.local/agent/a"))
        var parts = compact.split(separator: ".").map(String.init)
        parts[1] = Base64URL.encode(Array(#"{"sub":"spiffe://warden.local/agent/evil","exp":2000000000}"#.utf8))
        let tampered = try Self.helper(["verify", parts.joined(separator: "."), jwk])
        #expect(tampered?["valid"] == .bool(false))
    }
}
