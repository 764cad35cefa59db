import Testing

@testable import Cedar

@Suite("JSON formats")
struct JSONTests {
    @Test("JSON parser: values, escapes, and precise errors")
    func parser() throws {
        let v = try JSONValue.parse(#"{"a": [1, -2, 3.5e1, true, null], "b": "\u00e9\ud83d\ude00\n"}"#)
        #expect(v["a"] == .array([.number("1"), .number("-2"), .number("3.5e1"), .bool(true), .null]))
        #expect(v["b"] == .string("é😀\n"))
        for bad in ["{", "[1,]", "{\"a\":1,\"a\":2}", "01", "\"\\ud800\"", "tru", "[1] x", "\"a\nb\"", ""] {
            #expect(throws: CedarError(.json, "")) { try JSONValue.parse(bad) }
        }
        #expect(throws: CedarError(.json, "")) {
            try JSONValue.parse(String(repeating: "[", count: 10_000) + String(repeating: "]", count: 10_000))
        }
        #expect(try JSONValue.parse(v.serialized) == v)
    }

    @Test("JSON parser: duplicate keys refused in small objects and in large ones, canonically equal keys included")
    func duplicateKeys() throws {
        func object(_ keys: [String]) -> String { "{" + keys.map { "\"\($0)\": 1" }.joined(separator: ",") + "}" }
        let many = (0..<40).map { "k\($0)" }
        #expect(try JSONValue.parse(object(many))["k39"] == .number("1"))
        for keys in [
            ["a", "b", "a"],  // small: found by the scan
            many + ["k3"],  // large: a key from before the set was built
            many + ["k39"],  // large: a key added to the set
            Array(many[0..<15]) + ["k2"],  // the sixteenth key, the last one scanned
            Array(many[0..<16]) + ["k2"],  // the seventeenth, the first one through the set
            ["\\u00e9", "e\\u0301"],  // é precomposed and decomposed: one key to Swift (and to Cedar's maps)
        ] {
            #expect(throws: CedarError(.json, "")) { try JSONValue.parse(object(keys)) }
        }
    }

    @Test("entities: escapes, tags, duplicates and bad shapes")
    func entities() throws {
        let e = try CedarJSON.entities(
            text: """
                [{"uid": {"__entity": {"type": "NS::User", "id": "a"}}, "attrs": {"n": -5, "s": ["x", "x"],
                  "r": {"d": {"__extn": {"fn": "decimal", "arg": "1.5"}}}}, "parents": [], "tags": {"t": 1}}]
                """)
        let user = try #require(e[EntityUID("NS::User", "a")])
        #expect(user.attributes["n"] == .long(-5))
        #expect(user.attributes["s"] == .set([.string("x")]))
        #expect(user.tags["t"] == .long(1))
        let bad = [
            #"{}"#,
            #"[{"attrs": {}}]"#,
            #"[{"uid": {"type": "1bad", "id": "a"}}]"#,
            #"[{"uid": {"type": "U", "id": "a"}, "attrs": {"x": 1.5}}]"#,
            #"[{"uid": {"type": "U", "id": "a"}, "attrs": {"x": 99999999999999999999}}]"#,
            #"[{"uid": {"type": "U", "id": "a"}, "attrs": {"x": null}}]"#,
            #"[{"uid": {"type": "U", "id": "a"}, "attrs": {"x": {"__extn": {"fn": "ip", "arg": "nope"}}}}]"#,
            #"[{"uid": {"type": "U", "id": "a"}, "attrs": {"x": {"__extn": {"fn": "nope", "arg": "1"}}}}]"#,
            #"[{"uid": {"type": "U", "id": "a"}, "parents": [1]}]"#,
            #"[{"uid": {"type": "U", "id": "a"}, "extra": 1}]"#,
            #"[{"uid": {"type": "U", "id": "a"}}, {"uid": {"type": "U", "id": "a"}, "attrs": {"b": true}}]"#,
        ]
        for text in bad {
            #expect(throws: CedarError.self, "\(text)") { try CedarJSON.entities(text: text) }
        }
    }

