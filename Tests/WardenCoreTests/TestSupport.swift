import Foundation

/// Paths and helpers shared by the tests.
enum TestSupport {
    /// The package root (this file is `Tests/WardenCoreTests/TestSupport.swift`).
    static let packageRoot: URL = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()

    /// `../shared/cedar-corpus`, when present.
    static var corpusDirectory: URL? {
        let url = packageRoot.deletingLastPathComponent().appendingPathComponent("shared/cedar-corpus")
        return FileManager.default.fileExists(atPath: url.path) ? url : nil
    }

    /// A Python interpreter with cedarpy: `$WARDEN_PYTHON`, else the project's `.venv` (made by `.ci/run`).
    static var python: String? {
        if let p = ProcessInfo.processInfo.environment["WARDEN_PYTHON"], FileManager.default.isExecutableFile(atPath: p)
        {
            return p
        }
        let venv = packageRoot.appendingPathComponent(".venv/bin/python").path
        return FileManager.default.isExecutableFile(atPath: venv) ? venv : nil
    }

    /// A fresh temporary directory.
    static func temporaryDirectory(_ name: String) throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("warden-\(name)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    /// Runs a program; returns its exit status and standard output. Standard error goes to ours.
    @discardableResult
    static func run(_ executable: String, _ arguments: [String], in directory: URL? = nil) throws -> (Int32, String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: executable)
        p.arguments = arguments
        if let directory { p.currentDirectoryURL = directory }
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    /// An integer from the environment (to scale property and differential tests), or `default`.
    static func scale(_ name: String, default value: Int) -> Int {
        ProcessInfo.processInfo.environment[name].flatMap(Int.init) ?? value
    }
}
