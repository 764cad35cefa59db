import ArgumentParser
import Cedar
import Foundation
import WardenControlPlane
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

struct PolicyValidateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "validate",
        abstract: "Validate policies against a Cedar schema (the reference engine's strict validator).",
        discussion: """
            Type-checks every policy in every request environment the schema allows (each action with each \
            principal and resource type it applies to): unknown entity types, actions and enumerated ids, scopes \
            that apply to no action, type errors, attributes and tags accessed without a guarding `has` or \
            `hasTag`, extension constructors with bad or non-literal arguments, empty set literals. The schema is \
            human-readable (.cedarschema) or JSON (.json). Prints every error as FILE:LINE:COLUMN: POLICY: message \
            (the policy named by its @id when it has one). Exit status: 0 valid, 1 invalid, 2 unreadable input.
            """)

    @Option(name: .long, help: "The schema (.cedarschema or .json); Warden's own entity model without it.")
    var schema: String?
    @Argument(help: "Policy files, or directories of .cedar files.") var policies: [String]

    func run() throws {
        let validator: Validator
        var sets: [(file: String, set: PolicySet)] = []
        do {
            if let schema {
                let text = try readText(schema)
                validator = Validator(
                    schema: schema.hasSuffix(".json")
                        ? try Schema(jsonText: text) : try Schema(text: text, file: schema))
            } else {
                validator = Validator(schema: WardenSchema.schema)
            }
            for file in try PolicyEngine.files(policies) {
                do {
                    sets.append((file, try PolicySet(text: try readText(file))))
                } catch let e as CedarError {
                    throw CLIError("\(file): \(e)")
                }
            }
        } catch let e as CedarError {
            let name = schema ?? "schema"
            FileHandle.standardError.write(
                Data("warden: \(e.location.map { "\(name):\($0)" } ?? name): \(e.message)\n".utf8))
            throw ExitCode(2)
        } catch let e as WardenError {
            FileHandle.standardError.write(Data("warden: \(e.message)\n".utf8))
            throw ExitCode(2)
        } catch {
            FileHandle.standardError.write(Data("warden: \(error)\n".utf8))
            throw ExitCode(2)
        }
        var count = 0
        var policiesChecked = 0
        for (file, set) in sets {
            let names = PolicyTestRunner.names(set)
            policiesChecked += set.policies.count
            for issue in validator.validate(set) {
                count += 1
                let at = issue.location.map { "\(file):\($0.line):\($0.column)" } ?? file
                print("\(at): \(names[issue.policyID].map { "@id(\"\($0)\")" } ?? issue.policyID): \(issue.message)")
            }
        }
        print("\(policiesChecked) policies, \(count) errors")
        if count > 0 { throw ExitCode(1) }
    }
}

struct PolicySchemaCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "schema",
        abstract: "Print Warden's entity model as a Cedar schema (what the server validates its policies against).",
        discussion: """
            The entity types and attributes the gateway builds (Agent, Role, Team, Service, Segment, Tool, \
            ToolServer, Resource, Prompt) and each action's context. A tool call's context.arguments is any JSON \
            object, which a Cedar schema cannot describe: Warden's validator types it as any value. Use it with other \
            Cedar tools, or with 'warden policy validate --schema'.
            """)

    func run() throws { print(WardenSchema.text) }
}
