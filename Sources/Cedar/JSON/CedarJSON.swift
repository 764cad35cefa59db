/// Conversions between Cedar's JSON formats and Cedar values: entity references, attribute values with the
/// `__entity` and `__extn` escapes, entity lists, contexts and requests.
public enum CedarJSON {
    /// Decodes an entity reference: `{"type": "T", "id": "x"}` or `{"__entity": {"type": "T", "id": "x"}}`.
    public static func entityUID(_ json: JSONValue, _ what: String = "entity reference") throws(CedarError) -> EntityUID
    {
        guard case .object(let pairs) = json else {
            throw CedarError(.json, "\(what) must be an object with \"type\" and \"id\", got \(json.kindName)")
        }
        if pairs.count == 1, pairs[0].0 == "__entity" {
            return try entityUID(pairs[0].1, what)
        }
        guard case .string(let type)? = json["type"], case .string(let id)? = json["id"] else {
            throw CedarError(.json, "\(what) must have string fields \"type\" and \"id\"")
        }
        for (k, _) in pairs where k != "type" && k != "id" {
            throw CedarError(.json, "\(what) has an unexpected field \"\(k.prefix(80))\"")
        }
        guard let t = EntityType.parse(type) else {
            throw CedarError(.json, "\(what) has an invalid entity type \"\(type.prefix(80))\"")
        }
        return EntityUID(type: t, id: id)
    }

    /// Decodes a Cedar value from JSON. Objects are records unless they are an `__entity` or `__extn` escape.
    public static func value(_ json: JSONValue) throws(CedarError) -> Value {
        switch json {
        case .null:
            throw CedarError(.json, "null is not a Cedar value")
        case .bool(let b):
            return .bool(b)
        case .number(let text):
            guard let n = Int64(text) else {
                throw CedarError(.json, "number \(text.prefix(40)) is not a Cedar Long (a 64-bit integer)")
            }
            return .long(n)
        case .string(let s):
            return .string(s)
        case .array(let items):
            var s = Set<Value>(minimumCapacity: items.count)
            for x in items { s.insert(try value(x)) }
            return .set(s)
        case .object(let pairs):
            if pairs.count == 1 {
                switch pairs[0].0 {
                case "__entity":
                    return .entity(try entityUID(pairs[0].1))
                case "__extn":
                    return try extensionValue(pairs[0].1)
                case "__expr":
                    throw CedarError(.json, "the __expr escape is not supported: use __entity or __extn")
                default: break
                }
            }
            var r = [String: Value](minimumCapacity: pairs.count)
            for (k, v) in pairs {
                if k == "__entity" || k == "__extn" {
                    throw CedarError(.json, "a \(k) escape must be the only field of its object")
                }
                r[k] = try value(v)
            }
            return .record(r)
        }
    }

    /// Decodes `{"fn": "ip", "arg": "10.0.0.1"}` or `{"fn": "offset", "args": [..., ...]}`.
    static func extensionValue(_ json: JSONValue) throws(CedarError) -> Value {
        guard case .object(let pairs) = json, case .string(let fn)? = json["fn"] else {
            throw CedarError(.json, "an __extn escape must be an object with a string field \"fn\"")
        }
        var args: [Value] = []
        for (k, v) in pairs {
            switch k {
            case "fn": continue
            case "arg": args.append(try value(v))
            case "args":
                guard case .array(let items) = v else {
                    throw CedarError(.json, "\"args\" of an __extn escape must be an array")
                }
                for x in items { args.append(try value(x)) }
            default:
                throw CedarError(.json, "an __extn escape has an unexpected field \"\(k.prefix(80))\"")
            }
        }
        guard (json["arg"] == nil) != (json["args"] == nil) else {
            throw CedarError(.json, "an __extn escape needs exactly one of \"arg\" and \"args\"")
        }
        do throws(CedarError) {
            return try Extensions.construct(fn, args)
        } catch {
            throw CedarError(.json, "invalid __extn escape: \(error.message)")
        }
    }

    /// Decodes a record (a context or an attribute map).
    public static func record(_ json: JSONValue, _ what: String) throws(CedarError) -> [String: Value] {
        guard case .object = json else { throw CedarError(.json, "\(what) must be an object, got \(json.kindName)") }
        guard case .record(let r) = try value(json) else {
            throw CedarError(.json, "\(what) must be a record, not an escape")
        }
        return r
    }

