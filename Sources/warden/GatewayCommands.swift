import ArgumentParser
import Cedar
import Foundation
import WardenClient
import WardenControlPlane
import WardenCore
import WardenGateway
import WardenIdentity
import WardenServer

struct SecretCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "secret",
        abstract: "Brokered upstream credentials: stored encrypted, injected by the gateway, never shown.",
        subcommands: [SecretSet.self, SecretList.self, SecretDelete.self]
    )
}

struct SecretSet: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "set",
        abstract: "Store a secret read from standard input (created or replaced).",
        discussion: """
            The value is read from standard input (one trailing newline is dropped), sealed with AES-256-GCM under \
            DIR/secrets.key and stored in the database. Example: printf %s "$KEY" | warden secret set billing-api-key
            """)

    @Argument(help: "The secret's name (letters, digits, '.', '_', '-').") var name: String
    @OptionGroup var admin: AdminOptions

    func run() async throws {
        var value = [UInt8](FileHandle.standardInput.readData(ofLength: SecretStore.maxValueBytes + 3))
        if value.last == UInt8(ascii: "\n") { value.removeLast() }
        if value.last == UInt8(ascii: "\r") { value.removeLast() }
        try await admin.perform(
            remote: { c in
                try await c.call("PUT", "/v1/admin/secrets/\(WardenHTTP.percentEncode(name))", raw: value)
            },
            offline: { cp in
                try cp.secrets.set(name, value: value, now: cp.now())
                guard let info = cp.secrets.list().first(where: { $0.name == name }) else {
                    throw WardenError(.storage, "the secret was not stored")
                }
                return info.json
            })
    }
}

struct SecretList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list", abstract: "Secret names and ages (never values).")

    @Flag(name: .long, help: "Print JSON.") var json = false
    @OptionGroup var admin: AdminOptions

    func run() async throws {
        try await reporting {
            let result: JSONValue
            if let client = try admin.client() {
                result = try await client.call("GET", "/v1/admin/secrets")
            } else {
                let (cp, lock) = try admin.local()
                result = .object([("secrets", .array(cp.secrets.list().map(\.json)))])
                withExtendedLifetime(lock) {}
            }
            if json {
                print(result.serialized)
                return
            }
            let now = Int64(Date().timeIntervalSince1970)
            let items = result["secrets"]?.arrayValue ?? []
            if items.isEmpty { print("no secrets") }
            for s in items {
                let name = s["name"]?.stringValue ?? "?"
                let updated = s["updated_at"]?.integerValue ?? now
                print("\(name)\tupdated \(Self.age(now - updated)) ago")
            }
        }
    }

    static func age(_ s: Int64) -> String {
        switch s {
        case ..<60: "\(max(0, s))s"
        case ..<3600: "\(s / 60)m"
        case ..<86_400: "\(s / 3600)h"
        default: "\(s / 86_400)d"
        }
    }
}

struct SecretDelete: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "delete", abstract: "Delete a secret (routes that use it fail closed).")

    @Argument(help: "The secret's name.") var name: String
    @OptionGroup var admin: AdminOptions

    func run() async throws {
        try await admin.perform(
            remote: { c in try await c.call("DELETE", "/v1/admin/secrets/\(WardenHTTP.percentEncode(name))") },
            offline: { cp in
                try cp.secrets.delete(name)
                return .object([("deleted", .string(name))])
            })
    }
}

struct PolicyReload: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reload",
        abstract: "Reload a running server's policy set (the last good set stays on error).",
        discussion: """
            With --server, asks the server to reload (as SIGHUP does) and prints the new set's digest and ids. \
            Without, loads the configured policy sources and prints what a reload would install, or the error.
            """)

    @OptionGroup var admin: AdminOptions

    func run() async throws {
        try await reporting {
            if let client = try admin.client() {
                print(try await client.call("POST", "/v1/admin/policies/reload").serialized)
            } else {
                let c = try admin.config.load()
                let engine = try PolicyEngine(sources: c.policySources, now: Int64(Date().timeIntervalSince1970))
                print(engine.snapshot.json.serialized)
            }
        }
    }
}

struct PolicyWhoCan: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "who-can",
        abstract: "Which agents can reach a route or call a tool: always, never or conditional, and why.",
        discussion: """
            Asks a running server (--server): for every registered agent, its state and its manifest's scopes \
            first, then the policy set evaluated on the entities the gateway builds, with the call's context (method, \
            path, query, time, trust, delegation, risk signals) unknown. "conditional" lists the policies whose \
            conditions on the call decide, with their text. Example:
              warden policy who-can --route tickets --server http://127.0.0.1:8443 --admin-token-file warden-data/admin.token
              warden policy who-can --tool files/delete --server ... (held for approval shows as conditional)
            """)

    @OptionGroup var admin: AdminOptions
    @Option(name: .long, help: "The route's name.") var route: String?
    @Option(name: .long, help: "An MCP tool, <server>/<tool>.") var tool: String?
    @Flag(name: .long, help: "Print the server's JSON.") var json = false

    func run() async throws {
        try await reporting {
            let query: String
            switch (route, tool) {
            case (let r?, nil): query = "route=" + WardenHTTP.percentEncode(r)
            case (nil, let t?): query = "tool=" + WardenHTTP.percentEncode(t)
            default: throw ValidationError("pass exactly one of --route R and --tool SERVER/TOOL")
            }
            guard let answer = try await admin.ask("who-can", "/v1/admin/policies/who-can?" + query, json: json)
            else { return }
            for a in answer["agents"]?.arrayValue ?? [] {
                let name = a["name"]?.stringValue ?? "?"
                let access = a["access"]?.stringValue ?? "?"
                print("\(name)\t\(access)\t\(a["reason"]?.stringValue ?? "")")
                for c in a["conditions"]?.arrayValue ?? [] {
                    for line in (c.stringValue ?? "").split(separator: "\n") { print("    \(line)") }
                }
            }
        }
    }
}

