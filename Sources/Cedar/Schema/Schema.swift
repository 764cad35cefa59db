/// A Cedar schema: the entity types (their parents, attributes, tags and enumerated ids) and the actions (their
/// groups, the principal and resource types they apply to and their context), with every type name resolved.
///
/// Read from either syntax the reference engine reads: the human-readable `.cedarschema`
/// (``Schema/init(text:file:)``) and the JSON form (``Schema/init(json:)``), both with namespaces and common types.
/// Used for schema-based parsing of entities and contexts (``Schema/entities(_:)``, ``Schema/context(_:action:)``):
/// entity references and extension values written without the `__entity` / `__extn` escapes, attributes checked
/// against their declared types, and the actions' entities (their group hierarchy) added.
public struct Schema: Sendable {
    /// The type of an attribute, a context, a tag or a set element.
    public indirect enum AttributeType: Sendable, Hashable, CustomStringConvertible {
        case bool, long, string
        case set(AttributeType)
        /// A record with exactly these attributes.
        case record([String: Attribute])
        case entity(EntityType)
        /// An extension type: `ipaddr`, `decimal`, `datetime` or `duration`.
        case ext(String)
        /// Any value, not checked (what a schema cannot describe, such as an MCP tool call's arguments; set only by
        /// code, never by schema text).
        case dynamic

        public var description: String {
            switch self {
            case .bool: "Bool"
            case .long: "Long"
            case .string: "String"
            case .set(let t): "Set<\(t)>"
            case .record(let attrs):
                "{"
                    + attrs.keys.sorted().map { "\($0)\(attrs[$0]!.required ? "" : "?"): \(attrs[$0]!.type)" }
                    .joined(separator: ", ") + "}"
            case .entity(let t): t.description
            case .ext(let name): name
            case .dynamic: "__warden::Any"
            }
        }
    }

    /// A record attribute: its type and whether it must be present.
    public struct Attribute: Sendable, Hashable {
        public let type: AttributeType
        public let required: Bool

        public init(_ type: AttributeType, required: Bool = true) {
            self.type = type
            self.required = required
        }
    }

    /// An entity type's declaration.
    public struct EntityTypeInfo: Sendable, Hashable {
        public let name: EntityType
        /// The types its entities may have as parents.
        public var memberOf: [EntityType]
        public var attributes: [String: Attribute]
        /// The type of its tags' values; nil when it has no tags.
        public var tags: AttributeType?
        /// For an enumerated entity type, the only ids its entities may have.
        public var enumIDs: [String]?
    }

    /// An action's declaration.
    public struct ActionInfo: Sendable, Hashable {
        public let uid: EntityUID
        /// The action groups it is in.
        public var memberOf: [EntityUID]
        /// Whether it has an `appliesTo` (an action without one applies to nothing).
        public var appliesTo: Bool
        public var principals: [EntityType]
        public var resources: [EntityType]
        public var context: [String: Attribute]
    }

    public var entityTypes: [EntityType: EntityTypeInfo] = [:]
    public var actions: [EntityUID: ActionInfo] = [:]

    public init() {}

    /// The extension types and the constructor that makes each from a string.
    static let extensionConstructors = [
        "ipaddr": "ip", "decimal": "decimal", "datetime": "datetime", "duration": "duration",
    ]
}

// MARK: Building from declarations (both syntaxes)

/// A type as written, before its names are resolved.
indirect enum SchemaTypeExpr: Sendable {
    /// A name to resolve (common type, entity type or built-in), as written, in its namespace.
    case name(String, TextLocation?)
    /// The JSON syntax's explicit kinds.
    case entity(String, TextLocation?)
    case ext(String, TextLocation?)
    case primitive(Schema.AttributeType)
    case set(SchemaTypeExpr)
    case record([(String, SchemaTypeExpr, Bool)])
}

/// The declarations of one schema, in either syntax, gathered before resolution.
struct SchemaDeclarations {
    struct EntityDecl {
        var namespace: String
        var name: String
        var memberOf: [(String, TextLocation?)]
        var shape: SchemaTypeExpr?
        var tags: SchemaTypeExpr?
        var enumIDs: [String]?
        var location: TextLocation?
    }
    struct ActionDecl {
        var namespace: String
        var name: String
        /// Groups: (the action type as written or nil for this namespace's `Action`, the id).
        var memberOf: [(String?, String, TextLocation?)]
        var appliesTo: Bool
        var principals: [(String, TextLocation?)]
        var resources: [(String, TextLocation?)]
        var context: SchemaTypeExpr?
        var location: TextLocation?
    }
    var entities: [EntityDecl] = []
    var actions: [ActionDecl] = []
    /// Common types by qualified name.
    var commonTypes: [String: (namespace: String, type: SchemaTypeExpr, location: TextLocation?)] = [:]

    static func qualify(_ namespace: String, _ name: String) -> String {
        namespace.isEmpty ? name : namespace + "::" + name
    }

    static let primitives: [String: Schema.AttributeType] = [
        "Bool": .bool, "Boolean": .bool, "Long": .long, "String": .string,
    ]

    func error(_ message: String, _ at: TextLocation?) -> CedarError { CedarError(.schema, message, at: at) }

