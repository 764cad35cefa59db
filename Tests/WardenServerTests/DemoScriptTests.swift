import Foundation
import Testing
import WardenTestSupport

/// `bash examples/demo/run.sh`: the one-command demo runs as the README says and ends with its summary.
@Suite("The demo script (examples/demo/run.sh)")
struct DemoScriptTests {
    @Test("runs end to end against the built binary and prints its summary")
    func demo() throws {
        guard let python = PythonInterop.python, PythonInterop.hasPackages(python, "mcp") else {
            print("skipped: no Python with the MCP SDK (bash .ci/run installs it)")
            return
        }
        guard FileManager.default.isExecutableFile(atPath: PythonInterop.binary) else {
            print("skipped: \(PythonInterop.binary) is not built (swift build --build-tests builds it)")
            return
        }
        // Output to a file, not a pipe: the demo's background processes must not keep the test waiting for EOF; and
        // a deadline (timeout(1)) however the script goes.
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("warden-demo-\(UUID().uuidString).log")
        FileManager.default.createFile(atPath: log.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: log) }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/timeout")
        p.arguments = [
            "-k", "10", "180", "/bin/bash", PythonInterop.root.appendingPathComponent("examples/demo/run.sh").path,
        ]
        var env = ProcessInfo.processInfo.environment
        env["WARDEN_BIN"] = PythonInterop.binary
        env["WARDEN_DEMO_PYTHON"] = python
        p.environment = env
        let handle = try FileHandle(forWritingTo: log)
        p.standardOutput = handle
        p.standardError = handle
        p.standardInput = FileHandle.nullDevice
        try p.run()
        p.waitUntilExit()
        try handle.close()
        let text = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
        #expect(p.terminationStatus == 0, "\(text.suffix(3000))")
        #expect(text.contains("demo summary:"), "\(text.suffix(3000))")
        #expect(text.contains("kb/purge: refused (-32003"), "\(text.suffix(3000))")
        #expect(text.contains("HTTP 403"), "\(text.suffix(3000))")
    }
}
