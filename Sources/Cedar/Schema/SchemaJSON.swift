/// The JSON schema syntax: `{"<namespace>": {"commonTypes": {...}, "entityTypes": {...}, "actions": {...}}}`, types
/// as `{"type": "Boolean" | "Long" | "String" | "Set" (element) | "Record" (attributes, each with an optional
/// "required") | "Entity" (name) | "Extension" (name) | "EntityOrCommon" (name) | <a common type's name>}`.
extension Schema {
    /// Parses a schema in the JSON syntax.
    public init(json: JSONValue) throws(CedarError) {
        guard case .object(let namespaces) = json else { throw CedarError(.schema, "a JSON schema must be an object") }
        var decls = SchemaDeclarations()
        for (ns, body) in namespaces {
            guard case .object(let sections) = body else {
                throw CedarError(.schema, "namespace \"\(ns.prefix(80))\" must be an object")
            }
            for (key, value) in sections {
                guard case .object(let items) = value else {
                    if key == "annotations" { continue }
                    throw CedarError(.schema, "\(ns)::\(key) must be an object")
                }
                switch key {
                case "commonTypes":
                    for (name, t) in items {
                        decls.commonTypes[SchemaDeclarations.qualify(ns, name)] = (ns, try Self.jsonType(t), nil)
                    }
                case "entityTypes":
                    for (name, e) in items { decls.entities.append(try Self.jsonEntity(ns, name, e)) }
                case "actions":
                    for (name, a) in items { decls.actions.append(try Self.jsonAction(ns, name, a)) }
                case "annotations": continue
                default: throw CedarError(.schema, "namespace \"\(ns)\": unknown section \"\(key.prefix(80))\"")
                }
            }
        }
        self = try decls.resolve()
    }

    /// Parses a schema from JSON text.
    public init(jsonText: String) throws(CedarError) {
        do {
            try self.init(json: try JSONValue.parse(jsonText))
        } catch {
            throw CedarError(.schema, error.message, at: error.location)
        }
    }

    static func names(_ v: JSONValue?, _ what: String) throws(CedarError) -> [String] {
        guard let v else { return [] }
        guard case .array(let items) = v else { throw CedarError(.schema, "\(what) must be a list of names") }
        var out: [String] = []
        for i in items {
            guard case .string(let s) = i else { throw CedarError(.schema, "\(what) must be a list of names") }
            out.append(s)
        }
        return out
    }

    static func jsonEntity(_ ns: String, _ name: String, _ e: JSONValue) throws(CedarError)
        -> SchemaDeclarations.EntityDecl
    {
        guard case .object = e else { throw CedarError(.schema, "entity type \(name) must be an object") }
        var enumIDs: [String]?
        if let en = e["enum"] { enumIDs = try names(en, "the enum of \(name)") }
        return SchemaDeclarations.EntityDecl(
            namespace: ns, name: name, memberOf: try names(e["memberOfTypes"], "memberOfTypes").map { ($0, nil) },
            shape: try e["shape"].map { (t) throws(CedarError) in try jsonType(t) },
            tags: try e["tags"].map { (t) throws(CedarError) in try jsonType(t) }, enumIDs: enumIDs, location: nil)
    }

    static func jsonAction(_ ns: String, _ name: String, _ a: JSONValue) throws(CedarError)
        -> SchemaDeclarations.ActionDecl
    {
        guard case .object = a else { throw CedarError(.schema, "action \(name) must be an object") }
        var memberOf: [(String?, String, TextLocation?)] = []
        if case .array(let groups)? = a["memberOf"] {
            for g in groups {
                guard case .string(let id)? = g["id"] else {
                    throw CedarError(.schema, "action \(name): memberOf entries need an \"id\"")
                }
                var type: String?
                if case .string(let t)? = g["type"] { type = t }
                memberOf.append((type, id, nil))
            }
        }
        var decl = SchemaDeclarations.ActionDecl(
            namespace: ns, name: name, memberOf: memberOf, appliesTo: false, principals: [], resources: [],
            context: nil, location: nil)
        if let applies = a["appliesTo"], applies != .null {
            decl.appliesTo = true
            decl.principals = try names(applies["principalTypes"], "principalTypes").map { ($0, nil) }
            decl.resources = try names(applies["resourceTypes"], "resourceTypes").map { ($0, nil) }
            decl.context = try applies["context"].map { (t) throws(CedarError) in try jsonType(t) }
        }
        return decl
    }

    static func jsonType(_ t: JSONValue) throws(CedarError) -> SchemaTypeExpr {
        guard case .string(let kind)? = t["type"] else {
            throw CedarError(.schema, "a type must be an object with a string \"type\"")
        }
        switch kind {
        case "Boolean", "Bool": return .primitive(.bool)
        case "Long": return .primitive(.long)
        case "String": return .primitive(.string)
        case "Set":
            guard let element = t["element"] else { throw CedarError(.schema, "a Set type needs an \"element\"") }
            return .set(try jsonType(element))
        case "Record":
            var attrs: [(String, SchemaTypeExpr, Bool)] = []
            if case .object(let pairs)? = t["attributes"] {
                for (name, a) in pairs {
                    let required: Bool
                    switch a["required"] {
                    case nil: required = true
                    case .bool(let b)?: required = b
                    default: throw CedarError(.schema, "attribute \(name): \"required\" must be a boolean")
                    }
                    attrs.append((name, try jsonType(a), required))
                }
            }
            return .record(attrs)
        case "Entity":
            guard case .string(let name)? = t["name"] else { throw CedarError(.schema, "an Entity type needs a name") }
            return .entity(name, nil)
        case "Extension":
            guard case .string(let name)? = t["name"] else {
                throw CedarError(.schema, "an Extension type needs a name")
            }
            return .ext(name, nil)
        case "EntityOrCommon":
            guard case .string(let name)? = t["name"] else {
                throw CedarError(.schema, "an EntityOrCommon type needs a name")
            }
            return .name(name, nil)
        default:
            return .name(kind, nil)
        }
    }
}
