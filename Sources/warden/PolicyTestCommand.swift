import ArgumentParser
import Foundation
import WardenCore

struct PolicyTestCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "test",
        abstract: "Run Cedar integration-test files and compare decisions, reasons and errors.",
        discussion: "Ends with the line 'N passed, M failed' (requests). Exits non-zero on any failure."
    )

    @Option(name: .long, help: "Directory that the paths inside the test files are relative to (default: current).")
    var root: String?

    @Flag(name: .long, help: "Print only the summary line, not each mismatch.")
    var quiet = false

    @Argument(help: "Test files (JSON).")
    var files: [String]

    func run() throws {
        let rootURL = URL(fileURLWithPath: root ?? FileManager.default.currentDirectoryPath)
        var runner = PolicyTestRunner(root: rootURL)
        for file in files {
            let failures = runner.run(file: file)
            if !quiet {
                for f in failures { print("FAIL \(f)") }
            }
        }
        print("\(runner.passed) passed, \(runner.failed) failed")
        if runner.failed > 0 { throw ExitCode(1) }
    }
}
