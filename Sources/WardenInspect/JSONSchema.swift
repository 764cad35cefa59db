// Why this file is long: the JSON Schema subset is one validator with one keyword table; splitting it by keyword would
// scatter the bounds (depth, size, work) that keep it safe on hostile schemas.
import Cedar
import Foundation

/// Checks tool-call arguments against a tool's `inputSchema`: the JSON Schema subset that MCP servers emit (pydantic,
/// zod): `type`, `properties`, `required`, `additionalProperties`, `patternProperties`, `items`, `prefixItems`,
/// `enum`, `const`, numeric and length bounds, `pattern`, `multipleOf`, `uniqueItems`, `anyOf`, `oneOf`, `allOf`,
/// `not`, local `$ref`s and boolean schemas. Annotations and unknown keywords are ignored. Bounded: nesting, `$ref`
/// chains and total work are limited, so a hostile schema or instance gives errors, never a crash or a hang.
/// Patterns run on ``LinearRegex`` (linear time, no backtracking); a pattern outside its subset is an error (the
/// value is refused, never let through unchecked).
public struct SchemaValidator: Sendable {
    let root: JSONValue
    /// The schema's patterns (`pattern` values and `patternProperties` names), compiled once, keyed by their UTF-8
    /// bytes (`String` equality is canonical equivalence, and equivalent patterns can differ for the matcher).
    let patterns: [[UInt8]: Result<LinearRegex, LinearRegex.Unsupported>]

    static let maxErrors = 20
    /// Deepest instance nesting checked.
    static let maxInstanceDepth = 64
    /// `$ref`s followed in a row without descending into the instance (a cycle stops here).
    static let maxRefChain = 32
    /// Deepest recursion of the checker (schema combinators and instance nesting together).
    static let maxCallDepth = 256
    /// Subschema applications per validation.
    static let maxSteps = 500_000
    /// Longest string (or property name) matched against a `pattern` (or `patternProperties`).
    static let maxPatternBytes = 4096
    /// Pattern-matching work (threads visited by ``LinearRegex``) per validation.
    static let maxPatternWork = 20_000_000
    /// Distinct patterns compiled ahead, when the validator is made; others are compiled when a validation needs them.
    static let maxCompiledPatterns = 256
    /// Schema values looked at for patterns to compile ahead.
    static let maxPatternScan = 100_000

    public init(_ schema: JSONValue) {
        root = schema
        patterns = Self.compilePatterns(in: schema)
    }

    /// Compiles the `pattern`s and `patternProperties` names in `schema`, walking it with an explicit stack (deep
    /// nesting cannot exhaust the thread's stack), at most `maxCompiledPatterns` of them.
    static func compilePatterns(in schema: JSONValue) -> [[UInt8]: Result<LinearRegex, LinearRegex.Unsupported>] {
        var compiled: [[UInt8]: Result<LinearRegex, LinearRegex.Unsupported>] = [:]
        var stack = [schema]
        var visited = 0
        func add(_ pattern: String) {
            let key = Array(pattern.utf8)
            guard compiled[key] == nil, compiled.count < Self.maxCompiledPatterns else { return }
            compiled[key] = ValidationRun.compile(pattern)
        }
        while visited < Self.maxPatternScan, compiled.count < Self.maxCompiledPatterns, let node = stack.popLast() {
            visited += 1
            switch node {
            case .object(let pairs):
                for (key, value) in pairs {
                    if key == "pattern", case .string(let p) = value {
                        add(p)
                    } else if key == "patternProperties", case .object(let pp) = value {
                        for (p, _) in pp { add(p) }
                    }
                    switch value {
                    case .object, .array: stack.append(value)
                    default: break
                    }
                }
            case .array(let items):
                for item in items {
                    switch item {
                    case .object, .array: stack.append(item)
                    default: break
                    }
                }
            default:
                break
            }
        }
        return compiled
    }

