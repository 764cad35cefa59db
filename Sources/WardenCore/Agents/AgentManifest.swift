import Cedar

/// An agent's manifest: who it is, who owns it, what it runs and what it may reach. Registered by an operator; the
/// agent proves at enrollment that it matches (``manifestDigest`` and, when set, ``binarySHA256``).
///
/// Read from YAML or JSON. `name` and `owner` are required; unknown keys are errors, so a typo never silently drops a
/// restriction.
public struct AgentManifest: Sendable, Hashable {
    /// Model provenance: who provides the model, which model, and the digest of its weights or release.
    public struct Model: Sendable, Hashable {
        public var provider: String?
        public var name: String?
        public var digest: String?
        public init(provider: String? = nil, name: String? = nil, digest: String? = nil) {
            self.provider = provider
            self.name = name
            self.digest = digest
        }
    }

    /// The agent's name, one SPIFFE path segment: `spiffe://<trust-domain>/agent/<name>`.
    public var name: String
    /// The accountable owner (a person or team address).
    public var owner: String
    /// Roles, Cedar parents `Role::"<role>"`.
    public var roles: [String] = []
    /// Team, Cedar parent `Team::"<team>"`.
    public var team: String?
    public var model: Model?
    /// Digest of the agent's prompt, instructions and tool definitions (`sha256:<64 hex>`).
    public var configDigest: String?
    /// SHA-256 of the agent's binary (64 lowercase hex); when set, enrollment must present the same hash.
    public var binarySHA256: String?
    /// Tools it may use, `<server>/<tool>`.
    public var tools: [String] = []
    /// Agents it may call (names).
    public var peers: [String] = []
    /// Gateway routes it may use.
    public var routes: [String] = []
    public var environment: String?
    /// Free-form labels, Cedar attribute `tags`.
    public var tags: [String] = []
    /// The node agent (`warden node`) that attests this agent's workloads and obtains its SVIDs; when set, the agent
    /// does not enroll with a join token.
    public var node: String?
    /// What the node's kernel attestation must find for a process to be this agent: `unix:uid:<n>`, `unix:gid:<n>`,
    /// `unix:sha256:<hex of the binary>`, `unix:path:<absolute path of the binary>`; all must match.
    public var selectors: [String] = []

    /// The largest manifest accepted, in bytes.
    public static let maxBytes = 64 * 1024
    static let maxListItems = 256
    static let maxStringBytes = 256

    public init(name: String, owner: String) {
        self.name = name
        self.owner = owner
    }

    /// Parses a manifest written in YAML or JSON; `file` names it in errors (with line and column where known).
    public init(parsing text: String, file: String) throws(WardenError) {
        let value: JSONValue
        let places: [String: String]
        do {
            (value, places) = try YAMLReader.readWithPlaces(text, file: file, maxBytes: Self.maxBytes)
        } catch {
            throw WardenError(.invalidManifest, error.message)
        }
        try self.init(json: value, file: file, places: places)
    }