    /// The schema, with every name resolved; errors name what is undeclared, duplicated or cyclic.
    func resolve() throws(CedarError) -> Schema {
        var schema = Schema()
        var declaredEntities: Set<String> = []
        for e in entities {
            let q = Self.qualify(e.namespace, e.name)
            guard declaredEntities.insert(q).inserted else {
                throw error("entity type \(q) is declared twice", e.location)
            }
        }
        for (q, c) in commonTypes where declaredEntities.contains(q) {
            throw error("\(q) is declared both as a common type and as an entity type", c.location)
        }
        // Entity type names in `in`, `appliesTo` and `Entity` types: this namespace's first, then the empty one's.
        func entityType(_ written: String, _ ns: String, _ at: TextLocation?) throws(CedarError) -> EntityType {
            // A qualified name is absolute; a bare one is this namespace's, else the empty namespace's.
            var candidates = written.contains("::") ? [written] : [Self.qualify(ns, written)]
            if !ns.isEmpty && !written.contains("::") { candidates.append(written) }
            guard let q = candidates.first(where: declaredEntities.contains), let t = EntityType.parse(q) else {
                throw error("undeclared entity type \(written)", at)
            }
            return t
        }
        var resolving: Set<String> = []
        func resolveType(_ t: SchemaTypeExpr, _ ns: String) throws(CedarError) -> Schema.AttributeType {
            switch t {
            case .primitive(let p): return p
            case .set(let e): return .set(try resolveType(e, ns))
            case .record(let attrs):
                var out: [String: Schema.Attribute] = [:]
                for (name, type, required) in attrs {
                    guard out[name] == nil else { throw error("attribute \(name) is declared twice", nil) }
                    out[name] = Schema.Attribute(try resolveType(type, ns), required: required)
                }
                return .record(out)
            case .entity(let name, let at): return .entity(try entityType(name, ns, at))
            case .ext(let name, let at):
                let bare = name.hasPrefix("__cedar::") ? String(name.dropFirst(9)) : name
                guard Schema.extensionConstructors[bare] != nil else {
                    throw error("unknown extension type \(name)", at)
                }
                return .ext(bare)
            case .name(let name, let at):
                // A common type, then an entity type, in this namespace, then in the empty one, then a built-in.
                var order: [String] = name.contains("::") ? [name] : [Self.qualify(ns, name)]
                if !ns.isEmpty && !name.contains("::") { order.append(name) }
                for q in order {
                    if let c = commonTypes[q] {
                        guard resolving.insert(q).inserted else { throw error("common type \(q) refers to itself", at) }
                        defer { resolving.remove(q) }
                        return try resolveType(c.type, c.namespace)
                    }
                    if declaredEntities.contains(q), let t = EntityType.parse(q) { return .entity(t) }
                }
                let bare = name.hasPrefix("__cedar::") ? String(name.dropFirst(9)) : name
                if let p = Self.primitives[bare] { return p }
                if Schema.extensionConstructors[bare] != nil { return .ext(bare) }
                throw error("undeclared type \(name)", at)
            }
        }
        for e in entities {
            let name = EntityType.parse(Self.qualify(e.namespace, e.name))!
            var attributes: [String: Schema.Attribute] = [:]
            if let shape = e.shape {
                guard case .record(let attrs) = try resolveType(shape, e.namespace) else {
                    throw error("the shape of \(name) must be a record", e.location)
                }
                attributes = attrs
            }
            var memberOf: [EntityType] = []
            for (m, at) in e.memberOf { memberOf.append(try entityType(m, e.namespace, at)) }
            schema.entityTypes[name] = Schema.EntityTypeInfo(
                name: name, memberOf: memberOf, attributes: attributes,
                tags: try e.tags.map { (t) throws(CedarError) in try resolveType(t, e.namespace) }, enumIDs: e.enumIDs)
        }
        func actionType(_ ns: String) -> EntityType { EntityType.parse(Self.qualify(ns, "Action"))! }
        for a in actions {
            let uid = EntityUID(type: actionType(a.namespace), id: a.name)
            guard schema.actions[uid] == nil else { throw error("action \(uid) is declared twice", a.location) }
            var principals: [EntityType] = []
            for (p, at) in a.principals { principals.append(try entityType(p, a.namespace, at)) }
            var resources: [EntityType] = []
            for (r, at) in a.resources { resources.append(try entityType(r, a.namespace, at)) }
            var context: [String: Schema.Attribute] = [:]
            if let c = a.context {
                guard case .record(let attrs) = try resolveType(c, a.namespace) else {
                    throw error("the context of action \(a.name) must be a record", a.location)
                }
                context = attrs
            }
            var memberOf: [EntityUID] = []
            for (type, id, at) in a.memberOf {
                let t: EntityType
                if let type {
                    guard let parsed = EntityType.parse(type) else { throw error("invalid action type \(type)", at) }
                    t = parsed
                } else {
                    t = actionType(a.namespace)
                }
                memberOf.append(EntityUID(type: t, id: id))
            }
            schema.actions[uid] = Schema.ActionInfo(
                uid: uid, memberOf: memberOf, appliesTo: a.appliesTo, principals: principals, resources: resources,
                context: context)
        }
        // Every action group must be a declared action, and the hierarchy must not loop.
        for (uid, a) in schema.actions {
            for g in a.memberOf where schema.actions[g] == nil {
                throw error("action \(uid) is in \(g), which is not declared", nil)
            }
        }
        for uid in schema.actions.keys {
            var seen: Set<EntityUID> = [uid]
            var frontier = schema.actions[uid]!.memberOf
            while let g = frontier.popLast() {
                if g == uid { throw error("action \(uid) is in a cycle of action groups", nil) }
                if seen.insert(g).inserted { frontier.append(contentsOf: schema.actions[g]?.memberOf ?? []) }
            }
        }
        return schema
    }
}
