import ArgumentParser
import Cedar
import Crypto
import Foundation
import WardenAudit
import WardenClient
import WardenControlPlane
import WardenCore
import WardenGateway
import WardenIdentity
import WardenServer
import WardenStore

struct AuditCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit",
        abstract: "Verify, export and follow the tamper-evident audit log (format: docs/audit.md).",
        subcommands: [
            AuditVerify.self, AuditCheckpoint.self, AuditExport.self, AuditTail.self, AuditKeys.self, AuditProof.self,
            AuditPrune.self,
        ]
    )
}

/// Read-only access to a data directory's audit log, safe while a server runs on it (SQLite readers in WAL mode).
func openAuditLog(_ options: ConfigOptions) throws -> (AuditLog, WardenConfig) {
    try openAuditLog(try options.load())
}

func openAuditLog(_ c: WardenConfig) throws -> (AuditLog, WardenConfig) {
    let db = c.data + "/warden.sqlite"
    guard FileManager.default.fileExists(atPath: db) else {
        throw WardenError(.notFound, "no database at \(db); is \(c.data) a Warden data directory?")
    }
    let store = try SQLiteStore(path: db)
    return (try AuditLog(store: store, settings: ControlPlane.auditSettings(c), signer: nil), c)
}

/// The `--since`/`--until`/`--agent`/`--decision` filter.
struct AuditFilter: ParsableArguments {
    @Option(help: "From this sequence number (inclusive) or RFC 3339 time.") var since: String?
    @Option(help: "Before this RFC 3339 time.") var until: String?
    @Option(help: "Only entries about this agent (SPIFFE ID, or name/id with a server).") var agent: String?
    @Option(help: "allow or deny.") var decision: String?

    func query() throws -> AuditLog.Query {
        try AuditLog.Query(since: since, until: until, agent: agent, decision: decision)
    }

    /// The same filter as admin API query parameters.
    func parameters(after: Int64?) -> String {
        var p: [String] = []
        if let after {
            p.append("after=\(after)")
        } else if let since {
            p.append("since=\(WardenHTTP.percentEncode(since))")
        }
        if let until { p.append("until=\(WardenHTTP.percentEncode(until))") }
        if let agent { p.append("agent=\(WardenHTTP.percentEncode(agent))") }
        if let decision { p.append("decision=\(WardenHTTP.percentEncode(decision))") }
        return p.joined(separator: "&")
    }
}

func writeOut(_ text: String) {
    FileHandle.standardOutput.write(Data(text.utf8))
}

struct AuditVerify: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Recompute the hash chain and the Merkle tree, check every signed checkpoint; exit 1 on any failure.",
        discussion: """
            Reads DIR/warden.sqlite directly (also while a server runs). Checkpoints are verified with every key that \
            ever signed for the data directory (DIR/keys/*.pub), or only with the keys of --jwks. --checkpoint adds \
            checkpoints kept outside the database (the JSON `warden audit checkpoint` prints, or the bare JWS): they \
            catch a truncated log and a rewritten one.
            """)
    @OptionGroup var config: ConfigOptions
    @Option(name: .customLong("checkpoint"), help: "A checkpoint kept outside the database (repeatable).")
    var checkpoints: [String] = []
    @Option(help: "Verify checkpoints with these published keys only (a JWKS file).") var jwks: String?
    @Flag(help: "Print the result as JSON.") var json = false

    func run() async throws {
        let result: AuditVerification
        do {
            let c = try config.load()
            var keys: [String: P256.Signing.PublicKey]
            if let jwks {
                let set = try JSONValue.parse(try SecureFile.read(jwks, maxBytes: 1 << 20))
                keys = try TrustedIssuer(issuer: jwks, jwks: set).keys
                // Warden's key ids are the keys' RFC 7638 thumbprints.
                for (kid, key) in keys where ECPublicJWK(key).thumbprint != kid {
                    throw WardenError(.invalidKey, "\(jwks): key \(kid) is not named by its thumbprint")
                }
            } else {
                keys = try DataDirectory.checkpointKeys(path: c.data)
            }
            let external = try checkpoints.map { (f) throws(WardenError) in
                try Checkpoint(parsing: try SecureFile.read(f, maxBytes: 64 * 1024))
            }
            result = try AuditVerifier.verify(
                databasePath: c.data + "/warden.sqlite", keys: keys, external: external,
                origin: c.trustDomain + "/audit")
        } catch {
            throw fail(error)
        }
        if json {
            print(result.json.serialized)
        } else if let f = result.failure {
            print("FAILED" + (f.seq.map { " at entry \($0)" } ?? "") + ": \(f.reason)")
        } else {
            print(
                "ok: \(result.entries) entries verified"
                    + (result.anchor > 0 ? " after \(result.anchor) pruned" : "")
                    + ", tree size \(result.treeSize), root \(result.rootHash.hex); \(result.checkpoints) checkpoints "
                    + "signed and chained, \(result.checkpointsMatched) matched the recomputed log")
        }
        if !result.ok { throw ExitCode(1) }
    }
}

