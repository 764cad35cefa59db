import Cedar
import Testing
import WardenCore

@Suite("Agent manifests and lifecycle")
struct ManifestTests {
    let yaml = """
        name: support-bot                 # becomes spiffe://<trust-domain>/agent/support-bot
        owner: team-support@example.com
        roles: [support]
        team: customer-care
        model: {provider: example, name: some-model, digest: "sha256:\(String(repeating: "a", count: 64))"}
        config_digest: "sha256:\(String(repeating: "b", count: 64))"
        binary_sha256: \(String(repeating: "1", count: 64))
        tools: [tickets/search, tickets/read]
        peers: [kb-agent]
        routes: [tickets]
        environment: prod
        """

    @Test("the design's example parses, and YAML and JSON spellings have one canonical form")
    func example() throws {
        let m = try AgentManifest(parsing: yaml, file: "bot.yaml")
        #expect(m.name == "support-bot")
        #expect(m.roles == ["support"])
        #expect(m.binarySHA256 == String(repeating: "1", count: 64))
        #expect(m.tools == ["tickets/search", "tickets/read"])
        let fromJSON = try AgentManifest(parsing: m.canonicalJSON, file: "bot.json")
        #expect(fromJSON == m)
        #expect(fromJSON.canonicalJSON == m.canonicalJSON)
    }

    @Test("node-attested agents: node and selectors, validated, in the canonical form")
    func nodeSelectors() throws {
        let hash = String(repeating: "c", count: 64)
        let m = try AgentManifest(
            parsing: """
                name: py-bot
                owner: ops@example.com
                node: node-a
                selectors: ["unix:uid:1000", "unix:sha256:\(hash)", "unix:path:/usr/bin/python3"]
                """, file: "bot.yaml")
        #expect(m.node == "node-a")
        #expect(m.selectors == ["unix:uid:1000", "unix:sha256:\(hash)", "unix:path:/usr/bin/python3"])
        #expect(m.canonicalJSON.contains("\"node\":\"node-a\""))
        #expect(try AgentManifest(parsing: m.canonicalJSON, file: "bot.json") == m)
        let refused: [(String, String)] = [
            ("node: node-a", "node and selectors go together"),
            ("selectors: [\"unix:uid:1\"]", "node and selectors go together"),
            ("node: node-a\nselectors: [\"unix:uid:-1\"]", "decimal number"),
            ("node: node-a\nselectors: [\"unix:uid:01\"]", "decimal number"),
            ("node: node-a\nselectors: [\"unix:sha256:ABC\"]", "64 lowercase hex"),
            ("node: node-a\nselectors: [\"unix:path:relative\"]", "absolute path"),
            ("node: node-a\nselectors: [\"k8s:ns:default\"]", "a selector is"),
            ("node: node-a\nselectors: [\"unix:pid:1\"]", "unknown selector type"),
            ("node: a/b\nselectors: [\"unix:uid:1\"]", "one SPIFFE path segment"),
            ("node: bot\nselectors: [\"unix:uid:1\"]", "its own node"),
            ("node: node-a\nselectors: [\"unix:sha256:\(hash)\"]", "needs a unix:uid selector"),
        ]
        for (extra, message) in refused {
            #expect {
                try AgentManifest(parsing: "name: bot\nowner: o\n" + extra, file: "bot.yaml")
            } throws: { e in
                (e as? WardenError)?.message.contains(message) == true
            }
        }
    }

    @Test("errors name the file, line and key")
    func errors() throws {
        let cases: [(String, String)] = [
            ("name: a\nowner: b\nrolez: [x]\n", "bot.yaml:3:1: rolez: unknown key"),
            ("owner: b\n", "needs a name"),
            ("name: a\n", "needs an owner"),
            ("name: a/b\nowner: b\n", "name: must be one SPIFFE path segment"),
            ("name: ..\nowner: b\n", "name: must be one SPIFFE path segment"),
            ("name: a\nowner: b\nconfig_digest: md5:abc\n", "config_digest: must be sha256:"),
            ("name: a\nowner: b\ntools: [nodivider]\n", "tools[0]: a tool is named <server>/<tool>"),
            ("name: a\nowner: b\nroles: [x, x]\n", "listed twice"),
            ("name: a\nowner: b\nname: c\n", "duplicated key"),
            (
                "a: &a [x,x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
                    + "d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]\n",
                "too many YAML nodes"
            ),
            ("name: [unterminated\n", "not valid YAML"),
            ("- a\n- b\n", "a mapping"),
        ]
        for (text, expected) in cases {
            do {
                _ = try AgentManifest(parsing: text, file: "bot.yaml")
                Issue.record("accepted: \(text)")
            } catch {
                #expect(error.code == .invalidManifest)
                #expect(error.message.contains(expected), "\(error.message)")
            }
        }
        // Oversized.
        #expect(throws: WardenError(.invalidManifest, "")) {
            try AgentManifest(parsing: "name: a\nowner: " + String(repeating: "x", count: 70_000), file: "big.yaml")
        }
    }

    @Test("lifecycle rules")
    func lifecycle() {
        #expect(AgentState.pending.canMove(to: .active))
        #expect(AgentState.active.canMove(to: .quarantined))
        #expect(AgentState.quarantined.canMove(to: .active))
        #expect(AgentState.quarantined.canMove(to: .revoked))
        #expect(!AgentState.pending.canMove(to: .quarantined))
        #expect(!AgentState.revoked.canMove(to: .active))
        #expect(!AgentState.decommissioned.canMove(to: .active))
        for s in AgentState.allCases { #expect(!s.canMove(to: s)) }
    }
}
