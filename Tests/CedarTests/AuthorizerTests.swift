import Testing

@testable import Cedar

@Suite("Evaluator and authorizer")
struct AuthorizerTests {
    static let entitiesJSON = """
        [
          {"uid": {"type": "Agent", "id": "support-bot"}, "attrs": {"owner": "team@example.com", "level": 3,
            "model": {"name": "m1", "digest": "sha256:ab"}, "tags": ["prod"],
            "home": {"__extn": {"fn": "ip", "arg": "10.1.2.3"}},
            "since": {"__extn": {"fn": "datetime", "arg": "2024-06-01T12:00:00Z"}},
            "later": {"__extn": {"fn": "offset", "args": [{"__extn": {"fn": "datetime", "arg": "2024-06-01"}},
                      {"__extn": {"fn": "duration", "arg": "1d"}}]}},
            "manager": {"__entity": {"type": "User", "id": "alice"}}},
           "parents": [{"type": "Role", "id": "support"}], "tags": {"env": "prod"}},
          {"uid": {"type": "Role", "id": "support"}, "attrs": {}, "parents": [{"type": "Team", "id": "care"}]},
          {"uid": {"type": "Team", "id": "care"}, "attrs": {}, "parents": []},
          {"uid": {"type": "Service", "id": "tickets"}, "attrs": {"risk": 1}, "parents": [{"type": "Segment", "id": "support"}]},
          {"uid": {"type": "Action", "id": "call"}, "attrs": {}, "parents": [{"type": "Action", "id": "write"}]}
        ]
        """

    static let entities = try! CedarJSON.entities(text: entitiesJSON)
    static let bot = EntityUID("Agent", "support-bot")

    func decide(
        _ policies: String, resource: EntityUID = EntityUID("Service", "tickets"), context: [String: Value] = [:]
    )
        throws -> Response
    {
        let set = try PolicySet(text: policies)
        let request = Request(
            principal: Self.bot, action: EntityUID("Action", "call"), resource: resource, context: context)
        return Authorizer().isAuthorized(request, policies: set, entities: Self.entities)
    }

    func eval(_ expr: String, context: [String: Value] = [:]) throws -> Value {
        let request = Request(
            principal: Self.bot, action: EntityUID("Action", "call"), resource: EntityUID("Service", "tickets"),
            context: context)
        return try Evaluator(request: request, entities: Self.entities).evaluate(try Parser.parseExpression(expr))
    }