    /// The ways `instance` fails the schema (at most 20, each `<path>: <problem>` with a JSON-pointer path, `/` for
    /// the root); empty when it is valid.
    public func validate(_ instance: JSONValue) -> [String] {
        var run = ValidationRun(root: root, compiled: patterns)
        var errors: [String] = []
        run.check(root, instance, path: "", depth: 0, level: 0, refs: 0, into: &errors)
        if run.exhausted, !errors.contains(ValidationRun.exhaustedMessage) {
            if errors.count >= Self.maxErrors { errors.removeLast() }
            errors.append(ValidationRun.exhaustedMessage)
        }
        return errors
    }

    /// Why `schema` cannot be a tool's input schema (it is not an object or a boolean, or its `type` is not
    /// `"object"`), or nil when it can.
    public static func check(_ schema: JSONValue) -> String? {
        switch schema {
        case .bool:
            return nil
        case .object:
            guard let type = schema["type"] else { return nil }
            switch type {
            case .string("object"):
                return nil
            case .array(let names) where names == [.string("object")]:
                return nil
            case .string(let name):
                return "the input schema's type must be \"object\", not \"\(name.prefix(40))\""
            default:
                return "the input schema's type must be \"object\", not \(type.kindName)"
            }
        default:
            return "the input schema must be a JSON object, not \(schema.kindName)"
        }
    }
}

/// One validation: the work counter and the caches.
private struct ValidationRun {
    typealias Limits = SchemaValidator

    let root: JSONValue
    /// The patterns compiled when the validator was made.
    let compiled: [[UInt8]: Result<LinearRegex, LinearRegex.Unsupported>]
    var steps = 0
    var exhausted = false
    /// Patterns compiled during this validation (those not compiled ahead).
    var regexes: [[UInt8]: Result<LinearRegex, LinearRegex.Unsupported>] = [:]
    /// What is left of `maxPatternWork`.
    var patternWork = Limits.maxPatternWork
    var refCache: [String: JSONValue] = [:]

    static let exhaustedMessage = "/: the schema is too complex to check (work limit reached)"

    init(root: JSONValue, compiled: [[UInt8]: Result<LinearRegex, LinearRegex.Unsupported>]) {
        self.root = root
        self.compiled = compiled
    }

    /// The keywords of one schema object, read in one pass (a class, to keep the recursive frames small).
    final class Keywords {
        var ref: JSONValue?
        var type: JSONValue?
        var enumValues: JSONValue?
        var const: JSONValue?
        var minimum: JSONValue?
        var maximum: JSONValue?
        var exclusiveMinimum: JSONValue?
        var exclusiveMaximum: JSONValue?
        var multipleOf: JSONValue?
        var minLength: JSONValue?
        var maxLength: JSONValue?
        var pattern: JSONValue?
        var items: JSONValue?
        var prefixItems: JSONValue?
        var additionalItems: JSONValue?
        var minItems: JSONValue?
        var maxItems: JSONValue?
        var uniqueItems: JSONValue?
        var properties: JSONValue?
        var patternProperties: JSONValue?
        var additionalProperties: JSONValue?
        var required: JSONValue?
        var minProperties: JSONValue?
        var maxProperties: JSONValue?
        var allOf: JSONValue?
        var anyOf: JSONValue?
        var oneOf: JSONValue?
        var not: JSONValue?

