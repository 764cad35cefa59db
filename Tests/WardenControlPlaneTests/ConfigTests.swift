import Testing
import WardenCore
import WardenGateway
import WardenRisk
import WardenTestSupport

@testable import WardenControlPlane
@testable import WardenServer

@Suite("warden.yaml")
struct ConfigTests {
    @Test("the documented example parses; derived URLs drop trailing slashes")
    func example() throws {
        let c = try WardenConfig(
            parsing: """
                trust_domain: example.org
                listen: 127.0.0.1:9443
                public_url: https://warden.example.org/
                tokens: {access_ttl: 2m, svid_ttl: 1h, join_token_ttl: 5m, signing_key_rotation: 12h, max_delegation_depth: 2}
                dpop: {require_nonce: true, max_age: 30s, clock_skew: 10s}
                tls: {listen: 127.0.0.1:9444}
                """, file: "w.yaml")
        #expect(c.trustDomain == "example.org")
        #expect(c.issuer == "https://warden.example.org")
        #expect(c.accessTTL == 120 && c.joinTokenTTL == 300 && c.signingKeyRotation == 43_200)
        #expect(c.dpopRequireNonce && c.dpopMaxAge == 30 && c.clockSkew == 10)
        #expect(c.tlsBase == "https://127.0.0.1:9444")
    }

    @Test("routes, policies, rate limits and limits parse; a file without routes has none, no file has the demo's")
    func gateway() throws {
        let c = try WardenConfig(
            parsing: """
                policies: [./p1, ./p2.cedar]
                rate_limits: {per_agent: 6000/m, burst: 50}
                limits: {max_connections: 100, max_body_bytes: 2048, upstream_timeout: 10s, header_timeout: 5s,
                  idle_timeout: 30s, max_connections_per_source: 16, max_header_bytes: 8192, max_headers: 50,
                  unauthenticated_per_source: {rate: 2/s, burst: 10}, token_per_source: {rate: 600/m}}
                routes:
                  billing:
                    upstream: http://127.0.0.1:9001/api/
                    segment: finance
                    credential: billing-api-key
                    rate_limit: {per_agent: 10/s}
                  search:
                    upstream: https://search.example.com
                    service: search-svc
                    credential: {secret: search-key, header: X-Api-Key}
                    max_body_bytes: 100
                    timeout: 5s
                    max_concurrent: 8
                  kb:
                    upstream: http://127.0.0.1:9100
                    agent: kb-agent
                """, file: "w.yaml")
        #expect(c.policySources == ["./p1", "./p2.cedar"])
        #expect(c.limits.headerTimeout == 5 && c.limits.idleTimeout == 30 && c.limits.maxConnectionsPerSource == 16)
        #expect(c.limits.maxHeaderBytes == 8192 && c.limits.maxHeaders == 50)
        #expect(c.limits.perSource.unauthenticated == RateLimit(perSecond: 2, burst: 10))
        #expect(c.limits.perSource.token == RateLimit(perSecond: 10, burst: 10))
        #expect(c.limits.perSource.enroll == SourceGuard.Limits().enroll)
        #expect(c.rateLimitPerAgent == RateLimit(perSecond: 100, burst: 50))
        let billing = try #require(c.routes["billing"])
        #expect(billing.segment == "finance" && billing.service == "billing")
        #expect(billing.credential == CredentialInjection(secret: "billing-api-key"))
        #expect(billing.credential?.header == "Authorization" && billing.credential?.prefix == "Bearer ")
        #expect(billing.rateLimit == RateLimit(perSecond: 10, burst: 10))
        #expect(billing.maxBodyBytes == 2048 && billing.timeout == 10)
        let search = try #require(c.routes["search"])
        #expect(search.service == "search-svc" && search.credential?.header == "X-Api-Key")
        #expect(search.credential?.prefix == "" && search.maxBodyBytes == 100 && search.maxConcurrent == 8)
        #expect(c.routes["kb"]?.agent == "kb-agent")
        #expect(try WardenConfig(parsing: "listen: 127.0.0.1:1\n", file: "w").routes.isEmpty)
        #expect(WardenConfig().routes.keys.sorted() == ["billing", "tickets"])
        let m = try WardenConfig(
            parsing: """
                mcp_servers:
                  tickets: {url: http://127.0.0.1:9002/mcp, credential: {secret: t-key, header: X-Key}, dlp: block}
                  files:
                    command: [python3, files_server.py]
                    env: {FILES_ROOT: /srv}
                    credential: {secret: f-key, env: FILES_TOKEN}
                    tools: {delete: {risk: high, data_class: pii}, read: {approval: true}}
                    approval_timeout: 2m
                    refresh: 0
                """, file: "w")
        #expect(m.mcpServers["tickets"]?.transport == .http(url: "http://127.0.0.1:9002/mcp"))
        #expect(m.mcpServers["tickets"]?.credential?.header == "X-Key")
        #expect(m.mcpServers["tickets"]?.dlp == .block)
        let files = try #require(m.mcpServers["files"])
        #expect(files.transport == .stdio(command: ["python3", "files_server.py"], cwd: nil))
        #expect(files.env == ["FILES_ROOT": "/srv"])
        #expect(files.credential?.env == "FILES_TOKEN")
        #expect(files.tool("delete").needsApproval && files.tool("delete").dataClass == "pii")
        #expect(files.tool("read").needsApproval && !files.tool("other").needsApproval)
        #expect(files.approvalTimeout == 120 && files.refresh == 0)
        var bad = WardenConfig()
        bad.routes["tickets"]?.credential?.header = "Host"
        #expect(throws: WardenError.self) { try bad.validate() }
    }

