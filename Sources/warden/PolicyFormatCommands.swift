import ArgumentParser
import Cedar
import Foundation

struct PolicyExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract:
            "Print a Cedar policy file in the Cedar policy JSON format (staticPolicies, templates, templateLinks)."
    )

    @Argument(help: "Cedar policy file.")
    var file: String

    func run() throws {
        do {
            let set = try PolicySet(text: try readText(file))
            print(PolicyJSON.encode(set).serialized)
        } catch let e as CedarError {
            throw CLIError("\(file): \(e)")
        }
    }
}

struct PolicyImportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import",
        abstract: "Print a policy set given in the Cedar policy JSON format as Cedar text."
    )

    @Argument(help: "Policy JSON file.")
    var file: String

    func run() throws {
        do {
            let set = try PolicyJSON.decodePolicySet(JSONValue.parse(try readText(file)))
            print(CedarPrinter.text(set), terminator: "")
        } catch let e as CedarError {
            throw CLIError("\(file): \(e)")
        }
    }
}

struct PolicyFmtCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fmt",
        abstract: "Format policy files: the canonical form of each policy, every comment kept.",
        discussion: """
            Prints the formatted text to stdout, or with --write replaces each file (atomically). --check prints \
            the files that are not formatted and exits 1 if any. Comments between policies stay above the policy \
            that follows them; a policy with a comment inside it is kept as written. Formatting twice changes \
            nothing.
            """)

    @Flag(name: .long, help: "Write the result back to each file.") var write = false
    @Flag(name: .long, help: "Only report the files that would change (exit 1 if any).") var check = false
    @Argument(help: "Policy files (.cedar).") var files: [String]

    func run() throws {
        var unformatted = 0
        for file in files {
            let text = try readText(file)
            let result: Result<String, CedarError> = Result { () throws(CedarError) in try CedarFormatter.format(text) }
            guard case .success(let formatted) = result else {
                if case .failure(let e) = result { throw CLIError("\(file): \(e)") }
                return
            }
            if check {
                if formatted != text {
                    unformatted += 1
                    print(file)
                }
            } else if write {
                if formatted != text { try formatted.write(toFile: file, atomically: true, encoding: .utf8) }
            } else {
                print(formatted, terminator: "")
            }
        }
        if check && unformatted > 0 { throw ExitCode(1) }
    }
}