        init(_ pairs: [(String, JSONValue)]) {
            for (k, v) in pairs {
                switch k {
                case "$ref": ref = v
                case "type": type = v
                case "enum": enumValues = v
                case "const": const = v
                case "minimum": minimum = v
                case "maximum": maximum = v
                case "exclusiveMinimum": exclusiveMinimum = v
                case "exclusiveMaximum": exclusiveMaximum = v
                case "multipleOf": multipleOf = v
                case "minLength": minLength = v
                case "maxLength": maxLength = v
                case "pattern": pattern = v
                case "items": items = v
                case "prefixItems": prefixItems = v
                case "additionalItems": additionalItems = v
                case "minItems": minItems = v
                case "maxItems": maxItems = v
                case "uniqueItems": uniqueItems = v
                case "properties": properties = v
                case "patternProperties": patternProperties = v
                case "additionalProperties": additionalProperties = v
                case "required": required = v
                case "minProperties": minProperties = v
                case "maxProperties": maxProperties = v
                case "allOf": allOf = v
                case "anyOf": anyOf = v
                case "oneOf": oneOf = v
                case "not": not = v
                default: break
                }
            }
        }
    }

    // MARK: - Errors and paths

    static func fail(_ path: String, _ message: String, _ errors: inout [String]) {
        guard errors.count < Limits.maxErrors else { return }
        errors.append((path.isEmpty ? "/" : path) + ": " + message)
    }

    static func child(_ path: String, _ key: String) -> String {
        guard key.contains("~") || key.contains("/") else { return path + "/" + key }
        return path + "/" + key.replacingOccurrences(of: "~", with: "~0").replacingOccurrences(of: "/", with: "~1")
    }

    // MARK: - Checking

    /// Checks `value` against `schema`, appending problems to `errors`. `depth` counts recursion, `level` instance
    /// nesting, `refs` the `$ref`s followed since the last descent into the instance.
    mutating func check(
        _ schema: JSONValue, _ value: JSONValue, path: String, depth: Int, level: Int, refs: Int,
        into errors: inout [String]
    ) {
        guard errors.count < Limits.maxErrors, !exhausted else { return }
        steps += 1
        guard steps <= Limits.maxSteps else {
            exhausted = true
            if errors.count < Limits.maxErrors { errors.append(Self.exhaustedMessage) }
            return
        }
        guard level <= Limits.maxInstanceDepth else {
            Self.fail(path, "the value is nested deeper than \(Limits.maxInstanceDepth) levels", &errors)
            return
        }
        guard depth <= Limits.maxCallDepth else {
            Self.fail(path, "the schema is nested too deeply to check", &errors)
            return
        }
        let pairs: [(String, JSONValue)]
        switch schema {
        case .bool(true):
            return
        case .bool(false):
            Self.fail(path, "no value is allowed here", &errors)
            return
        case .object(let p):
            pairs = p
        default:
            Self.fail(path, "the schema is invalid (\(schema.kindName) instead of an object)", &errors)
            return
        }
        if pairs.isEmpty { return }
        let kw = Keywords(pairs)
        if let ref = kw.ref {
            followRef(ref, value, path: path, depth: depth, level: level, refs: refs, into: &errors)
        }
        guard checkType(kw, value, path: path, into: &errors) else { return }
        switch value {
        case .number(let text):
            checkNumber(text, kw, path: path, into: &errors)
        case .string(let s):
            checkString(s, kw, path: path, into: &errors)
        case .array(let items):
            checkArray(items, kw, path: path, depth: depth, level: level, into: &errors)
        case .object(let members):
            checkObject(members, kw, path: path, depth: depth, level: level, into: &errors)
        default:
            break
        }
        if kw.allOf != nil || kw.anyOf != nil || kw.oneOf != nil || kw.not != nil {
            checkCombinators(kw, value, path: path, depth: depth, level: level, refs: refs, into: &errors)
        }
    }

    /// `type`, `enum` and `const`; false when the type is wrong (nothing else is worth reporting then).
    /// (Each keyword group has its own function to keep the recursive frame of `check` small.)
    func checkType(_ kw: Keywords, _ value: JSONValue, path: String, into errors: inout [String]) -> Bool {
        if let type = kw.type, let names = Self.typeNames(type), !names.contains(where: { Self.matches($0, value) }) {
            Self.fail(path, "expected \(Self.describe(types: names)), got \(value.kindName)", &errors)
            return false
        }
        if case .array(let options)? = kw.enumValues, !options.contains(where: { Self.equal(value, $0) }) {
            let shown = options.prefix(8).map(Self.describe(value:)).joined(separator: ", ")
            Self.fail(path, "must be one of: \(shown)\(options.count > 8 ? ", …" : "")", &errors)
        }
        if let c = kw.const, !Self.equal(value, c) {
            Self.fail(path, "must be \(Self.describe(value: c))", &errors)
        }
        return true
    }