    @Test("risk: playbooks by severity and by detector, warm-up, recovery")
    func risk() throws {
        let c = try WardenConfig(
            parsing: """
                risk:
                  playbooks: {medium: [alert], stolen_token: [alert, revoke, quarantine], new_resource: [throttle]}
                  warmup_events: 50
                  warmup: 2m
                  spike_min_minutes: 3
                  recovery_per_hour: 10
                  penalties: {high: 50, stolen_token: 0}
                """, file: "w.yaml")
        #expect(c.risk.playbooks.medium == [.alert])
        #expect(c.risk.playbooks.high == [.alert, .quarantine, .revoke])
        #expect(c.risk.playbooks.byDetector["stolen_token"] == [.alert, .revoke, .quarantine])
        #expect(c.risk.playbooks.byDetector["new_resource"] == [.throttle])
        #expect(c.risk.settings.warmupEvents == 50 && c.risk.settings.warmupSeconds == 120)
        #expect(c.risk.settings.spikeGateMinutes == 3 && WardenConfig().risk.settings.spikeGateMinutes == 10)
        // Unset, the volume spike's gate follows the warm-up (its minutes, 1 to 10).
        let short = try WardenConfig(parsing: "risk: {warmup: 60s, spike_window: 30s}", file: "w.yaml")
        #expect(short.risk.settings.spikeGateMinutes == 1 && short.risk.settings.spikeWindow == 30)
        for bad in ["risk: {spike_min_minutes: 10081}", "risk: {spike_window: 5s}", "risk: {spike_window: 2h}"] {
            #expect(throws: WardenError.self) { try WardenConfig(parsing: bad, file: "w.yaml") }
        }
        #expect(c.risk.trust.recoveryPerHour == 10)
        #expect(c.risk.trust.penalty[.high] == 50 && c.risk.trust.byDetector["stolen_token"] == 0)
        #expect(WardenConfig().risk.playbooks.byDetector["stolen_token"] == [.alert, .revoke])
    }