    @Test("entity hierarchies: transitive closure; cycles and conflicting duplicates are rejected")
    func hierarchies() throws {
        let e = try CedarJSON.entities(
            text: """
                [{"uid": {"type": "G", "id": "a"}, "parents": [{"type": "G", "id": "b"}]},
                 {"uid": {"type": "G", "id": "b"}, "parents": [{"type": "G", "id": "c"}]},
                 {"uid": {"type": "G", "id": "b"}, "parents": [{"type": "G", "id": "c"}]}]
                """)
        #expect(e.isDescendant(EntityUID("G", "a"), of: EntityUID("G", "c")))
        #expect(!e.isDescendant(EntityUID("G", "c"), of: EntityUID("G", "a")))
        #expect(throws: CedarError(.entities, "")) {
            try CedarJSON.entities(
                text: """
                    [{"uid": {"type": "G", "id": "a"}, "parents": [{"type": "G", "id": "b"}]},
                     {"uid": {"type": "G", "id": "b"}, "parents": [{"type": "G", "id": "a"}]}]
                    """)
        }
        #expect(throws: CedarError(.entities, "")) {
            try CedarJSON.entities(
                text: """
                    [{"uid": {"type": "G", "id": "a"}, "attrs": {"x": 1}}, {"uid": {"type": "G", "id": "a"}}]
                    """)
        }
    }

    @Test("policy JSON: mis-shaped sets are errors, literal sets, records and extension values are accepted")
    func policyJSON() throws {
        for bad in [
            #"{"staticPolicies": [], "templates": {}, "templateLinks": []}"#,
            #"{"staticPolicies": {}, "templates": {}, "templateLinks": {}}"#,
            #"{"staticPolicies": {}, "templates": 1}"#,
            #"{"staticPolicies": {"p": {"effect": "allow", "principal": {"op": "All"}, "action": {"op": "All"}, "resource": {"op": "All"}}}}"#,
            #"{"staticPolicies": {"p": {"effect": "permit", "principal": {"op": "All"}, "action": {"op": "All"}, "resource": {"op": "All"}, "conditions": [{"kind": "when", "body": {"nope": 1}}]}}}"#,
        ] {
            #expect(throws: CedarError.self, "\(bad)") { try PolicyJSON.decodePolicySet(JSONValue.parse(bad)) }
        }
        let set = try PolicyJSON.decodePolicySet(
            JSONValue.parse(
                #"{"staticPolicies": {"p": {"effect": "permit", "principal": {"op": "All"}, "action": {"op": "All"}, "resource": {"op": "All"}, "conditions": [{"kind": "when", "body": {"==": {"left": {"Var": "context"}, "right": {"Value": {"a": [1, {"__extn": {"fn": "ip", "arg": "10.0.0.1"}}]}}}}}]}}}"#
            ))
        let request = Request(
            principal: EntityUID("A", "a"), action: EntityUID("Action", "x"), resource: EntityUID("R", "r"),
            context: ["a": .set([.long(1), .ext(.ipaddr(IPAddr.parse("10.0.0.1")!))])])
        let r = Authorizer().isAuthorized(request, policies: set, entities: Entities())
        #expect(r.decision == .allow && r.reasons == ["p"])
        _ = try PolicySet(text: CedarPrinter.text(set))
    }

    @Test("requests and value encoding round-trip")
    func requests() throws {
        let r = try CedarJSON.request(
            JSONValue.parse(
                #"{"principal": {"type": "A", "id": "p"}, "action": {"type": "Action", "id": "call"}, "resource": {"type": "S", "id": "r"}, "context": {"ip": {"__extn": {"fn": "ip", "arg": "10.0.0.1"}}, "who": {"__entity": {"type": "U", "id": "u"}}}}"#
            ))
        #expect(r.context["who"] == .entity(EntityUID("U", "u")))
        let encoded = CedarJSON.json(.record(r.context))
        #expect(try CedarJSON.value(encoded) == .record(r.context))
        #expect(throws: CedarError.self) {
            try CedarJSON.request(JSONValue.parse(#"{"principal": {"type": "A", "id": "p"}}"#))
        }
        #expect(throws: CedarError.self) {
            try CedarJSON.request(
                JSONValue.parse(
                    #"{"principal": {"type": "A", "id": "p"}, "action": {"type": "Action", "id": "c"}, "resource": {"type": "S", "id": "r"}, "context": [1]}"#
                ))
        }
    }
}