    /// `allOf`, `anyOf`, `oneOf`, `not`.
    mutating func checkCombinators(
        _ kw: Keywords, _ value: JSONValue, path: String, depth: Int, level: Int, refs: Int,
        into errors: inout [String]
    ) {
        if case .array(let subs)? = kw.allOf {
            for sub in subs {
                check(sub, value, path: path, depth: depth + 1, level: level, refs: refs, into: &errors)
            }
        }
        if case .array(let subs)? = kw.anyOf, !subs.isEmpty {
            var failures: [[String]] = []
            for sub in subs {
                var e: [String] = []
                check(sub, value, path: path, depth: depth + 1, level: level, refs: refs, into: &e)
                if e.isEmpty {
                    failures.removeAll()
                    break
                }
                failures.append(e)
            }
            if failures.count == subs.count {
                reportAlternatives(subs, failures, value, path: path, into: &errors)
            }
        }
        if case .array(let subs)? = kw.oneOf, !subs.isEmpty {
            var failures: [[String]] = []
            var passed = 0
            for sub in subs {
                var e: [String] = []
                check(sub, value, path: path, depth: depth + 1, level: level, refs: refs, into: &e)
                if e.isEmpty { passed += 1 } else { failures.append(e) }
            }
            if passed == 0 {
                reportAlternatives(subs, failures, value, path: path, into: &errors)
            } else if passed > 1 {
                Self.fail(path, "matches \(passed) of the alternatives in oneOf, not exactly one", &errors)
            }
        }
        if let sub = kw.not {
            var e: [String] = []
            check(sub, value, path: path, depth: depth + 1, level: level, refs: refs, into: &e)
            if e.isEmpty { Self.fail(path, "must not match the schema in \"not\"", &errors) }
        }
    }

    mutating func followRef(
        _ ref: JSONValue, _ value: JSONValue, path: String, depth: Int, level: Int, refs: Int,
        into errors: inout [String]
    ) {
        guard case .string(let r) = ref else {
            Self.fail(path, "the schema has an invalid $ref", &errors)
            return
        }
        guard refs < Limits.maxRefChain else {
            Self.fail(path, "too many $refs in a row (a reference cycle?) at \"\(r.prefix(80))\"", &errors)
            return
        }
        guard let target = resolve(r) else {
            Self.fail(path, "the schema's $ref \"\(r.prefix(80))\" cannot be resolved", &errors)
            return
        }
        check(target, value, path: path, depth: depth + 1, level: level, refs: refs + 1, into: &errors)
    }

    /// No alternative of an `anyOf`/`oneOf` matched. When exactly one alternative accepts the value's type, its
    /// problems are the useful ones (`Optional[Model]` given a bad model); otherwise a summary.
    func reportAlternatives(
        _ subs: [JSONValue], _ failures: [[String]], _ value: JSONValue, path: String, into errors: inout [String]
    ) {
        var plausible: [Int] = []
        var types: [String] = []
        var allTyped = true
        for (i, sub) in subs.enumerated() {
            if let names = declaredTypes(sub) {
                for name in names where !types.contains(name) { types.append(name) }
                if names.contains(where: { Self.matches($0, value) }) { plausible.append(i) }
            } else {
                allTyped = false
                plausible.append(i)
            }
        }
        if plausible.count == 1, plausible[0] < failures.count, failures.count == subs.count {
            for e in failures[plausible[0]] where errors.count < Limits.maxErrors { errors.append(e) }
        } else if allTyped, plausible.isEmpty {
            Self.fail(path, "expected \(Self.describe(types: types)), got \(value.kindName)", &errors)
        } else {
            Self.fail(path, "does not match any of the allowed alternatives", &errors)
        }
    }