struct AuditCheckpoint: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "checkpoint",
        abstract: "Print the latest signed checkpoint (JSON) to keep outside the database; --new signs one now.")
    @OptionGroup var admin: AdminOptions
    @Flag(help: "Sign a checkpoint of the current log first.") var new = false

    func run() async throws {
        try await reporting {
            if let client = try admin.client() {
                print(try await client.call(new ? "POST" : "GET", "/v1/admin/audit/checkpoint").serialized)
                return
            }
            let cp: Checkpoint?
            if new {
                let (control, lock) = try admin.local()
                cp = try control.audit.checkpoint()
                withExtendedLifetime(lock) {}
            } else {
                cp = try openAuditLog(admin.config).0.latestCheckpoint()
            }
            guard let cp else { throw WardenError(.notFound, "no checkpoint yet (the log is empty)") }
            print(cp.json.serialized)
        }
    }
}

struct AuditExport: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Write audit entries as JSON lines (exactly as stored and hashed) or OCSF events, one per line.")
    @OptionGroup var admin: AdminOptions
    @OptionGroup var filter: AuditFilter
    @Option(help: "jsonl or ocsf.") var format: String = "jsonl"

    func run() async throws {
        guard let f = AuditFormat(rawValue: format) else { throw ValidationError("--format must be jsonl or ocsf") }
        try await reporting {
            if let client = try admin.client() {
                var after: Int64? = nil
                while true {
                    let params = filter.parameters(after: after)
                    let r = try await client.http.send(
                        "GET", "/v1/admin/audit/export?format=\(f.rawValue)&limit=5000&\(params)",
                        headers: [("Authorization", "Bearer \(client.tokenValue)")])
                    guard r.status == 200 else { throw WardenClientError("export: HTTP \(r.status)") }
                    let text = String(decoding: r.body, as: UTF8.self)
                    writeOut(text)
                    let lines = text.split(separator: "\n")
                    guard lines.count == 5000, let last = lines.last else { break }
                    // The last line's sequence number (jsonl: the entry's seq; OCSF: metadata.sequence).
                    guard
                        let seq = AuditVerifier.seq(of: String(last))
                            ?? (try? JSONValue.parse(String(last)))?["metadata"]?["sequence"]?.integerValue
                    else { break }
                    after = seq
                }
                return
            }
            let (log, _) = try openAuditLog(admin.config)
            var q = try filter.query()
            q.limit = 2000
            while true {
                let rows = try log.query(q)
                if rows.isEmpty { break }
                var text = ""
                for (_, entry) in rows { text += f.line(entry) + "\n" }
                writeOut(text)
                q.after = rows.last!.0
                if rows.count < q.limit { break }
            }
        }
    }
}