struct PolicyExplain: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "explain",
        abstract: "Why an agent's call to a route would be allowed or refused now, policy by policy.",
        discussion: """
            Asks a running server (--server): the layers before the policy (the agent's state, its manifest's \
            scopes), then the decision on the Cedar request the gateway would build now (the agent's trust and the \
            risk engine's signals as they stand), the determining policies and, for a deny, the permits that came \
            closest and why they did not apply (the scope part that did not match, or the clause that was false). \
            Example:
              warden policy explain --agent support-bot --route billing --method POST --path /v1/invoices --server ...
              warden policy explain --agent support-bot --tool files/delete --arguments '{"path": "/etc"}' --server ...
            """)

    @OptionGroup var admin: AdminOptions
    @Option(name: .long, help: "The agent (name, id or SPIFFE ID).") var agent: String
    @Option(name: .long, help: "The route's name.") var route: String?
    @Option(name: .long, help: "The HTTP method (default GET).") var method = "GET"
    @Option(name: .long, help: "The path after /r/<route> (default /).") var path = "/"
    @Option(name: .long, help: "Instead of --route: an MCP tool, <server>/<tool>.") var tool: String?
    @Option(name: .long, help: "With --tool: the call's arguments, a JSON object (default {}).") var arguments = "{}"
    @Flag(name: .long, help: "Print the server's JSON.") var json = false

    func run() async throws {
        try await reporting {
            let e = WardenHTTP.percentEncode
            let query: String
            switch (route, tool) {
            case (let route?, nil): query = "route=\(e(route))&method=\(e(method))&path=\(e(path))"
            case (nil, let tool?): query = "tool=\(e(tool))&arguments=\(e(arguments))"
            default: throw ValidationError("give --route R (with --method, --path) or --tool SERVER/TOOL")
            }
            guard
                let answer = try await admin.ask(
                    "explain", "/v1/admin/policies/explain?agent=\(e(agent))&" + query, json: json)
            else { return }
            print("decision: \(answer["decision"]?.stringValue ?? "?")")
            if let r = answer["refused_before_policy"]?.stringValue { print("refused before the policy: \(r)") }
            let determining = (answer["determining"]?.arrayValue ?? []).compactMap(\.stringValue)
            print(
                "policy decision: \(answer["policy_decision"]?.stringValue ?? "?")"
                    + (determining.isEmpty ? " (no policy applies)" : " by \(determining.joined(separator: ", "))"))
            for error in (answer["errors"]?.arrayValue ?? []).compactMap(\.stringValue) { print("error: \(error)") }
            for p in answer["closest_permits"]?.arrayValue ?? [] {
                print("closest permit \(p["id"]?.stringValue ?? "?"): \(p["detail"]?.stringValue ?? "")")
            }
        }
    }
}

