import ArgumentParser

@main
struct Warden: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "warden",
        abstract: "Warden: a zero-trust control plane and policy-enforcing gateway for AI agents.",
        subcommands: [PolicyCommand.self]
    )
}

struct PolicyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "policy",
        abstract: "Test and evaluate Cedar policies.",
        subcommands: [
            PolicyTestCommand.self, PolicyAuthorizeCommand.self, PolicyExportCommand.self, PolicyImportCommand.self,
        ]
    )
}