    /// The `type` names a schema declares, following `$ref`s a few steps; nil when it declares none.
    func declaredTypes(_ schema: JSONValue) -> [String]? {
        var s = schema
        for _ in 0..<8 {
            guard case .object = s else { return nil }
            if let t = s["type"] { return Self.typeNames(t) }
            guard case .string(let r)? = s["$ref"], let target = resolveUncached(r) else { return nil }
            s = target
        }
        return nil
    }

    /// Bounds and `multipleOf`, on the exact values (``JSONNumber``: the value Cedar decides on and the upstream gets).
    func checkNumber(_ text: String, _ kw: Keywords, path: String, into errors: inout [String]) {
        guard let x = JSONNumber(text) else {
            Self.fail(path, "the number is out of range", &errors)
            return
        }
        if let m = Self.exact(kw.minimum) {
            if kw.exclusiveMinimum == .bool(true) {
                if !(x > m) { Self.fail(path, "must be greater than \(m.text)", &errors) }
            } else if !(x >= m) {
                Self.fail(path, "must be at least \(m.text)", &errors)
            }
        }
        if let m = Self.exact(kw.exclusiveMinimum), !(x > m) {
            Self.fail(path, "must be greater than \(m.text)", &errors)
        }
        if let m = Self.exact(kw.maximum) {
            if kw.exclusiveMaximum == .bool(true) {
                if !(x < m) { Self.fail(path, "must be less than \(m.text)", &errors) }
            } else if !(x <= m) {
                Self.fail(path, "must be at most \(m.text)", &errors)
            }
        }
        if let m = Self.exact(kw.exclusiveMaximum), !(x < m) {
            Self.fail(path, "must be less than \(m.text)", &errors)
        }
        if let m = Self.exact(kw.multipleOf), m > JSONNumber.zero {
            switch x.isMultiple(of: m) {
            case true?: break
            case false?: Self.fail(path, "must be a multiple of \(m.text)", &errors)
            case nil: Self.fail(path, "cannot be checked against multipleOf \(m.text) (too many digits)", &errors)
            }
        }
    }

    mutating func checkString(_ s: String, _ kw: Keywords, path: String, into errors: inout [String]) {
        let minLength = Self.count(kw.minLength)
        let maxLength = Self.count(kw.maxLength)
        if minLength != nil || maxLength != nil {
            let length = s.unicodeScalars.count
            if let m = minLength, length < m {
                Self.fail(path, "must be at least \(m) characters long", &errors)
            }
            if let m = maxLength, length > m {
                Self.fail(path, "must be at most \(m) characters long", &errors)
            }
        }
        if case .string(let p)? = kw.pattern {
            switch regex(p) {
            case .failure(let refused):
                Self.fail(path, "the schema's pattern is not supported: \(refused.reason)", &errors)
            case .success(let re):
                if s.utf8.count > Limits.maxPatternBytes {
                    Self.fail(
                        path,
                        "the string is too long (over \(Limits.maxPatternBytes) bytes) to check against its pattern",
                        &errors)
                } else if search(re, s) == false {
                    Self.fail(path, "does not match the pattern \"\(p.prefix(100))\"", &errors)
                }
            }
        }
    }

