/// Schema-based parsing of entities and contexts, as the reference engine does it with a schema: each value is read
/// by its declared type, so an entity reference may be written `{"type": "T", "id": "x"}` and an extension value as
/// its constructor's string (`"10.0.0.1"` for an `ipaddr`), the escapes still being accepted; attributes are checked
/// (undeclared, missing required, wrong type), entity types and parents must be declared, enumerated ids listed, and
/// the actions' entities (their group hierarchy) come from the schema.
extension Schema {
    /// Reads `json` as a value of `type`; `path` names it in errors.
    public func value(_ json: JSONValue, as type: AttributeType, path: String) throws(CedarError) -> Value {
        func mismatch() -> CedarError {
            CedarError(.entities, "\(path): expected \(type), got \(json.kindName)")
        }
        switch type {
        case .dynamic:
            do throws(CedarError) {
                return try CedarJSON.value(json)
            } catch {
                throw CedarError(.entities, "\(path): \(error.message)")
            }
        case .bool:
            guard case .bool(let b) = json else { throw mismatch() }
            return .bool(b)
        case .long:
            guard case .number(let text) = json, let n = Int64(text) else { throw mismatch() }
            return .long(n)
        case .string:
            guard case .string(let s) = json else { throw mismatch() }
            return .string(s)
        case .set(let element):
            guard case .array(let items) = json else { throw mismatch() }
            var out = Set<Value>(minimumCapacity: items.count)
            for (i, item) in items.enumerated() { out.insert(try value(item, as: element, path: "\(path)[\(i)]")) }
            return .set(out)
        case .record(let attrs):
            guard case .object(let pairs) = json, !(pairs.count == 1 && pairs[0].0.hasPrefix("__")) else {
                throw mismatch()
            }
            return .record(try record(pairs, attrs, path: path))
        case .entity(let t):
            guard case .object = json else { throw mismatch() }
            let uid: EntityUID
            do throws(CedarError) {
                uid = try CedarJSON.entityUID(json, path)
            } catch {
                throw CedarError(.entities, error.message)
            }
            guard uid.type == t else {
                throw CedarError(.entities, "\(path): expected an entity of type \(t), got \(uid)")
            }
            return .entity(uid)
        case .ext(let name):
            let v: Value
            switch json {
            case .string(let s):
                do throws(CedarError) {
                    v = try Extensions.construct(Self.extensionConstructors[name]!, [.string(s)])
                } catch {
                    throw CedarError(.entities, "\(path): \(error.message)")
                }
            case .object:
                do throws(CedarError) {
                    v = try CedarJSON.value(json)
                } catch {
                    throw CedarError(.entities, "\(path): \(error.message)")
                }
            default: throw mismatch()
            }
            guard case .ext(let e) = v, Self.extensionName(e) == name else { throw mismatch() }
            return v
        }
    }

    static func extensionName(_ e: ExtensionValue) -> String {
        switch e {
        case .ipaddr: "ipaddr"
        case .decimal: "decimal"
        case .datetime: "datetime"
        case .duration: "duration"
        }
    }

    /// A record's attributes by their declarations: every required one present, none undeclared.
    func record(_ pairs: [(String, JSONValue)], _ attrs: [String: Attribute], path: String) throws(CedarError)
        -> [String: Value]
    {
        var out = [String: Value](minimumCapacity: pairs.count)
        for (k, v) in pairs {
            guard let a = attrs[k] else {
                throw CedarError(.entities, "\(path): attribute \(k.prefix(80)) is not declared in the schema")
            }
            out[k] = try value(v, as: a.type, path: path.isEmpty ? k : "\(path).\(k)")
        }
        for (k, a) in attrs where a.required && out[k] == nil {
            throw CedarError(.entities, "\(path): the required attribute \(k) is missing")
        }
        return out
    }

    /// One entity by the schema.
    public func entity(_ json: JSONValue) throws(CedarError) -> Entity {
        guard case .object(let pairs) = json, let uidJSON = json["uid"] else {
            throw CedarError(.entities, "an entity must be an object with a \"uid\"")
        }
        let uid = try CedarJSON.entityUID(uidJSON, "entity uid")
        guard let info = entityTypes[uid.type] else {
            throw CedarError(.entities, "entity \(uid): its type is not declared in the schema")
        }
        if let ids = info.enumIDs, !ids.contains(uid.id) {
            throw CedarError(.entities, "entity \(uid): \(uid.type) is an enumeration and has no such id")
        }
        var attrs: [String: Value] = [:]
        var parents = Set<EntityUID>()
        var tags: [String: Value] = [:]
        for (k, v) in pairs {
            switch k {
            case "uid": continue
            case "attrs":
                guard case .object(let a) = v else {
                    throw CedarError(.entities, "entity \(uid): attrs must be an object")
                }
                attrs = try record(a, info.attributes, path: "entity \(uid)")
            case "tags":
                guard case .object(let t) = v else {
                    throw CedarError(.entities, "entity \(uid): tags must be an object")
                }
                guard let tagType = info.tags else {
                    if t.isEmpty { continue }
                    throw CedarError(.entities, "entity \(uid): \(uid.type) has no tags in the schema")
                }
                for (name, tv) in t {
                    tags[name] = try value(tv, as: tagType, path: "entity \(uid) tag \(name.prefix(80))")
                }
            case "parents":
                guard case .array(let items) = v else {
                    throw CedarError(.entities, "entity \(uid): parents must be a list")
                }
                for p in items {
                    let parent = try CedarJSON.entityUID(p, "parent")
                    guard info.memberOf.contains(parent.type) else {
                        throw CedarError(.entities, "entity \(uid): \(parent) cannot be its parent by the schema")
                    }
                    parents.insert(parent)
                }
            default: throw CedarError(.entities, "entity \(uid): unexpected field \"\(k.prefix(80))\"")
            }
        }
        if pairs.first(where: { $0.0 == "attrs" }) == nil {
            attrs = try record([], info.attributes, path: "entity \(uid)")
        }
        return Entity(uid: uid, attributes: attrs, parents: parents, tags: tags)
    }

    /// The actions as entities, each with its groups as parents.
    public var actionEntities: [Entity] {
        actions.values.map { a in Entity(uid: a.uid, attributes: [:], parents: Set(a.memberOf), tags: [:]) }
    }

    /// An entity list by the schema, with the actions' entities added (an action given in the list must be declared
    /// and is taken from the schema).
    public func entities(_ json: JSONValue) throws(CedarError) -> Entities {
        guard case .array(let items) = json else {
            throw CedarError(.entities, "entities JSON must be an array of entities, got \(json.kindName)")
        }
        var list: [Entity] = []
        list.reserveCapacity(items.count + actions.count)
        for item in items {
            if let uidJSON = item["uid"], let uid = try? CedarJSON.entityUID(uidJSON), uid.type.isAction {
                guard actions[uid] != nil else {
                    throw CedarError(.entities, "entity \(uid): an action not declared in the schema")
                }
                continue
            }
            list.append(try entity(item))
        }
        list.append(contentsOf: actionEntities)
        return try Entities(list)
    }

    /// A request's context by its action's declaration.
    public func context(_ json: JSONValue, action: EntityUID) throws(CedarError) -> [String: Value] {
        guard let a = actions[action] else {
            throw CedarError(.request, "action \(action) is not declared in the schema")
        }
        guard case .object(let pairs) = json else {
            throw CedarError(.request, "the context must be an object, got \(json.kindName)")
        }
        do throws(CedarError) {
            return try record(pairs, a.context, path: "context")
        } catch {
            throw CedarError(.request, error.message)
        }
    }
}