struct AuditTail: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tail", abstract: "Print the latest audit entries, then follow new ones as they are committed.")
    @OptionGroup var admin: AdminOptions
    @OptionGroup var filter: AuditFilter
    @Option(help: "jsonl or ocsf.") var format: String = "jsonl"
    @Option(name: [.customShort("n"), .long], help: "How many existing entries to print first.") var lines: Int64 = 10
    @Flag(inversion: .prefixedNo, help: "Keep following (until interrupted).") var follow = true

    func run() async throws {
        guard let f = AuditFormat(rawValue: format) else { throw ValidationError("--format must be jsonl or ocsf") }
        try await reporting {
            let client = try admin.client()
            let local = client == nil ? try openAuditLog(admin.config).0 : nil
            var q = try filter.query()
            // Where to start: the last `lines` entries.
            let size: Int64
            if let local {
                size = local.size
            } else {
                size =
                    try await client!.call("GET", "/v1/admin/audit/events?limit=1&after=0")["tree_size"]?.integerValue
                    ?? 0
            }
            if filter.since == nil { q.after = max(0, size - max(0, lines)) }
            while true {
                let rows: [(Int64, String)]
                if let local {
                    q.limit = 1000
                    rows = try local.query(q)
                } else {
                    let r = try await client!.call(
                        "GET", "/v1/admin/audit/events?limit=1000&" + filter.parameters(after: q.after))
                    guard case .array(let items)? = r["events"] else { break }
                    rows = items.compactMap { e in e["seq"]?.integerValue.map { ($0, e.serialized) } }
                }
                if !rows.isEmpty {
                    writeOut(rows.map { f.line($0.1) + "\n" }.joined())
                    q.after = rows.last!.0
                    continue
                }
                if !follow { break }
                try await Task.sleep(for: .milliseconds(250))
            }
        }
    }
}

struct AuditKeys: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keys", abstract: "Print every key that ever signed audit checkpoints, as a JWKS.")
    @OptionGroup var admin: AdminOptions

    func run() async throws {
        try await admin.performReading(
            remote: { try await $0.call("GET", "/v1/admin/audit/keys") },
            offline: { c in try DataDirectory.checkpointKeysJWKS(path: c.data) })
    }
}

struct AuditProof: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "proof",
        abstract: "Print an inclusion proof (--seq [--tree-size]) or a consistency proof (--first [--second]).")
    @OptionGroup var admin: AdminOptions
    @Option(help: "The entry to prove.") var seq: Int64?
    @Option(help: "The tree size to prove it in (default: the whole log).") var treeSize: Int64?
    @Option(help: "The older tree size.") var first: Int64?
    @Option(help: "The newer tree size (default: the whole log).") var second: Int64?

    func run() async throws {
        guard (seq == nil) != (first == nil) else { throw ValidationError("give --seq or --first") }
        let (seq, treeSize, first, second) = (seq, treeSize, first, second)
        try await admin.performReading(
            remote: { client in
                if let seq {
                    return try await client.call(
                        "GET",
                        "/v1/admin/audit/proof/inclusion?seq=\(seq)" + (treeSize.map { "&tree_size=\($0)" } ?? ""))
                }
                return try await client.call(
                    "GET", "/v1/admin/audit/proof/consistency?first=\(first!)" + (second.map { "&second=\($0)" } ?? ""))
            },
            offline: { c in
                let (log, _) = try openAuditLog(c)
                if let seq { return try log.inclusionProof(seq: seq, treeSize: treeSize).json }
                return try log.consistencyProof(first: first!, second: second).json
            })
    }
}

struct AuditPrune: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "prune",
        abstract: "Delete old entries behind the latest signed checkpoint; the log stays verifiable.")
    @OptionGroup var admin: AdminOptions
    @Option(help: "Prune entries up to this sequence number.") var through: Int64?
    @Option(help: "Prune entries older than this RFC 3339 time.") var before: String?

    func run() async throws {
        guard (through == nil) != (before == nil) else { throw ValidationError("give --through SEQ or --before TIME") }
        if let before, AuditEvent.parseRFC3339(before) == nil { throw ValidationError("--before must be RFC 3339") }
        let (through, before) = (through, before)
        try await admin.perform(
            remote: { client in
                try await client.call(
                    "POST", "/v1/admin/audit/prune",
                    json: .object([through.map { ("through", .number(String($0))) } ?? ("before", .string(before!))]))
            },
            offline: { cp in
                let seq = try through ?? cp.audit.lastSeq(before: AuditEvent.parseRFC3339(before!)!)
                return .object([("pruned_through", .number(String(try cp.audit.prune(through: seq, actor: "admin"))))])
            })
    }
}

extension AdminOptions {
    /// Like ``perform(remote:offline:)`` for verbs that only read: the data directory is read without taking the
    /// server's lock.
    func performReading(
        remote: (AdminClient) async throws -> JSONValue, offline: (WardenConfig) throws -> JSONValue
    ) async throws {
        try await reporting {
            if let client = try client() {
                print(try await remote(client).serialized)
            } else {
                print(try offline(try config.load()).serialized)
            }
        }
    }
}
