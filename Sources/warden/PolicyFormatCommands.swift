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