    /// Reads a manifest from JSON (the admin API's form).
    public init(json: JSONValue, file: String = "manifest", places: [String: String] = [:]) throws(WardenError) {
        func fail(_ path: String, _ message: String) -> WardenError {
            WardenError(.invalidManifest, "\(places[path] ?? file): \(path): \(message)")
        }
        guard case .object(let pairs) = json else {
            throw WardenError(.invalidManifest, "\(file): a manifest is a mapping of keys to values")
        }
        func text(_ v: JSONValue, _ path: String, max: Int = Self.maxStringBytes) throws(WardenError) -> String {
            let s: String
            switch v {
            case .string(let x): s = x
            case .number(let x): s = x
            default: throw fail(path, "must be a string, not \(v.kindName)")
            }
            guard !s.isEmpty, s.utf8.count <= max else { throw fail(path, "must be 1 to \(max) bytes") }
            guard !s.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
                throw fail(path, "must not contain control characters")
            }
            return s
        }
        func list(_ v: JSONValue, _ path: String) throws(WardenError) -> [String] {
            guard case .array(let items) = v else { throw fail(path, "must be a list of strings") }
            guard items.count <= Self.maxListItems else { throw fail(path, "has more than \(Self.maxListItems) items") }
            var out: [String] = []
            var seen = Set<String>()
            for (i, item) in items.enumerated() {
                let s = try text(item, "\(path)[\(i)]")
                guard seen.insert(s).inserted else { throw fail("\(path)[\(i)]", "'\(s)' is listed twice") }
                out.append(s)
            }
            return out
        }
        func digest(_ v: JSONValue, _ path: String) throws(WardenError) -> String {
            let s = try text(v, path).lowercased()
            guard s.hasPrefix("sha256:"), Self.isHex64(s.dropFirst(7)) else {
                throw fail(path, "must be sha256: followed by 64 hex digits")
            }
            return s
        }
        var name: String?
        var owner: String?
        var m = AgentManifest(name: "", owner: "")
        for (key, v) in pairs {
            if case .null = v { continue }
            switch key {
            case "name":
                let n = try text(v, key, max: 128)
                guard Self.isSegment(n) else {
                    throw fail(key, "must be one SPIFFE path segment: A-Z, a-z, 0-9, '.', '-', '_' (not '.' or '..')")
                }
                name = n
            case "owner": owner = try text(v, key)
            case "roles": m.roles = try list(v, key)
            case "team": m.team = try text(v, key)
            case "model":
                guard case .object(let mp) = v else { throw fail(key, "must be a mapping of provider, name, digest") }
                var model = Model()
                for (k, mv) in mp {
                    let path = "model.\(k)"
                    if case .null = mv { continue }
                    switch k {
                    case "provider": model.provider = try text(mv, path)
                    case "name": model.name = try text(mv, path)
                    case "digest": model.digest = try digest(mv, path)
                    default: throw fail(path, "unknown key (known: provider, name, digest)")
                    }
                }
                m.model = model
            case "config_digest": m.configDigest = try digest(v, key)
            case "binary_sha256":
                var s = try text(v, key).lowercased()
                if s.hasPrefix("sha256:") { s.removeFirst(7) }
                guard Self.isHex64(Substring(s)) else { throw fail(key, "must be 64 hex digits (SHA-256)") }
                m.binarySHA256 = s
            case "tools":
                m.tools = try list(v, key)
                for (i, t) in m.tools.enumerated()
                where t.split(separator: "/", omittingEmptySubsequences: false).count != 2 {
                    throw fail("tools[\(i)]", "a tool is named <server>/<tool>")
                }
                for (i, t) in m.tools.enumerated() where !Self.isScopeToken(t) {
                    throw fail("tools[\(i)]", "a tool name has no spaces, quotes or backslashes")
                }
            case "peers":
                m.peers = try list(v, key)
                for (i, p) in m.peers.enumerated() where !Self.isSegment(p) {
                    throw fail("peers[\(i)]", "a peer is an agent name (one SPIFFE path segment)")
                }
            case "routes":
                m.routes = try list(v, key)
                for (i, r) in m.routes.enumerated() where !Self.isScopeToken(r) {
                    throw fail("routes[\(i)]", "a route name has no spaces, quotes or backslashes")
                }
            case "environment": m.environment = try text(v, key, max: 64)
            case "tags": m.tags = try list(v, key)
            case "node":
                let n = try text(v, key)
                guard Self.isSegment(n) else { throw fail(key, "the node is an agent name (one SPIFFE path segment)") }
                m.node = n
            case "selectors":
                m.selectors = try list(v, key)
                for (i, sel) in m.selectors.enumerated() {
                    if let problem = Self.selectorProblem(sel) { throw fail("selectors[\(i)]", problem) }
                }
            default:
                throw fail(
                    key,
                    "unknown key (known: name, owner, roles, team, model, config_digest, binary_sha256, tools, peers, routes, environment, tags, node, selectors)"
                )
            }
        }
        guard let name else { throw WardenError(.invalidManifest, "\(file): the manifest needs a name") }
        guard let owner else { throw WardenError(.invalidManifest, "\(file): the manifest needs an owner") }
        if (m.node == nil) != m.selectors.isEmpty {
            throw WardenError(
                .invalidManifest,
                "\(file): node and selectors go together (the node attests the agent's processes by the selectors)")
        }
        if m.node == name { throw WardenError(.invalidManifest, "\(file): an agent cannot be its own node") }
        // The uid is the one selector no local user can fake (what a process runs can be exec'd, injected or
        // bind-mounted): a node-attested agent always names it.
        if m.node != nil && !m.selectors.contains(where: { $0.hasPrefix("unix:uid:") }) {
            throw WardenError(
                .invalidManifest,
                "\(file): a node-attested agent needs a unix:uid selector (binary, path and gid selectors alone can be faked by any local user)"
            )
        }
        m.name = name
        m.owner = owner
        self = m
    }

    /// The manifest as canonical JSON: keys in lexicographic order, absent values left out, lists in their order. The
    /// manifest digest is the SHA-256 of ``canonicalJSON``'s UTF-8 bytes, so YAML and JSON spellings of one manifest
    /// have one digest.
    public var json: JSONValue {
        var pairs: [(String, JSONValue)] = []
        func add(_ k: String, _ v: String?) { if let v { pairs.append((k, .string(v))) } }
        func add(_ k: String, _ v: [String]) { if !v.isEmpty { pairs.append((k, .array(v.map { .string($0) }))) } }
        add("binary_sha256", binarySHA256)
        add("config_digest", configDigest)
        add("environment", environment)
        if let model {
            var mp: [(String, JSONValue)] = []
            if let d = model.digest { mp.append(("digest", .string(d))) }
            if let n = model.name { mp.append(("name", .string(n))) }
            if let p = model.provider { mp.append(("provider", .string(p))) }
            pairs.append(("model", .object(mp)))
        }
        add("name", name)
        add("node", node)
        add("owner", owner)
        add("peers", peers)
        add("roles", roles)
        add("routes", routes)
        add("selectors", selectors)
        add("tags", tags)
        add("team", team)
        add("tools", tools)
        return .object(pairs)
    }

    /// The canonical JSON text (see ``json``).
    public var canonicalJSON: String { json.serialized }

    /// Why `s` is not a workload selector, or nil when it is one.
    public static func selectorProblem(_ s: String) -> String? {
        let parts = s.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0] == "unix" else {
            return "a selector is unix:uid:<n>, unix:gid:<n>, unix:sha256:<64 hex> or unix:path:<absolute path>"
        }
        let value = parts[2]
        switch parts[1] {
        case "uid", "gid":
            guard let n = UInt32(value), String(n) == value else { return "unix:\(parts[1]) takes a decimal number" }
        case "sha256":
            guard isHex64(value) else { return "unix:sha256 takes the binary's SHA-256 as 64 lowercase hex digits" }
        case "path":
            guard value.hasPrefix("/"), value.utf8.count <= 4096, !value.utf8.contains(0) else {
                return "unix:path takes an absolute path"
            }
        default: return "unknown selector type unix:\(parts[1]) (known: uid, gid, sha256, path)"
        }
        return nil
    }

    static func isHex64(_ s: Substring) -> Bool {
        s.utf8.count == 64 && s.utf8.allSatisfy { (48...57).contains($0) || (97...102).contains($0) }
    }

    /// Whether `s` can be part of an OAuth scope token (RFC 6749 §3.3: printable ASCII but space, `"` and `\`).
    static func isScopeToken(_ s: String) -> Bool {
        s.unicodeScalars.allSatisfy { $0.value > 0x20 && $0.value < 0x7F && $0 != "\"" && $0 != "\\" }
    }

    /// Whether `s` is one SPIFFE path segment (an agent name).
    public static func isSegment(_ s: String) -> Bool {
        !s.isEmpty && s != "." && s != ".."
            && s.utf8.allSatisfy { b in
                (65...90).contains(b) || (97...122).contains(b) || (48...57).contains(b) || b == 46 || b == 45
                    || b == 95
            }
    }
}