    mutating func checkArray(
        _ items: [JSONValue], _ kw: Keywords, path: String, depth: Int, level: Int, into errors: inout [String]
    ) {
        if let m = Self.count(kw.minItems), items.count < m {
            Self.fail(path, "must have at least \(m) items", &errors)
        }
        if let m = Self.count(kw.maxItems), items.count > m {
            Self.fail(path, "must have at most \(m) items", &errors)
        }
        // Positional schemas: `prefixItems`, or the older array form of `items` (with `additionalItems`).
        var positional: [JSONValue] = []
        var rest: JSONValue?
        if case .array(let p)? = kw.prefixItems {
            positional = p
            rest = kw.items
        } else if case .array(let p)? = kw.items {
            positional = p
            rest = kw.additionalItems
        } else {
            rest = kw.items
        }
        for (i, item) in items.enumerated() {
            guard errors.count < Limits.maxErrors, !exhausted else { break }
            let sub: JSONValue
            if i < positional.count {
                sub = positional[i]
            } else if let r = rest {
                sub = r
            } else {
                break
            }
            if case .bool(false) = sub, i >= positional.count {
                Self.fail(path, "must have at most \(positional.count) items", &errors)
                break
            }
            check(sub, item, path: path + "/" + String(i), depth: depth + 1, level: level + 1, refs: 0, into: &errors)
        }
        if kw.uniqueItems == .bool(true), items.count > 1 {
            var seen = Set<[UInt8]>()
            for (i, item) in items.enumerated() {
                var key: [UInt8] = []
                guard Self.canonical(item, into: &key, depth: 0) else {
                    Self.fail(path + "/" + String(i), "the value is nested too deeply to compare", &errors)
                    break
                }
                if !seen.insert(key).inserted {
                    Self.fail(path + "/" + String(i), "duplicate item (the items must be unique)", &errors)
                    break
                }
            }
        }
    }

    mutating func checkObject(
        _ members: [(String, JSONValue)], _ kw: Keywords, path: String, depth: Int, level: Int,
        into errors: inout [String]
    ) {
        if let m = Self.count(kw.minProperties), members.count < m {
            Self.fail(path, "must have at least \(m) properties", &errors)
        }
        if let m = Self.count(kw.maxProperties), members.count > m {
            Self.fail(path, "must have at most \(m) properties", &errors)
        }
        var present: [String: JSONValue] = [:]
        present.reserveCapacity(members.count)
        for (k, v) in members where present[k] == nil { present[k] = v }

        var known = Set<String>()
        if case .object(let props)? = kw.properties {
            for (name, sub) in props {
                known.insert(name)
                guard let v = present[name] else { continue }
                guard errors.count < Limits.maxErrors, !exhausted else { return }
                check(sub, v, path: Self.child(path, name), depth: depth + 1, level: level + 1, refs: 0, into: &errors)
            }
        }
        if case .array(let names)? = kw.required {
            for case .string(let name) in names where present[name] == nil {
                Self.fail(Self.child(path, name), "required property is missing", &errors)
            }
        }
        var patterns: [(LinearRegex, JSONValue)] = []
        if case .object(let pp)? = kw.patternProperties {
            for (p, sub) in pp {
                switch regex(p) {
                case .success(let re):
                    patterns.append((re, sub))
                case .failure(let refused):
                    let message = "the schema's pattern is not supported: \(refused.reason) (in patternProperties)"
                    Self.fail(path, message, &errors)
                }
            }
        }
        guard !patterns.isEmpty || kw.additionalProperties != nil else { return }
        var reported = Set<String>()
        for (k, v) in members {
            guard errors.count < Limits.maxErrors, !exhausted else { return }
            guard reported.insert(k).inserted else { continue }
            let childPath = Self.child(path, k)
            var matched = false
            if !patterns.isEmpty {
                // A name too long to match is refused rather than let past its subschemas.
                guard k.utf8.count <= Limits.maxPatternBytes else {
                    Self.fail(
                        childPath,
                        "the property name is too long (over \(Limits.maxPatternBytes) bytes) to check against the "
                            + "schema's patternProperties", &errors)
                    continue
                }
                for (re, sub) in patterns {
                    guard let found = search(re, k) else { return }
                    guard found else { continue }
                    matched = true
                    check(sub, v, path: childPath, depth: depth + 1, level: level + 1, refs: 0, into: &errors)
                }
            }
            guard !matched, !known.contains(k), let extra = kw.additionalProperties else { continue }
            if case .bool(false) = extra {
                Self.fail(childPath, "property is not allowed (no additional properties)", &errors)
            } else {
                check(extra, v, path: childPath, depth: depth + 1, level: level + 1, refs: 0, into: &errors)
            }
        }
    }

