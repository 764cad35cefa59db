import Foundation
import Testing
import WardenTestSupport

/// The Python client library (`clients/python`, package `warden-agent`) under its own pytest suite, against the built
/// `warden` binary: requests and httpx, renewal across expiry, nonce retries, a revoked token renewed, 16 threads and
/// 16 tasks on one agent, the MCP SDK, and the LangChain and OpenAI Agents SDK examples. Skipped with a printed reason
/// when the interpreter lacks the packages (`bash .ci/run` installs them).
@Suite("Python client library (warden-agent) against the built binary")
struct PythonClientTests {
    @Test("pytest clients/python/tests passes")
    func pytestSuite() throws {
        let modules = "warden_agent, pytest, httpx, requests, mcp, langchain_core, agents"
        guard let python = PythonInterop.python, PythonInterop.hasPackages(python, modules) else {
            print("skipped: no Python with \(modules) (bash .ci/run installs them)")
            return
        }
        let binary = PythonInterop.binary
        guard FileManager.default.isExecutableFile(atPath: binary) else {
            print("skipped: \(binary) is not built (swift build --build-tests builds it)")
            return
        }
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("warden-pyclient-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: work) }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: python)
        p.arguments = [
            "-m", "pytest", "-q", "-p", "no:cacheprovider", "--basetemp", work.path,
            PythonInterop.root.appendingPathComponent("clients/python/tests").path,
        ]
        var env = ProcessInfo.processInfo.environment
        env["WARDEN_BIN"] = binary
        p.environment = env
        let out = Pipe()
        p.standardOutput = out
        p.standardError = out
        try p.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        #expect(p.terminationStatus == 0, "\(text.suffix(4000))")
        #expect(
            text.contains(" passed") && !text.contains(" failed") && !text.contains(" error"), "\(text.suffix(2000))")
    }
}
