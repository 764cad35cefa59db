import ArgumentParser

@main
struct Warden: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "warden",
        abstract: "Warden: a zero-trust control plane and policy-enforcing gateway for AI agents.",
        subcommands: [
            ServeCommand.self, AgentCommand.self, TokenCommand.self, KeysCommand.self, PolicyCommand.self,
            AuditCommand.self, SecretCommand.self, MCPCommand.self, ApprovalsCommand.self, SimulateCommand.self,
            NodeCommand.self, PostureCommand.self,
        ]
    )
}

struct PolicyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "policy",
        abstract: "Test and evaluate Cedar policies; reload a server's policy set.",
        subcommands: [
            PolicyTestCommand.self, PolicyAuthorizeCommand.self, PolicyExportCommand.self, PolicyImportCommand.self,
            PolicyReload.self, PolicyWhoCan.self, PolicyExplain.self, PolicyUnused.self,
            PolicyDiff.self, PolicyValidateCommand.self, PolicySchemaCommand.self,
            PolicyFmtCommand.self,
        ]
    )
}