    // MARK: - References and patterns

    /// Resolves a local reference (`#`, `#/$defs/<name>`, `#/definitions/<name>`, any JSON pointer into the root).
    mutating func resolve(_ ref: String) -> JSONValue? {
        if let hit = refCache[ref] { return hit }
        guard let target = resolveUncached(ref) else { return nil }
        refCache[ref] = target
        return target
    }

    func resolveUncached(_ ref: String) -> JSONValue? {
        guard ref.hasPrefix("#") else { return nil }
        let pointer = ref.dropFirst()
        if pointer.isEmpty { return root }
        guard pointer.hasPrefix("/") else { return nil }
        var node = root
        for raw in pointer.dropFirst().split(separator: "/", omittingEmptySubsequences: false) {
            var token = String(raw)
            if token.contains("%"), let decoded = token.removingPercentEncoding { token = decoded }
            if token.contains("~") {
                token = token.replacingOccurrences(of: "~1", with: "/").replacingOccurrences(of: "~0", with: "~")
            }
            switch node {
            case .object:
                guard let next = node[token] else { return nil }
                node = next
            case .array(let items):
                guard let i = Int(token), i >= 0, i < items.count else { return nil }
                node = items[i]
            default:
                return nil
            }
        }
        return node
    }

    /// The compiled pattern, or why it is refused.
    mutating func regex(_ pattern: String) -> Result<LinearRegex, LinearRegex.Unsupported> {
        let key = Array(pattern.utf8)
        if let hit = compiled[key] ?? regexes[key] { return hit }
        let result = Self.compile(pattern)
        regexes[key] = result
        return result
    }

    static func compile(_ pattern: String) -> Result<LinearRegex, LinearRegex.Unsupported> {
        do throws(LinearRegex.Unsupported) {
            let re = try LinearRegex(pattern)
            return .success(re)
        } catch {
            return .failure(error)
        }
    }

    /// Whether `re` matches somewhere in `s` (JSON Schema patterns are unanchored); nil, with the run exhausted, when
    /// the validation's pattern-matching work runs out.
    mutating func search(_ re: LinearRegex, _ s: String) -> Bool? {
        guard let found = re.matches(s, budget: &patternWork) else {
            exhausted = true
            return nil
        }
        return found
    }

    // MARK: - Values

    /// The names in a `type` keyword (a string or an array of strings); nil when it is neither.
    static func typeNames(_ type: JSONValue) -> [String]? {
        switch type {
        case .string(let name):
            return [name]
        case .array(let items):
            let names = items.compactMap { item -> String? in
                if case .string(let s) = item { return s }
                return nil
            }
            return names.count == items.count ? names : nil
        default:
            return nil
        }
    }

    static func matches(_ type: String, _ value: JSONValue) -> Bool {
        switch value {
        case .object: type == "object"
        case .array: type == "array"
        case .string: type == "string"
        case .bool: type == "boolean"
        case .null: type == "null"
        case .number(let text): type == "number" || (type == "integer" && isInteger(text))
        }
    }

    /// An integer: an integral value, whatever its spelling (`1`, `1.0`, `1e3`, `10e-1`), exactly.
    static func isInteger(_ text: String) -> Bool {
        JSONNumber(text)?.isIntegral ?? false
    }

