import Cedar
import Crypto
import Foundation
import Synchronization
import WardenCore
import WardenIdentity

/// The policy decision point: the current Cedar policy set, loaded from files and directories of `.cedar` files,
/// replaced atomically on reload. A reload that fails (a file that does not parse, a duplicate id, a directory that
/// cannot be read) keeps the last good set and reports why; every change of the set is audited with its digest.
public final class PolicyEngine: Sendable {
    /// A loaded policy set and what it came from.
    public struct Snapshot: Sendable {
        public let policies: PolicySet
        /// `sha256:<hex>` over the files' names and contents, in load order.
        public let digest: String
        public let files: [String]
        public let loadedAt: Int64
        /// The ids of the forbid policies: one that errors denies the request (fail closed).
        public let forbids: Set<String>
        /// The forbid policies annotated `@approval`: a call they alone deny, and that `context.approved` would let
        /// through, is held for a human's approval instead of refused (MCP gateway).
        public let approvalPolicies: Set<String>
        public var count: Int { policies.policies.count }
    }

    /// Largest policy file, and largest total, bytes.
    public static let maxFileBytes = 4 << 20
    static let maxTotalBytes = 32 << 20

    public let sources: [String]
    /// Reloads that failed (the last good set stayed).
    public let reloadFailures = Atomic<Int64>(0)
    private let current: Mutex<Snapshot>
    private let authorizer = Authorizer()

    /// Loads `sources`; throws (refusing to start) when the set is invalid.
    public init(sources: [String], now: Int64) throws(WardenError) {
        self.sources = sources
        self.current = Mutex(try Self.load(sources, now: now))
    }

    public var snapshot: Snapshot { current.withLock { $0 } }

    /// Loads the sources into a new snapshot without installing it (it applies on ``install(_:)``).
    public func prepare(now: Int64) throws(WardenError) -> Snapshot { try Self.load(sources, now: now) }

    /// Makes `next` the current set; returns the one it replaces.
    @discardableResult
    public func install(_ next: Snapshot) -> Snapshot {
        current.withLock { c in
            let o = c
            c = next
            return o
        }
    }

    /// A decision as the enforcement points use it.
    public struct Verdict: Sendable {
        public let allowed: Bool
        /// The permitting policies when allowed; the forbids that applied (or that errored) when denied.
        public let policies: [String]
        /// Every policy that errored (for the audit record).
        public let errors: [PolicyEvaluationError]
        /// `policy_denied` or `policy_error` when denied.
        public let reason: String?
        /// Why, for the caller and the audit log.
        public let message: String

        package init(
            allowed: Bool, policies: [String], errors: [PolicyEvaluationError], reason: String?, message: String
        ) {
            self.allowed = allowed
            self.policies = policies
            self.errors = errors
            self.reason = reason
            self.message = message
        }
    }

    /// Decides a request against the current set (one snapshot for the whole decision). Cedar's algorithm — deny by
    /// default, forbid overrides permit, an erroring permit never grants — with one stricter rule: a forbid policy
    /// that errors denies (`policy_error`), so a guard that cannot be evaluated never lets a call through.
    public func authorize(_ request: Request, entities: Entities) -> Verdict {
        Self.authorize(request, entities: entities, snapshot: current.withLock { $0 }, authorizer: authorizer)
    }

    /// ``authorize(_:entities:)`` on a given snapshot (a policy change's replay decides on two).
    public static func authorize(
        _ request: Request, entities: Entities, snapshot: Snapshot, authorizer: Authorizer = Authorizer()
    ) -> Verdict {
        let r = authorizer.isAuthorized(request, policies: snapshot.policies, entities: entities)
        let failedForbids = r.errors.map(\.policyID).filter { snapshot.forbids.contains($0) }
        if !failedForbids.isEmpty {
            return Verdict(
                allowed: false, policies: failedForbids, errors: r.errors, reason: "policy_error",
                message: "a forbid policy could not be evaluated (\(failedForbids.joined(separator: ", ")))")
        }
        guard r.decision == .allow else {
            return Verdict(
                allowed: false, policies: r.reasons, errors: r.errors, reason: "policy_denied",
                message: r.reasons.isEmpty
                    ? "no policy permits this call" : "forbidden by policy \(r.reasons.joined(separator: ", "))")
        }
        return Verdict(allowed: true, policies: r.reasons, errors: r.errors, reason: nil, message: "allowed")
    }

