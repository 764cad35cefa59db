import Foundation
import Testing
import WardenClient

/// Runs the built `warden` binary.
package enum WardenCLI {
    /// The built `warden` binary (``PythonInterop/binary``), or nil with the reason printed when there is none (the
    /// test then skips).
    package static func builtBinary() -> String? {
        let binary = PythonInterop.binary
        guard FileManager.default.isExecutableFile(atPath: binary) else {
            print("skipped: no warden binary at \(binary) (swift build first)")
            return nil
        }
        return binary
    }

    /// A new, empty directory under the temporary directory, named `prefix-<uuid>`; the caller removes it.
    package static func scratchDirectory(_ prefix: String) throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }

    /// Runs `binary` with `arguments` (standard input empty, `WARDEN_ADMIN_TOKEN` unset); its exit status, standard
    /// output and standard error (both through temporary files, so that neither can fill a pipe and block the child).
    package static func run(_ binary: String, _ arguments: [String], in directory: URL? = nil) throws -> (
        Int32, String, String
    ) {
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("warden-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: scratch) }
        let outURL = scratch.appendingPathComponent("stdout")
        let errURL = scratch.appendingPathComponent("stderr")
        _ = FileManager.default.createFile(atPath: outURL.path, contents: nil)
        _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)
        let out = try FileHandle(forWritingTo: outURL)
        let err = try FileHandle(forWritingTo: errURL)
        defer {
            try? out.close()
            try? err.close()
        }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: binary)
        p.arguments = arguments
        if let directory { p.currentDirectoryURL = directory }
        var environment = ProcessInfo.processInfo.environment
        environment.removeValue(forKey: "WARDEN_ADMIN_TOKEN")
        p.environment = environment
        p.standardOutput = out
        p.standardError = err
        p.standardInput = FileHandle.nullDevice
        try p.run()
        p.waitUntilExit()
        return (
            p.terminationStatus, try String(contentsOf: outURL, encoding: .utf8),
            try String(contentsOf: errURL, encoding: .utf8)
        )
    }
}