    @Test("risk: thresholds and playbooks per role and per agent, over the global ones whatever the key order")
    func riskOverrides() throws {
        let c = try WardenConfig(
            parsing: """
                risk:
                  roles:
                    batch: {spike_factor: 80, playbooks: {high: [alert, throttle]}}
                  agents:
                    report-bot: {spike_window: 5m, probe_high: 40}
                  spike_factor: 30
                  chain_window: 20s
                  playbooks: {medium: [alert]}
                """, file: "w.yaml")
        let batch = try #require(c.risk.roles["batch"])
        #expect(batch.settings.spikeFactor == 80 && batch.settings.chainWindow == 20)
        #expect(batch.playbooks.high == [.alert, .throttle] && batch.playbooks.medium == [.alert])
        let bot = try #require(c.risk.agents["report-bot"])
        #expect(bot.settings.spikeWindow == 300 && bot.settings.probeHigh == 40 && bot.settings.spikeFactor == 30)
        #expect(c.risk.settings.spikeFactor == 30 && c.risk.playbooks.high == [.alert, .quarantine, .revoke])
        let t = c.risk.tunings
        let id = "spiffe://example.org/agent/report-bot"
        #expect(t.tuning(agentID: id, roles: ["batch"]).settings.spikeWindow == 300)  // the agent's own first
        #expect(
            t.tuning(agentID: "spiffe://example.org/agent/other", roles: ["x", "batch"]).settings.spikeFactor == 80)
        #expect(t.tuning(agentID: "source:10.0.0.1", roles: []).settings.spikeFactor == 30)
        #expect(t.origin(agentID: "spiffe://example.org/agent/other", roles: ["batch"]) == "role batch")
        for bad in [
            "risk: {roles: {batch: {volume: 3}}}", "risk: {agents: {'bad name': {spike_factor: 2}}}",
            "risk: {roles: {batch: {spike_factor: 0.5}}}", "risk: {roles: [batch]}",
            "risk: {agents: {a: {probe_medium: 30}}}", "risk: {roles: {r: {playbooks: {high: [explode]}}}}",
        ] {
            #expect(throws: WardenError.self, "\(bad)") { try WardenConfig(parsing: bad, file: "w.yaml") }
        }
    }

    @Test("bad values name the file, line and key")
    func errors() {
        let cases: [(String, String)] = [
            ("public_url: https://\n", "w.yaml:1:1: public_url"),
            ("public_url: ftp://x\n", "public_url"),
            ("public_url: http://h/?q\n", "public_url"),
            ("tls: {public_url: http://x}\n", "tls.public_url"),
            ("tokens: {access_ttl: 301s}\n", "tokens.access_ttl: must be at most 300"),
            ("listen: nowhere\n", "w.yaml:1:1: listen"),
            ("mcp_servers: {a: {}}\n", "mcp_servers.a: needs exactly one of url"),
            ("mcp_servers: {a: {url: http://h, command: [x]}}\n", "needs exactly one of url"),
            ("mcp_servers: {a: {url: ftp://h}}\n", "mcp_servers.a.url"),
            ("mcp_servers: {a.b: {url: http://h}}\n", "a server name"),
            ("mcp_servers: {a: {url: http://h, tools: {t: {risk: extreme}}}}\n", "mcp_servers.a.tools.t.risk"),
            ("mcp_servers: {a: {url: http://h, dlp: maybe}}\n", "mcp_servers.a.dlp"),
            ("mcp_servers: {a: {command: [x], credential: k}}\n", "a stdio server gets its credential in a variable"),
            ("mcp_servers: {a: {url: http://h, env: {K: v}}}\n", "env and cwd are for stdio servers"),
            ("mcp_servers: {a: {command: [x], env: {'1X': v}}}\n", "environment variable name"),
            ("mcp_servers: {a: {url: http://h, bogus: 1}}\n", "mcp_servers.a.bogus: unknown key"),
            ("routes: {a: {upstream: ftp://x}}\n", "routes.a.upstream"),
            ("routes: {a: {upstream: http://h, bogus: 1}}\n", "routes.a.bogus: unknown key"),
            ("routes: {a: {segment: s}}\n", "routes.a: needs upstream"),
            ("routes: {'a/b': {upstream: http://h}}\n", "a route name"),
            ("routes: {a: {upstream: http://h, rate_limit: {per_agent: lots}}}\n", "rate_limit.per_agent"),
            ("routes: {a: {upstream: http://h, credential: {header: X-Key}}}\n", "needs secret"),
            ("routes: {a: {upstream: 'http://u:p@h'}}\n", "routes.a.upstream"),
            ("rate_limits: {per_agent: 10/fortnight}\n", "rate_limits.per_agent"),
            ("limits: {max_connections: 0}\n", "limits.max_connections"),
            ("limits: {header_timeout: forever}\n", "limits.header_timeout"),
            ("limits: {max_headers: 2}\n", "limits.max_headers"),
            ("limits: {token_per_source: {rate: lots}}\n", "limits.token_per_source.rate"),
            ("policies: 7\n", "policies"),
            ("trust_domain: Upper.Case\n", "trust_domain"),
            ("bogus: 1\n", "unknown key"),
            (
                "risk: {playbooks: {extreme: [alert]}}\n",
                "risk.playbooks.extreme: must be low, medium, high or a detector"
            ),
            ("risk: {playbooks: {high: [nuke]}}\n", "risk.playbooks.high: actions are"),
            ("risk: {warmup: soon}\n", "risk.warmup"),
            ("risk: {penalties: {high: 101}}\n", "risk.penalties.high: must be 0 to 100"),
            ("risk: {penalties: {nobody: 1}}\n", "risk.penalties.nobody"),
            ("risk: {bogus: 1}\n", "risk.bogus: unknown key"),
        ]
        for (text, expected) in cases {
            do {
                _ = try WardenConfig(parsing: text, file: "w.yaml")
                Issue.record("accepted: \(text)")
            } catch {
                #expect(error.code == .invalidConfig)
                #expect(error.message.contains(expected), "\(error.message)")
            }
        }
    }
}