    /// Decodes one entity: `{"uid": ..., "attrs": {...}, "parents": [...], "tags": {...}}`.
    public static func entity(_ json: JSONValue) throws(CedarError) -> Entity {
        guard case .object(let pairs) = json, let uidJSON = json["uid"] else {
            throw CedarError(.entities, "an entity must be an object with a \"uid\"")
        }
        let uid = try entityUID(uidJSON, "entity uid")
        var attrs: [String: Value] = [:]
        var parents = Set<EntityUID>()
        var tags: [String: Value] = [:]
        do throws(CedarError) {
            for (k, v) in pairs {
                switch k {
                case "uid": continue
                case "attrs": attrs = try record(v, "\"attrs\"")
                case "tags": tags = try record(v, "\"tags\"")
                case "parents":
                    guard case .array(let items) = v else { throw CedarError(.json, "\"parents\" must be an array") }
                    for p in items { parents.insert(try entityUID(p, "parent")) }
                default:
                    throw CedarError(.json, "unexpected field \"\(k.prefix(80))\"")
                }
            }
        } catch {
            throw CedarError(.entities, "entity \(uid): \(error.message)")
        }
        return Entity(uid: uid, attributes: attrs, parents: parents, tags: tags)
    }

    /// Decodes an entity list (the Cedar entities JSON format) into an entity set.
    public static func entities(_ json: JSONValue) throws(CedarError) -> Entities {
        guard case .array(let items) = json else {
            throw CedarError(.entities, "entities JSON must be an array of entities, got \(json.kindName)")
        }
        var list: [Entity] = []
        list.reserveCapacity(items.count)
        for item in items { list.append(try entity(item)) }
        return try Entities(list)
    }

    /// Decodes entities from JSON text.
    public static func entities(text: String) throws(CedarError) -> Entities {
        try entities(JSONValue.parse(text))
    }

    /// Decodes a request: `{"principal": ..., "action": ..., "resource": ..., "context": {...}}`.
    public static func request(_ json: JSONValue) throws(CedarError) -> Request {
        guard case .object = json else { throw CedarError(.request, "a request must be an object") }
        guard let p = json["principal"], let a = json["action"], let r = json["resource"] else {
            throw CedarError(.request, "a request needs \"principal\", \"action\" and \"resource\"")
        }
        let context: [String: Value]
        if let c = json["context"], c != .null { context = try record(c, "\"context\"") } else { context = [:] }
        return Request(
            principal: try entityUID(p, "principal"), action: try entityUID(a, "action"),
            resource: try entityUID(r, "resource"), context: context)
    }

    // MARK: - Encoding

    /// Encodes an entity reference as `{"type": ..., "id": ...}`.
    public static func json(_ uid: EntityUID) -> JSONValue {
        .object([("type", .string(uid.type.name)), ("id", .string(uid.id))])
    }

    /// Encodes a value in the JSON value format (with `__entity` and `__extn` escapes; sets and records sorted).
    public static func json(_ v: Value) -> JSONValue {
        switch v {
        case .bool(let b): return .bool(b)
        case .long(let n): return .number(String(n))
        case .string(let s): return .string(s)
        case .entity(let uid): return .object([("__entity", json(uid))])
        case .set(let s): return .array(s.map(json).sorted { $0.serialized < $1.serialized })
        case .record(let r): return .object(r.keys.sorted().map { ($0, json(r[$0]!)) })
        case .ext(let e):
            let (fn, arg): (String, String)
            switch e {
            case .ipaddr(let x): (fn, arg) = ("ip", x.description)
            case .decimal(let x): (fn, arg) = ("decimal", x.description)
            case .duration(let x): (fn, arg) = ("duration", x.description)
            case .datetime(let x) where x.isParsableAsText: (fn, arg) = ("datetime", x.description)
            case .datetime(let x):
                // Outside the range that datetime() parses: the epoch offset by a duration, as Cedar itself writes it.
                let epoch = JSONValue.object([
                    ("__extn", .object([("fn", .string("datetime")), ("arg", .string("1970-01-01"))]))
                ])
                let offset = JSONValue.object([
                    ("__extn", .object([("fn", .string("duration")), ("arg", .string("\(x.milliseconds)ms"))]))
                ])
                return .object([("__extn", .object([("fn", .string("offset")), ("args", .array([epoch, offset]))]))])
            }
            return .object([("__extn", .object([("fn", .string(fn)), ("arg", .string(arg))]))])
        }
    }
}