    static func describe(types: [String]) -> String {
        let names = types.map { t -> String in
            switch t {
            case "null": "null"
            case "object", "array", "integer": "an \(t)"
            default: "a \(t.prefix(40))"
            }
        }
        guard names.count > 1, let last = names.last else { return names.first ?? "nothing" }
        return names.dropLast().joined(separator: ", ") + " or " + last
    }

    static func describe(value: JSONValue) -> String {
        switch value {
        case .null: "null"
        case .bool(let b): b ? "true" : "false"
        case .number(let n): String(n.prefix(40))
        case .string(let s):
            s.utf8.count > 60 ? "\"\(s.prefix(60))…\"" : "\"\(s)\""
        default: value.kindName
        }
    }

    /// A numeric keyword's exact value.
    static func exact(_ v: JSONValue?) -> JSONNumber? {
        guard case .number(let text)? = v else { return nil }
        return JSONNumber(text)
    }

    static func number(_ v: JSONValue?) -> Double? {
        guard case .number(let text)? = v, let d = Double(text), !d.isNaN else { return nil }
        return d
    }

    /// A non-negative integer keyword (`minLength`, `maxItems`, …).
    static func count(_ v: JSONValue?) -> Int? {
        guard let d = number(v), d.isFinite, d >= 0, d < 9e18 else { return nil }
        return Int(exactly: d.rounded(.down))
    }

    /// Structural equality, numbers by value, object keys in any order; false past 128 levels.
    static func equal(_ a: JSONValue, _ b: JSONValue, depth: Int = 0) -> Bool {
        guard depth < 128 else { return false }
        switch (a, b) {
        case (.null, .null):
            return true
        case (.bool(let x), .bool(let y)):
            return x == y
        case (.number(let x), .number(let y)):
            if x == y { return true }
            guard let a = JSONNumber(x), let b = JSONNumber(y) else { return false }
            return a == b
        case (.string(let x), .string(let y)):
            return x.utf8.elementsEqual(y.utf8)
        case (.array(let x), .array(let y)):
            guard x.count == y.count else { return false }
            for (u, v) in zip(x, y) where !equal(u, v, depth: depth + 1) { return false }
            return true
        case (.object(let x), .object(let y)):
            guard x.count == y.count else { return false }
            for (k, u) in x {
                guard let v = y.first(where: { $0.0.utf8.elementsEqual(k.utf8) })?.1, equal(u, v, depth: depth + 1)
                else { return false }
            }
            return true
        default:
            return false
        }
    }

    /// Appends a byte key equal for values `equal` calls equal; false when the value is nested too deeply.
    static func canonical(_ v: JSONValue, into out: inout [UInt8], depth: Int) -> Bool {
        guard depth < 128 else { return false }
        switch v {
        case .null:
            out.append(0x6E)
        case .bool(let b):
            out.append(b ? 0x74 : 0x66)
        case .number(let text):
            out.append(0x23)
            if let n = JSONNumber(text) {
                out.append(contentsOf: n.text.utf8)
            } else {
                // Out of range: kept apart from every canonical spelling.
                out.append(0x21)
                out.append(contentsOf: text.utf8)
            }
            out.append(0x3B)
        case .string(let s):
            appendCounted(s, to: &out)
        case .array(let items):
            out.append(0x5B)
            for item in items {
                guard canonical(item, into: &out, depth: depth + 1) else { return false }
            }
            out.append(0x5D)
        case .object(let pairs):
            out.append(0x7B)
            for (k, x) in pairs.sorted(by: { $0.0.utf8.lexicographicallyPrecedes($1.0.utf8) }) {
                appendCounted(k, to: &out)
                guard canonical(x, into: &out, depth: depth + 1) else { return false }
            }
            out.append(0x7D)
        }
        return true
    }

    static func appendCounted(_ s: String, to out: inout [UInt8]) {
        out.append(0x22)
        out.append(contentsOf: String(s.utf8.count).utf8)
        out.append(0x3A)
        out.append(contentsOf: s.utf8)
    }
}
