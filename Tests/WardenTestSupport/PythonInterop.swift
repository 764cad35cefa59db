import Foundation
import Testing

/// Runs a Python interop script of `Tests/Interop` the way every interop suite does: live against the built `warden`
/// binary in a fresh working directory, or its `--selftest`; the script prints `ok`/`FAIL` lines and ends with
/// `N passed, M failed`. Skips with a printed reason when Python, its packages or the binary are missing.
package enum PythonInterop {
    package static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    package static func script(_ name: String) -> String { root.appendingPathComponent("Tests/Interop/\(name)").path }

    /// `$WARDEN_PYTHON`, else the project's `.venv` (where `.ci/run` installs the client packages).
    package static var python: String? {
        if let p = ProcessInfo.processInfo.environment["WARDEN_PYTHON"], FileManager.default.isExecutableFile(atPath: p)
        {
            return p
        }
        let venv = root.appendingPathComponent(".venv/bin/python").path
        return FileManager.default.isExecutableFile(atPath: venv) ? venv : nil
    }

    /// `$WARDEN_BIN`, else the debug build.
    package static var binary: String {
        ProcessInfo.processInfo.environment["WARDEN_BIN"] ?? root.appendingPathComponent(".build/debug/warden").path
    }

    /// Whether the interpreter has the client packages (Python module names, comma-separated).
    package static func hasPackages(_ python: String, _ modules: String) -> Bool {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: python)
        p.arguments = ["-c", "import \(modules)"]
        p.standardError = FileHandle.nullDevice
        guard (try? p.run()) != nil else { return false }
        p.waitUntilExit()
        return p.terminationStatus == 0
    }

    /// Any Python 3 (self-tests import nothing beyond the standard library): the interop one, else `python3` on the
    /// PATH.
    package static var anyPython: String? {
        if let python = python { return python }
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin"
        for dir in path.split(separator: ":") {
            let candidate = "\(dir)/python3"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }

    /// Runs `script` with `arguments`: its exit status and standard output.
    package static func run(_ python: String, _ script: String, _ arguments: [String]) throws -> (Int32, String) {
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
    @discardableResult
    package static func expectAllPassed(_ status: Int32, _ text: String) -> Bool {
        let failures = text.split(separator: "\n").filter { $0.hasPrefix("FAIL") }
        for f in failures { Issue.record("\(f)") }
        #expect(status == 0, "\(text.suffix(2000))")
        #expect(text.contains(" passed, 0 failed"))
        return status == 0 && failures.isEmpty && text.contains(" passed, 0 failed")
    }

    /// The script against the built binary in a temporary working directory (removed afterwards).
    /// Returns the script's output, or nil when it was skipped.
    @discardableResult
    package static func live(_ name: String, modules: String = "joserfc, jwt, cryptography, requests") throws -> String?
    {
        guard let python = python, hasPackages(python, modules) else {
            print("skipped: no Python with \(modules) (bash .ci/run installs them)")
            return nil
        }
        let binary = binary
        guard FileManager.default.isExecutableFile(atPath: binary) else {
            print("skipped: \(binary) is not built (swift build --build-tests builds it)")
            return nil
        }
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("warden-interop-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: work) }
        let (status, text) = try run(python, script(name), [binary, work.path])
        expectAllPassed(status, text)
        return text
    }

    /// The script's `--selftest`.
    package static func selfTest(_ name: String) throws {
        guard let python = anyPython else {
            print("skipped: no python3 (set WARDEN_PYTHON)")
            return
        }
        let (status, text) = try run(python, script(name), ["--selftest"])
        expectAllPassed(status, text)
    }
}
