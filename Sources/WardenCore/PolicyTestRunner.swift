import Cedar
import Foundation

/// Runs files in the Cedar integration-test format (as in cedar-policy/cedar-integration-tests): each names a
/// policy file and an entities file, and lists requests with the expected decision, reasons and erroring policies.
public struct PolicyTestRunner {
    /// One request whose outcome differed from the expectation, or a file that could not be loaded.
    public struct Failure: Sendable, CustomStringConvertible {
        public let file: String
        public let request: String?
        public let message: String
        public var description: String {
            if let request { return "\(file): \(request): \(message)" }
            return "\(file): \(message)"
        }
    }

    /// Totals over all files run so far.
    public private(set) var passed = 0
    public private(set) var failed = 0
    public private(set) var failures: [Failure] = []

    private let root: URL
    private let authorizer = Authorizer()
    private var entityCache: [String: Entities] = [:]
    private var schemaCache: [String: Schema] = [:]

    /// Paths inside test files are resolved against `root`.
    public init(root: URL) { self.root = root }

    /// Runs one test file; returns the failures it produced.
    @discardableResult
    public mutating func run(file path: String) -> [Failure] {
        let before = failures.count
        do {
            let json = try JSONValue.parse(try Self.readText(path))
            try runTest(json, file: path)
        } catch let error as CedarError {
            record(file: path, request: nil, message: "cannot load the test: \(error)", count: 1)
        } catch {
            record(file: path, request: nil, message: "cannot load the test: \(error.localizedDescription)", count: 1)
        }
        return Array(failures[before...])
    }

    private mutating func record(file: String, request: String?, message: String, count: Int) {
        failed += count
        failures.append(Failure(file: file, request: request, message: message))
    }

    private mutating func runTest(_ json: JSONValue, file: String) throws {
        guard case .string(let policiesPath)? = json["policies"], case .string(let entitiesPath)? = json["entities"],
            case .array(let requests)? = json["requests"]
        else {
            throw CedarError(.json, "a test needs \"policies\" and \"entities\" paths and a \"requests\" list")
        }
        let policies: PolicySet
        let entities: Entities
        var schema: Schema?
        do {
            policies = try loadPolicies(policiesPath)
            // With a schema, entities and contexts are read by it (schema-based parsing), as the reference does.
            var schemaPath: String?
            if case .string(let path)? = json["schema"] {
                schemaPath = path
                schema = try loadSchema(path)
            }
            entities = try loadEntities(entitiesPath, schema: schema, schemaPath: schemaPath)
        } catch {
            // Every request of a file that cannot be loaded counts as failed.
            record(file: file, request: nil, message: "\(error)", count: max(1, requests.count))
            return
        }
        for (i, r) in requests.enumerated() {
            var name = "request \(i)"
            if case .string(let d)? = r["description"] { name = d }
            do {
                var request = try CedarJSON.request(schema == nil ? r : Self.withoutContext(r))
                if let schema {
                    request = Request(
                        principal: request.principal, action: request.action, resource: request.resource,
                        context: try schema.context(r["context"] ?? .object([]), action: request.action))
                }
                let response = authorizer.isAuthorized(request, policies: policies, entities: entities)
                if let problem = Self.compare(response, with: r, names: Self.names(policies)) {
                    record(file: file, request: name, message: problem, count: 1)
                } else {
                    passed += 1
                }
            } catch {
                record(file: file, request: name, message: "\(error)", count: 1)
            }
        }
    }

    /// Compares a response with a test's expectation; returns a description of the difference, or nil.
    /// Each policy's `@id`, by its position id (`policy0`, ...), for the policies that have one.
    public static func names(_ set: PolicySet) -> [String: String] {
        var out: [String: String] = [:]
        for p in set.policies { if let n = p.annotation("id"), !n.isEmpty { out[p.id] = n } }
        return out
    }

    /// Compares a response with a test's expectation; returns a description of the difference, or nil. An expected
    /// reason or erroring policy may be named by its position id (`policy0`) or by its `@id` (`names`); the
    /// description names a policy by both.
    public static func compare(_ response: Response, with expected: JSONValue, names: [String: String]) -> String? {
        let byName = Dictionary(names.map { ($1, $0) }, uniquingKeysWith: { a, _ in a })
        func canonical(_ ids: [String]) -> Set<String> { Set(ids.map { byName[$0] ?? $0 }) }
        func shown(_ ids: Set<String>) -> [String] {
            ids.sorted().map { id in names[id].map { "\(id) (@id \($0))" } ?? id }
        }
        guard case .string(let d)? = expected["decision"], let decision = Decision(rawValue: d.lowercased()) else {
            return "the test has no valid \"decision\""
        }
        let reasons = canonical(strings(expected["reason"]) ?? strings(expected["reasons"]) ?? [])
        let errors = canonical(strings(expected["errors"]) ?? [])
        var problems: [String] = []
        if response.decision != decision {
            problems.append("decision \(response.decision.rawValue), expected \(decision.rawValue)")
        }
        let gotReasons = Set(response.reasons)
        if gotReasons != reasons {
            problems.append("reasons \(shown(gotReasons)), expected \(shown(reasons))")
        }
        let gotErrors = Set(response.errors.map(\.policyID))
        if gotErrors != errors {
            let detail = response.errors.map { "\($0.policyID): \($0.message)" }.joined(separator: "; ")
            problems.append("erroring policies \(shown(gotErrors)), expected \(shown(errors)) [\(detail)]")
        }
        return problems.isEmpty ? nil : problems.joined(separator: "; ")
    }

    /// Compares a response with a test's expectation (policies named by position id only).
    public static func compare(_ response: Response, with expected: JSONValue) -> String? {
        compare(response, with: expected, names: [:])
    }

    private static func strings(_ json: JSONValue?) -> [String]? {
        guard case .array(let items)? = json else { return nil }
        return items.compactMap { if case .string(let s) = $0 { s } else { nil } }
    }

    private func loadPolicies(_ path: String) throws -> PolicySet {
        try PolicySet(text: try Self.readText(resolve(path)))
    }

    private mutating func loadEntities(_ path: String, schema: Schema?, schemaPath: String?) throws -> Entities {
        let key = path + "\n" + (schemaPath ?? "")
        if let cached = entityCache[key] { return cached }
        let text = try Self.readText(resolve(path))
        let e = try schema.map { try $0.entities(JSONValue.parse(text)) } ?? CedarJSON.entities(text: text)
        if entityCache.count >= 64 { entityCache.removeAll(keepingCapacity: true) }
        entityCache[key] = e
        return e
    }

    private mutating func loadSchema(_ path: String) throws -> Schema {
        if let cached = schemaCache[path] { return cached }
        let text = try Self.readText(resolve(path))
        let schema = path.hasSuffix(".json") ? try Schema(jsonText: text) : try Schema(text: text, file: path)
        if schemaCache.count >= 64 { schemaCache.removeAll(keepingCapacity: true) }
        schemaCache[path] = schema
        return schema
    }

    /// A request without its context (read separately, by the schema).
    static func withoutContext(_ r: JSONValue) -> JSONValue {
        guard case .object(let pairs) = r else { return r }
        return .object(pairs.filter { $0.0 != "context" })
    }

    private func resolve(_ path: String) -> String {
        path.hasPrefix("/") ? path : root.appendingPathComponent(path).path
    }

    static func readText(_ path: String) throws -> String {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        guard let s = String(data: data, encoding: .utf8) else {
            throw CedarError(.json, "\(path) is not UTF-8 text")
        }
        return s
    }
}