struct PolicyDiff: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "diff",
        abstract: "What a policy change adds, removes and changes, and which recorded calls it newly allows or denies.",
        discussion: """
            OLD and NEW are policy files or directories of .cedar files (as warden serve reads them). Without \
            --replay the comparison is local: the policies added, removed and changed (by @id, or file and \
            position; a change of layout or comments alone is none). With --replay, a running server (--server) \
            decides the /r/ calls its audit log recorded since --since again on both sets, with its real agents and \
            routes and each call's recorded method, path, query names, content length, time, trust, source and \
            delegation, and lists the calls newly allowed and newly denied (counts and the first 20 of each). Calls \
            refused before the policy, and MCP calls (their arguments are not recorded), are counted, not replayed. \
            Example:
              warden policy diff warden-data/policies new-policies/ --replay --since 7d --server ...
            """)

    @Argument(help: "The policy set in force (a .cedar file or a directory).") var old: String
    @Argument(help: "The changed policy set (a .cedar file or a directory).") var new: String
    @Flag(name: .long, help: "Replay the recorded calls against both sets (asks a running server).") var replay = false
    @Option(name: .long, help: "With --replay: the window, 24h, 7d, 30d ... (default 7d).") var since = "7d"
    @Flag(name: .long, help: "Print the JSON.") var json = false
    @OptionGroup var admin: AdminOptions

    func run() async throws {
        try await reporting {
            let (oldTexts, newTexts) = (try PolicyEngine.texts([old]), try PolicyEngine.texts([new]))
            let answer: JSONValue
            if replay {
                guard let client = try admin.client() else {
                    throw ValidationError("--replay asks a running server: pass --server (and the admin token)")
                }
                func files(_ t: [(name: String, text: String)]) -> JSONValue {
                    .array(t.map { .object([("name", .string($0.name)), ("text", .string($0.text))]) })
                }
                answer = try await client.call(
                    "POST", "/v1/admin/policies/diff",
                    json: .object([("old", files(oldTexts)), ("new", files(newTexts)), ("since", .string(since))]))
            } else {
                let now = Int64(Date().timeIntervalSince1970)
                let changes = PolicyChanges(
                    old: try PolicyEngine.load(texts: oldTexts, now: now),
                    new: try PolicyEngine.load(texts: newTexts, now: now))
                answer = .object([("policies", changes.json)])
            }
            if json {
                print(answer.serialized)
                return
            }
            let p = answer["policies"]
            func ids(_ key: String) -> [String] { (p?[key]?.arrayValue ?? []).compactMap(\.stringValue) }
            print(
                "policies: \(ids("added").count) added, \(ids("removed").count) removed, \(ids("changed").count) changed"
            )
            for id in ids("added") { print("  + \(id)") }
            for id in ids("removed") { print("  - \(id)") }
            for id in ids("changed") { print("  ~ \(id)") }
            guard let r = answer["replay"] else { return }
            var skipped: [String] = []
            if case .object(let pairs)? = r["not_replayed"] {
                skipped = pairs.map { "\($0.1.integerValue ?? 0) \($0.0)" }
            }
            print(
                "replay since \(r["since"]?.stringValue ?? "?"): \(r["replayed"]?.integerValue ?? 0) calls decided again"
                    + (skipped.isEmpty ? "" : " (not replayed: \(skipped.joined(separator: ", ")))")
                    + (r["truncated"] == .bool(true) ? "; the read stopped at its bound" : ""))
            for (key, label) in [("newly_allowed", "newly allowed"), ("newly_denied", "newly denied")] {
                print("\(label): \(r[key + "_count"]?.integerValue ?? 0)")
                func outcome(_ c: JSONValue, _ side: String) -> String {
                    guard c[side]?.stringValue == "allow" else { return c[side + "_reason"]?.stringValue ?? "denied" }
                    let by = (c[side + "_policies"]?.arrayValue ?? []).compactMap(\.stringValue)
                    return "allowed" + (by.isEmpty ? "" : " by \(by.joined(separator: ", "))")
                }
                for c in r[key]?.arrayValue ?? [] {
                    print(
                        "  seq \(c["seq"]?.integerValue ?? 0) \(c["time"]?.stringValue ?? "") \(c["agent"]?.stringValue ?? "") "
                            + "\(c["method"]?.stringValue ?? "") /r/\(c["route"]?.stringValue ?? "")\(c["path"]?.stringValue ?? "")"
                            + " (was: \(outcome(c, "old")); now: \(outcome(c, "new")))")
                }
            }
        }
    }
}

struct PolicyUnused: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "unused",
        abstract: "Unused grants over a window: permits that allowed nothing, manifest scopes never used.",
        discussion: """
            Asks a running server (--server), which reads its audit log: the allowed decisions since --since (a \
            duration, default 7d), the permits of the current set that determined none of them, and per active \
            agent the scopes of its manifest (routes, tools, peers) that none of its allowed calls used.
            """)

    @OptionGroup var admin: AdminOptions
    @Option(name: .long, help: "The window: 24h, 7d, 30d ... (default 7d).") var since = "7d"
    @Flag(name: .long, help: "Print the server's JSON.") var json = false

    func run() async throws {
        try await reporting {
            guard
                let answer = try await admin.ask(
                    "unused", "/v1/admin/policies/unused?since=" + WardenHTTP.percentEncode(since), json: json)
            else { return }
            let permits = (answer["unused_permits"]?.arrayValue ?? []).compactMap(\.stringValue)
            print("allowed decisions read: \(answer["allowed_decisions"].map { $0.serialized } ?? "0")")
            print("permits that allowed nothing: " + (permits.isEmpty ? "none" : permits.joined(separator: ", ")))
            for a in answer["unused_scopes"]?.arrayValue ?? [] {
                let scopes = (a["scopes"]?.arrayValue ?? []).compactMap(\.stringValue)
                print("\(a["agent"]?.stringValue ?? "?"): never used \(scopes.joined(separator: ", "))")
            }
        }
    }
}

extension AdminOptions {
    /// `GET path` on the running server for a policy analysis verb; with `json`, prints the answer and returns nil.
    func ask(_ verb: String, _ path: String, json: Bool) async throws -> JSONValue? {
        guard let client = try client() else {
            throw ValidationError("\(verb) asks a running server: pass --server (and the admin token)")
        }
        let answer = try await client.call("GET", path)
        if json {
            print(answer.serialized)
            return nil
        }
        return answer
    }
}
