import Testing

@testable import Cedar

@Suite("Cedar schemas: both syntaxes, name resolution, schema-based entity and context parsing")
struct SchemaTests {
    static let text = """
        // Photos, in a namespace, with a common type, an enumeration, tags and action groups.
        namespace PhotoApp {
            type Meta = { created: datetime, "size bytes"?: Long };
            @doc("people")
            entity User in [Group] = { name: String, level: Long, manager?: User };
            entity Group;
            entity Color enum ["red", "green"];
            entity Photo in Album { owner: User, meta: Meta, colors: Set<Color>, from: ipaddr } tags String;
            entity Album;
            action read;
            action view, "view thumbnail" in [read] appliesTo {
                principal: [User],
                resource: Photo,
                context: { authenticated: Bool, score?: decimal },
            };
        }
        entity Admin;
        action "delete" appliesTo { principal: Admin, resource: PhotoApp::Photo };
        """

    static let json = #"""
        {"PhotoApp": {
          "commonTypes": {"Meta": {"type": "Record", "attributes": {
              "created": {"type": "Extension", "name": "datetime"},
              "size bytes": {"type": "Long", "required": false}}}},
          "entityTypes": {
            "User": {"memberOfTypes": ["Group"], "shape": {"type": "Record", "attributes": {
               "name": {"type": "String"}, "level": {"type": "Long"},
               "manager": {"type": "Entity", "name": "User", "required": false}}}},
            "Group": {},
            "Color": {"enum": ["red", "green"]},
            "Photo": {"memberOfTypes": ["Album"], "tags": {"type": "String"}, "shape": {"type": "Record", "attributes": {
               "owner": {"type": "EntityOrCommon", "name": "User"}, "meta": {"type": "Meta"},
               "colors": {"type": "Set", "element": {"type": "Entity", "name": "Color"}},
               "from": {"type": "Extension", "name": "ipaddr"}}}},
            "Album": {}},
          "actions": {
            "read": {},
            "view": {"memberOf": [{"id": "read"}], "appliesTo": {"principalTypes": ["User"], "resourceTypes": ["Photo"],
               "context": {"type": "Record", "attributes": {"authenticated": {"type": "Boolean"},
                 "score": {"type": "Extension", "name": "decimal", "required": false}}}}},
            "view thumbnail": {"memberOf": [{"id": "read"}], "appliesTo": {"principalTypes": ["User"],
               "resourceTypes": ["Photo"], "context": {"type": "Record", "attributes": {
                 "authenticated": {"type": "Boolean"},
                 "score": {"type": "Extension", "name": "decimal", "required": false}}}}}}},
         "": {"entityTypes": {"Admin": {}},
              "actions": {"delete": {"appliesTo": {"principalTypes": ["Admin"], "resourceTypes": ["PhotoApp::Photo"]}}}}}
        """#

    static func uid(_ type: String, _ id: String) -> EntityUID { EntityUID(type: EntityType.parse(type)!, id: id) }

    @Test("the human-readable and JSON syntaxes give the same schema; names resolve in their namespace")
    func bothSyntaxes() throws {
        let a = try Schema(text: Self.text, file: "photos.cedarschema")
        let b = try Schema(jsonText: Self.json)
        #expect(a.entityTypes == b.entityTypes)
        #expect(a.actions == b.actions)
        let photo = try #require(a.entityTypes[EntityType.parse("PhotoApp::Photo")!])
        #expect(photo.memberOf == [EntityType.parse("PhotoApp::Album")!])
        #expect(photo.tags == .string)
        #expect(photo.attributes["owner"]?.type == .entity(EntityType.parse("PhotoApp::User")!))
        guard case .record(let meta)? = photo.attributes["meta"]?.type else {
            Issue.record("meta is not a record")
            return
        }
        #expect(meta["created"] == Schema.Attribute(.ext("datetime")))
        #expect(meta["size bytes"]?.required == false)
        #expect(a.entityTypes[EntityType.parse("PhotoApp::Color")!]?.enumIDs == ["red", "green"])
        let view = try #require(a.actions[Self.uid("PhotoApp::Action", "view thumbnail")])
        #expect(view.memberOf == [Self.uid("PhotoApp::Action", "read")])
        #expect(view.principals == [EntityType.parse("PhotoApp::User")!])
        #expect(view.context["score"] == Schema.Attribute(.ext("decimal"), required: false))
        let delete = try #require(a.actions[Self.uid("Action", "delete")])
        #expect(delete.resources == [EntityType.parse("PhotoApp::Photo")!] && delete.context.isEmpty)
        #expect(a.actions[Self.uid("PhotoApp::Action", "read")]?.appliesTo == false)
    }

    @Test("errors name the file, line and column: syntax, undeclared types, duplicates, cycles")
    func errors() {
        func fails(_ text: String, _ message: String, line: Int? = nil) {
            do {
                _ = try Schema(text: text, file: "s.cedarschema")
                Issue.record("accepted: \(text)")
            } catch {
                #expect(error.code == .schema)
                #expect(error.message.contains(message), "\(error.message)")
                #expect(error.message.hasPrefix("s.cedarschema") || !error.message.contains("expected"))
                if let line { #expect(error.location?.line == line, "\(String(describing: error.location))") }
            }
        }
        fails("entity User = { name: Strin };", "undeclared type Strin")
        fails("entity User;\nentity User;", "declared twice")
        fails("entity A in [B];", "undeclared entity type B")
        fails("entity A\n{ x: Long }", "expected ';'", line: 2)
        fails("type T = { a: T };\nentity A = { t: T };", "refers to itself")
        fails("action a in [b]; action b in [a];", "cycle")
        fails("action a in [missing];", "not declared")
        fails("entity A = { x: Long, x: String };", "declared twice")
        fails("entity A enum [];", "at least one id")
        fails("type Long = String;", "built-in")
        fails("namespace N { entity A;", "not closed")
    }

    @Test("schema-based entities: implicit references and extension strings, checked attributes, parents, enums")
    func entities() throws {
        let schema = try Schema(text: Self.text)
        let good = try JSONValue.parse(
            #"""
            [{"uid": {"type": "PhotoApp::User", "id": "alice"}, "attrs": {"name": "Alice", "level": 5,
               "manager": {"type": "PhotoApp::User", "id": "bob"}}, "parents": [{"type": "PhotoApp::Group", "id": "g"}]},
             {"uid": {"type": "PhotoApp::Photo", "id": "p"}, "attrs": {"owner": {"__entity": {"type": "PhotoApp::User", "id": "alice"}},
               "meta": {"created": "2024-10-15"}, "colors": [{"type": "PhotoApp::Color", "id": "red"}], "from": "10.0.0.1"},
               "parents": [], "tags": {"label": "beach"}}]
            """#)
        let e = try schema.entities(good)
        let alice = try #require(e[Self.uid("PhotoApp::User", "alice")])
        #expect(alice.attributes["manager"] == .entity(Self.uid("PhotoApp::User", "bob")))
        let p = try #require(e[Self.uid("PhotoApp::Photo", "p")])
        #expect(p.attributes["from"] == .ext(.ipaddr(IPAddr.parse("10.0.0.1")!)))
        #expect(p.tags["label"] == .string("beach"))
        // The actions' group hierarchy comes from the schema.
        #expect(e[Self.uid("PhotoApp::Action", "view")]?.parents == [Self.uid("PhotoApp::Action", "read")])
        func refused(_ entity: String, _ message: String) {
            do {
                _ = try schema.entities(try JSONValue.parse("[\(entity)]"))
                Issue.record("accepted: \(entity)")
            } catch {
                #expect(error.message.contains(message), "\(error.message)")
            }
        }
        refused(#"{"uid": {"type": "Nope", "id": "x"}, "attrs": {}, "parents": []}"#, "not declared")
        refused(
            #"{"uid": {"type": "PhotoApp::User", "id": "x"}, "attrs": {"name": "X"}, "parents": []}"#,
            "required attribute level")
        refused(
            #"{"uid": {"type": "PhotoApp::User", "id": "x"}, "attrs": {"name": "X", "level": 1, "age": 3}, "parents": []}"#,
            "age is not declared")
        refused(
            #"{"uid": {"type": "PhotoApp::User", "id": "x"}, "attrs": {"name": "X", "level": "high"}, "parents": []}"#,
            "expected Long")
        refused(
            #"{"uid": {"type": "PhotoApp::User", "id": "x"}, "attrs": {"name": "X", "level": 1}, "parents": [{"type": "PhotoApp::Album", "id": "a"}]}"#,
            "cannot be its parent")
        refused(#"{"uid": {"type": "PhotoApp::Color", "id": "blue"}, "attrs": {}, "parents": []}"#, "enumeration")
        refused(
            #"{"uid": {"type": "PhotoApp::User", "id": "x"}, "attrs": {"name": "X", "level": 1, "manager": {"type": "PhotoApp::Group", "id": "g"}}, "parents": []}"#,
            "expected an entity of type PhotoApp::User")
        refused(
            #"{"uid": {"type": "PhotoApp::Album", "id": "a"}, "attrs": {}, "parents": [], "tags": {"t": "x"}}"#,
            "no tags")
    }

    @Test("schema-based contexts: extension strings read by the action's declaration; undeclared keys refused")
    func contexts() throws {
        let schema = try Schema(text: Self.text)
        let view = Self.uid("PhotoApp::Action", "view")
        let c = try schema.context(try JSONValue.parse(#"{"authenticated": true, "score": "0.75"}"#), action: view)
        #expect(c["score"] == .ext(.decimal(CedarDecimal.parse("0.75")!)))
        #expect(throws: CedarError.self) {
            try schema.context(try JSONValue.parse(#"{"authenticated": true, "extra": 1}"#), action: view)
        }
        #expect(throws: CedarError.self) { try schema.context(try JSONValue.parse(#"{}"#), action: view) }
        #expect(throws: CedarError.self) {
            try schema.context(try JSONValue.parse(#"{"authenticated": true}"#), action: Self.uid("Action", "nope"))
        }
    }
}