    /// Whether ``authorize(_:entities:)`` may allow `request` once the values of `unknownContextKeys` are known (for
    /// example a tool call's arguments): false when no values can get it allowed. One snapshot, the same rules: a
    /// forbid that applies, or that errors, whatever the unknowns are denies; one that depends on them does not.
    public func mayAuthorize(_ request: Request, unknownContextKeys: Set<String>, entities: Entities) -> Bool {
        let snapshot = current.withLock { $0 }
        let r = authorizer.isAuthorized(
            request, unknownContextKeys: unknownContextKeys, policies: snapshot.policies, entities: entities)
        guard !r.errors.contains(where: { snapshot.forbids.contains($0.policyID) }) else { return false }
        return r.mayBeAllowed
    }

    /// The `.cedar` files of `sources` (directories are read one level deep, files sorted by name).
    public static func files(_ sources: [String]) throws(WardenError) -> [String] {
        var out: [String] = []
        for s in sources {
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: s, isDirectory: &isDir) else {
                throw WardenError(.invalidConfig, "policy source \(s) does not exist")
            }
            if isDir.boolValue {
                guard let names = try? FileManager.default.contentsOfDirectory(atPath: s) else {
                    throw WardenError(.invalidConfig, "policy directory \(s) cannot be read")
                }
                out += names.filter { $0.hasSuffix(".cedar") && !$0.hasPrefix(".") }.sorted().map { s + "/" + $0 }
            } else {
                out.append(s)
            }
        }
        return out
    }

    static func load(_ sources: [String], now: Int64) throws(WardenError) -> Snapshot {
        try load(texts: try texts(sources), now: now)
    }

    /// The `.cedar` files of `sources` and their texts, in load order.
    public static func texts(_ sources: [String]) throws(WardenError) -> [(name: String, text: String)] {
        var texts: [(name: String, text: String)] = []
        for file in try files(sources) { texts.append((file, try SecureFile.read(file, maxBytes: maxFileBytes))) }
        return texts
    }

    /// The snapshot of policy files given as `(file name, text)`, in order, with the checks of a reload: sizes,
    /// syntax, unique ids (`@id` or file and position), known context keys, no templates.
    public static func load(texts: [(name: String, text: String)], now: Int64) throws(WardenError) -> Snapshot {
        let files = texts.map(\.name)
        var set = PolicySet()
        var h = SHA256()
        var total = 0
        let validator = Validator(schema: WardenSchema.schema)
        for (i, (file, text)) in texts.enumerated() {
            guard text.utf8.count <= maxFileBytes else {
                throw WardenError(.invalidConfig, "\(file) is larger than \(maxFileBytes) bytes")
            }
            total += text.utf8.count
            guard total <= maxTotalBytes else {
                throw WardenError(.invalidConfig, "the policy files are larger than \(maxTotalBytes) bytes in all")
            }
            h.update(data: Array("\(file.split(separator: "/").last ?? "")\n\(text.utf8.count)\n".utf8))
            h.update(data: Array(text.utf8))
            let parsed: PolicySet
            do {
                // Policies without @id are named after their file and position, so ids stay unique across files.
                parsed = try PolicySet(text: text, idPrefix: "f\(i)-policy")
            } catch {
                throw WardenError(.invalidConfig, "\(file): \(error)")
            }
            do {
                // A policy's `@id` names it in decisions, audit entries and 403 responses.
                for var p in parsed.policies {
                    if let id = p.annotation("id"), !id.isEmpty { p.id = id }
                    try set.add(p)
                }
            } catch {
                throw WardenError(.invalidConfig, "\(file): \(error)")
            }
            // A context key no decision has (a typo such as context.metod) is refused, not left to deny every call.
            for p in parsed.policies {
                guard let (key, known) = PolicyContextCheck.unknownKey(in: p) else { continue }
                let name = p.annotation("id").map { "@id(\"\($0)\")" } ?? "policy \(p.id)"
                throw WardenError(
                    .invalidConfig,
                    "\(file): \(name) reads context.\(key), which no call has (known: \(known.sorted().joined(separator: ", ")))"
                )
            }
            guard parsed.templates.isEmpty else {
                throw WardenError(.invalidConfig, "\(file): templates are not supported in policy files")
            }
            // Cedar's strict validator against Warden's own entity model: a policy that cannot type-check (an
            // attribute no entity has, an optional one read without `has`, a wrong type) is refused now, with
            // every error, rather than erring or never matching when calls come.
            let issues = validator.validate(parsed)
            if !issues.isEmpty {
                let lines = issues.prefix(20).map { issue -> String in
                    let name =
                        parsed.policies.first { $0.id == issue.policyID }?.annotation("id").map {
                            "@id(\"\($0)\")"
                        } ?? "policy \(issue.policyID)"
                    let at = issue.location.map { "\(file):\($0.line):\($0.column)" } ?? file
                    return "\(at): \(name): \(issue.message)"
                }
                throw WardenError(
                    .invalidConfig,
                    "the policies do not validate against Warden's schema (warden policy schema): "
                        + lines.joined(separator: "; ") + (issues.count > 20 ? "; and \(issues.count - 20) more" : ""))
            }
        }
        return Snapshot(
            policies: set, digest: "sha256:" + Attestation.hex(h.finalize()), files: files, loadedAt: now,
            forbids: Set(set.policies.filter { $0.effect == .forbid }.map(\.id)),
            approvalPolicies: Set(
                set.policies.filter { $0.effect == .forbid && $0.annotations.contains { $0.key == "approval" } }.map(
                    \.id)))
    }

    /// Writes the demo policy set to `dir/demo.cedar` when `dir` does not exist yet (a new data directory).
    static func seedDemo(_ dir: String) throws(WardenError) {
        guard !FileManager.default.fileExists(atPath: dir) else { return }
        try SecureFile.ensureDirectory(dir)
        try SecureFile.write(demoPolicies, to: dir + "/demo.cedar", mode: 0o644)
    }

    /// The demo policy set `warden serve` starts with (README walkthrough).
    public static let demoPolicies = """
        // Warden's demo policy set (written on the first start; edit it and reload with SIGHUP or
        // POST /v1/admin/policies/reload). Deny by default; forbid overrides permit.
        // Principals: Agent::"spiffe://<trust domain>/agent/<name>" in Role::"…" and Team::"…" (from the manifest),
        // with attributes name, owner, model, environment, manifestDigest, tags, routes, peers, tools.
        // Resources: Service::"<route>" in Segment::"…", or Agent::"…" for agent-to-agent routes.

        // Support agents may call the services of the support segment.
        @id("support-segment")
        permit (principal in Role::"support", action == Action::"call", resource in Segment::"support");

        // Finance agents may call the services of the finance segment.
        @id("finance-segment")
        permit (principal in Team::"finance", action == Action::"call", resource in Segment::"finance");

        // Agent-to-agent calls only to the peers the caller's manifest names.
        @id("manifest-peers")
        permit (principal is Agent, action == Action::"call", resource is Agent)
        when { principal.peers.contains(resource.name) };

        // Writes need a trusted agent.
        @id("writes-need-trust")
        forbid (principal, action == Action::"call", resource)
        when { context.trust < 50 && !["GET", "HEAD", "OPTIONS"].contains(context.method) };

        // Nothing outside finance reaches the finance segment, whatever else says.
        @id("finance-is-finance-only")
        forbid (principal, action, resource in Segment::"finance")
        unless { principal in Team::"finance" };

        // MCP tools (Tool::"<server>/<tool>" in ToolServer::"<server>", with name, server, id, risk, dataClass and
        // allTools = "<server>/*"): an agent may list and call the tools its manifest names (`tools: [server/tool]`, or
        // `server/*` for all of a server's).
        @id("manifest-tools")
        permit (principal is Agent, action in [Action::"mcp:tools/list", Action::"mcp:tools/call"], resource is Tool)
        when { principal.tools.contains(resource.id) || principal.tools.contains(resource.allTools) };

        // Resources and prompts of a server whose tools the manifest names.
        @id("manifest-servers")
        permit (principal is Agent, action in [Action::"mcp:resources/read", Action::"mcp:prompts/get"], resource)
        when { resource has allTools && principal.tools.contains(resource.allTools) };

        // Destructive tools need a human: the gateway holds the call until an approver decides (@approval).
        @id("high-risk-needs-approval")
        @approval
        forbid (principal, action == Action::"mcp:tools/call", resource is Tool)
        when { resource.risk == "high" }
        unless { context.approved };

        // A known agent's first call to a tool that neither it nor its roles ever used also waits for a human (the
        // risk engine's signals, context.risk: ready once there is a warm history to judge by): a poisoned prompt's
        // pivot to a new tool is held before it runs, not contained after. Once approved and served, the tool is
        // part of the agent's history and is not held again.
        @id("new-tools-need-approval")
        @approval
        forbid (principal, action == Action::"mcp:tools/call", resource is Tool)
        when { context.risk.ready && context.risk.newResource }
        unless { context.approved };

        """
}