    @Test("explain: every policy's trace (scope parts that do not match, the false clause, an error) and the decision")
    func explain() throws {
        let set = try PolicySet(
            text: """
                @id("ops") permit (principal in Role::"ops", action, resource);
                @id("posts") permit (principal, action == Action::"call", resource) when { context.method == "POST" };
                @id("erring") permit (principal, action, resource) when { context.missing == 1 };
                @id("other") permit (principal, action == Action::"read", resource == Service::"billing");
                @id("open") permit (principal, action, resource) unless { context.method == "GET" };
                """)
        let request = Request(
            principal: Self.bot, action: EntityUID("Action", "call"), resource: EntityUID("Service", "tickets"),
            context: ["method": .string("GET")])
        let e = Authorizer().explain(request, policies: set, entities: Self.entities)
        #expect(e.response == Authorizer().isAuthorized(request, policies: set, entities: Self.entities))
        #expect(e.response.decision == .deny)
        // In policy set order (ids are the parser's: the @id annotations are Warden's naming, not Cedar's).
        #expect(e.traces.count == 5)
        let byID = Dictionary(
            uniqueKeysWithValues: zip(["ops", "posts", "erring", "other", "open"], e.traces).map { ($0, $1) })
        #expect(byID["ops"]?.outcome == .scopeMismatch([#"principal in Role::"ops""#]))
        #expect(byID["posts"]?.outcome == .conditionFailed(#"when { context.method == "POST" }"#))
        #expect(byID["open"]?.outcome == .conditionFailed(#"unless { context.method == "GET" }"#))
        if case .error = byID["erring"]?.outcome {
        } else {
            Issue.record("erring: \(String(describing: byID["erring"]))")
        }
        #expect(
            byID["other"]?.outcome
                == .scopeMismatch([#"action == Action::"read""#, #"resource == Service::"billing""#]))
        #expect(byID["other"]?.closeness == 1 && byID["posts"]?.closeness == 3)
    }

    @Test("deny by default, forbid overrides permit, reasons are the determining policies")
    func algorithm() throws {
        #expect(try decide("").decision == .deny)
        let allow = try decide("permit(principal in Team::\"care\", action in Action::\"write\", resource);")
        #expect(allow.decision == .allow && allow.reasons == ["policy0"])
        let deny = try decide(
            """
            permit(principal, action, resource);
            forbid(principal, action, resource in Segment::"support") unless { context has approved };
            permit(principal is Agent, action, resource);
            """)
        #expect(deny.decision == .deny && deny.reasons == ["policy1"])
        let approved = try decide(
            """
            permit(principal, action, resource);
            forbid(principal, action, resource in Segment::"support") unless { context has approved };
            """, context: ["approved": .bool(true)])
        #expect(approved.decision == .allow && approved.reasons == ["policy0"])
    }

    @Test("a policy that errors is skipped and reported, and never grants")
    func errors() throws {
        let r = try decide(
            """
            permit(principal, action, resource) when { principal.missing == 1 };
            forbid(principal, action, resource) when { context.trust < 50 };
            permit(principal, action, resource) when { principal.level > 2 };
            """)
        #expect(r.decision == .allow)
        #expect(r.reasons == ["policy2"])
        #expect(r.errors.map(\.policyID) == ["policy0", "policy1"])
    }

    @Test("Long arithmetic overflows are errors")
    func overflow() throws {
        #expect(throws: CedarError(.evaluation, "")) { try eval("9223372036854775807 + 1") }
        #expect(throws: CedarError(.evaluation, "")) { try eval("-9223372036854775808 - 1") }
        #expect(throws: CedarError(.evaluation, "")) { try eval("-(-9223372036854775808)") }
        #expect(throws: CedarError(.evaluation, "")) { try eval("4611686018427387904 * 2") }
        #expect(try eval("-9223372036854775807 - 1") == .long(.min))
    }

    @Test("entity hierarchy, attributes, tags and records")
    func hierarchy() throws {
        #expect(try eval("principal in Team::\"care\"") == .bool(true))
        #expect(try eval("principal in [User::\"x\", Role::\"support\"]") == .bool(true))
        #expect(try eval("User::\"nobody\" in Team::\"care\"") == .bool(false))
        #expect(try eval("User::\"nobody\" in User::\"nobody\"") == .bool(true))
        #expect(throws: CedarError(.evaluation, "")) { try eval("principal in [1]") }
        #expect(throws: CedarError(.evaluation, "")) { try eval("1 in Team::\"care\"") }
        #expect(try eval("principal.model.digest like \"sha256:*\"") == .bool(true))
        #expect(try eval("principal has model.name") == .bool(true))
        #expect(try eval("principal has model.size") == .bool(false))
        #expect(try eval("User::\"nobody\" has name") == .bool(false))
        #expect(throws: CedarError(.evaluation, "")) { try eval("User::\"nobody\".name") }
        #expect(try eval("principal.getTag(\"env\") == \"prod\" && !principal.hasTag(\"x\")") == .bool(true))
        #expect(throws: CedarError(.evaluation, "")) { try eval("principal.getTag(\"x\")") }
        #expect(try eval("principal.manager == User::\"alice\"") == .bool(true))
        #expect(try eval("{a: [1, 2]} == {a: [2, 1, 1]}") == .bool(true))
        #expect(try eval("[1, 2].containsAll([2]) && [1].containsAny([3, 1]) && ![].containsAny([1])") == .bool(true))
        #expect(try eval("1 == \"1\"") == .bool(false))
        // Code-point equality: a precomposed and a decomposed "é" differ, as in the reference implementation.
        #expect(try eval("\"\u{e9}\" == \"e\u{301}\"") == .bool(false))
        #expect(try eval("User::\"\u{e9}\" == User::\"e\u{301}\"") == .bool(false))
        #expect(try eval("[\"\u{e9}\"].contains(\"e\u{301}\")") == .bool(false))
        #expect(try eval("principal is Agent in Role::\"support\"") == .bool(true))
        #expect(throws: CedarError(.evaluation, "")) { try eval("1 is Agent") }
    }

    @Test("short-circuiting and type errors in boolean operators")
    func booleans() throws {
        #expect(try eval("false && (1 + \"a\")") == .bool(false))
        #expect(try eval("true || principal.missing") == .bool(true))
        #expect(throws: CedarError(.evaluation, "")) { try eval("true && 1") }
        #expect(throws: CedarError(.evaluation, "")) { try eval("if 1 then 2 else 3") }
        #expect(try eval("if context has x then context.x else 0", context: ["x": .long(5)]) == .long(5))
    }

    @Test("extension types and their functions")
    func extensions() throws {
        #expect(try eval("principal.home.isInRange(ip(\"10.0.0.0/8\"))") == .bool(true))
        #expect(
            try eval("ip(\"127.0.0.1\").isLoopback() && ip(\"ff02::1\").isMulticast() && ip(\"::1\").isIpv6()")
                == .bool(true))
        #expect(throws: CedarError(.evaluation, "")) { try eval("ip(\"300.1.1.1\")") }
        #expect(try eval("decimal(\"1.2345\").greaterThan(decimal(\"-1.0\"))") == .bool(true))
        #expect(throws: CedarError(.evaluation, "")) { try eval("decimal(\"1.23456\")") }
        #expect(try eval("principal.later > principal.since") == .bool(true))
        #expect(try eval("principal.since.toDate() == datetime(\"2024-06-01\")") == .bool(true))
        #expect(try eval("principal.since.toTime() == duration(\"12h\")") == .bool(true))
        #expect(try eval("datetime(\"2024-06-02\").durationSince(principal.since).toMinutes()") == .long(720))
        #expect(try eval("duration(\"-1d2h\").toHours()") == .long(-26))
        #expect(throws: CedarError(.evaluation, "")) { try eval("duration(\"1h\") < datetime(\"2024-01-01\")") }
        #expect(throws: CedarError(.evaluation, "")) { try eval("ip(\"1.2.3.4\", \"x\")") }
    }

    @Test("templates link to concrete policies")
    func templates() throws {
        var set = try PolicySet(
            text: "permit(principal == ?principal, action, resource in ?resource) when { principal.level > 1 };")
        #expect(set.policies.isEmpty && set.templates.count == 1)
        try set.link(
            template: "policy0", newID: "bot-tickets",
            values: [.principal: Self.bot, .resource: EntityUID("Segment", "support")])
        #expect(throws: CedarError(.link, "")) {
            try set.link(template: "policy0", newID: "x", values: [.principal: Self.bot])
        }
        #expect(throws: CedarError(.policySet, "")) {
            try set.link(
                template: "policy0", newID: "bot-tickets",
                values: [.principal: Self.bot, .resource: EntityUID("Segment", "support")])
        }
        let request = Request(
            principal: Self.bot, action: EntityUID("Action", "call"), resource: EntityUID("Service", "tickets"))
        let r = Authorizer().isAuthorized(request, policies: set, entities: Self.entities)
        #expect(r.decision == .allow && r.reasons == ["bot-tickets"])
    }

    @Test("the scope index returns the same answers as evaluating every policy")
    func indexMatchesScan() throws {
        var text = ""
        for i in 0..<300 {
            switch i % 6 {
            case 0: text += "permit(principal == Agent::\"a\(i % 17)\", action, resource);\n"
            case 1: text += "permit(principal in Role::\"r\(i % 5)\", action == Action::\"call\", resource);\n"
            case 2:
                text +=
                    "forbid(principal, action in [Action::\"call\", Action::\"write\"], resource == Service::\"s\(i % 7)\");\n"
            case 3: text += "permit(principal is Agent, action, resource in Segment::\"g\(i % 3)\");\n"
            case 4:
                text +=
                    "permit(principal is Agent in Role::\"r\(i % 5)\", action in Action::\"write\", resource is Service);\n"
            default: text += "permit(principal, action, resource) when { resource == Service::\"s\(i % 7)\" };\n"
            }
        }
        let set = try PolicySet(text: text)
        var list: [Entity] = []
        for i in 0..<17 {
            list.append(Entity(uid: EntityUID("Agent", "a\(i)"), parents: [EntityUID("Role", "r\(i % 5)")]))
        }
        for i in 0..<7 {
            list.append(Entity(uid: EntityUID("Service", "s\(i)"), parents: [EntityUID("Segment", "g\(i % 3)")]))
        }
        list.append(Entity(uid: EntityUID("Action", "call"), parents: [EntityUID("Action", "write")]))
        let entities = try Entities(list)
        for p in 0..<17 {
            for s in 0..<7 {
                for a in ["call", "write", "read"] {
                    let request = Request(
                        principal: EntityUID("Agent", "a\(p)"), action: EntityUID("Action", a),
                        resource: EntityUID("Service", "s\(s)"))
                    let indexed = Authorizer().isAuthorized(request, policies: set, entities: entities)
                    let evaluator = Evaluator(request: request, entities: entities)
                    var permits: [String] = []
                    var forbids: [String] = []
                    for policy in set.policies.map(PolicyBox.init) where evaluator.scopeMatches(policy) {
                        if (try? evaluator.conditionsHold(policy.conditions)) == true {
                            if policy.effect == .permit { permits.append(policy.id) } else { forbids.append(policy.id) }
                        }
                    }
                    #expect(indexed.reasons == (forbids.isEmpty ? permits : forbids))
                }
            }
        }
    }
}
