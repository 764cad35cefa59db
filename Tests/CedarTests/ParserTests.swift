import Testing

@testable import Cedar

@Suite("Parser")
struct ParserTests {
    @Test("full policy grammar parses")
    func grammar() throws {
        let text = """
            @id("agents-call") @advice
            permit (
              principal is Acme::Agent in Team::"finance",
              action in [Action::"call", Action::"mcp:tools/call"],
              resource == Service::"billing"
            ) when {
              context.trust >= 70 && !(context.flags.contains("anomalous")) &&
              principal has model.digest && principal["owner"] like "*@example.com" &&
              (if context.delegation.isEmpty() then true else context.delegation.containsAny([User::"alice"])) &&
              resource.hasTag("env") && resource.getTag("env") == "prod" && -3 * -(2) + 1 - 1 == 6 &&
              ip(context.source).isInRange(ip("10.0.0.0/8")) && decimal("1.5").lessThan(decimal("2.0")) &&
              datetime("2024-01-01").offset(duration("1h")) > datetime("2024-01-01") &&
              {a: 1, "b c": [1, 2]} has "b c" && principal is Acme::Agent && context.path like "/v1/\\*x*"
            } unless { principal in Role::"suspended" };
            forbid (principal, action, resource);
            permit (principal == ?principal, action == Action::"read", resource in ?resource);
            """
        let policies = try Parser.parsePolicies(text)
        #expect(policies.count == 3)
        #expect(policies[0].id == "policy0")
        #expect(policies[0].annotation("id") == "agents-call")
        #expect(policies[0].annotation("advice") == "")
        #expect(policies[0].principal == .isTypeIn(EntityType("Acme::Agent"), .entity(EntityUID("Team", "finance"))))
        #expect(policies[0].action == .inAny([EntityUID("Action", "call"), EntityUID("Action", "mcp:tools/call")]))
        #expect(policies[0].conditions.map(\.kind) == [.when, .unless])
        #expect(policies[1].effect == .forbid && policies[1].principal == .any)
        #expect(policies[2].isTemplate)
        #expect(!policies[0].isTemplate)
    }

    @Test("negative literals, the smallest Long and unary operators")
    func literals() throws {
        #expect(try Parser.parseExpression("-9223372036854775808") == .literal(.long(.min)))
        #expect(try Parser.parseExpression("--1") == .negate(.literal(.long(-1))))
        #expect(try Parser.parseExpression("!!true") == .not(.not(.literal(.bool(true)))))
        #expect(throws: CedarError(.parse, "")) { try Parser.parseExpression("9223372036854775808") }
        #expect(throws: CedarError(.parse, "")) { try Parser.parseExpression("!!!!!true") }
    }

    @Test("`has` with a path desugars to a chain of has checks")
    func hasPath() throws {
        let e = try Parser.parseExpression("principal has a.b")
        let p = Expr.variable(.principal)
        #expect(e == .and(.hasAttr(p, "a"), .hasAttr(.getAttr(p, "a"), "b")))
    }

    @Test("string escapes and like patterns")
    func strings() throws {
        #expect(try Parser.parseExpression(#""a\n\t\"\\\0\u{1F600}""#) == .literal(.string("a\n\t\"\\\0\u{1F600}")))
        guard case .like(_, let pattern) = try Parser.parseExpression(#""x" like "a\*b*""#) else {
            Issue.record("not a like expression")
            return
        }
        #expect(pattern.matches("a*bcd"))
        #expect(pattern.matches("a*b"))
        #expect(!pattern.matches("axbcd"))
        #expect(throws: CedarError(.parse, "")) { try Parser.parseExpression(#""\q""#) }
        #expect(throws: CedarError(.parse, "")) { try Parser.parseExpression(#""\u{D800}""#) }
    }

    @Test(
        "invalid policies are rejected with line and column",
        arguments: [
            ("permit(principal, action, resource)", 1, 36),
            ("permit(principal, action, resource) when { };", 1, 44),
            ("permit(\n  principal == User::\"a\",\n  action,\n  resource\n) when { 1 + };", 5, 14),
            ("permit(principal in [User::\"a\"], action, resource);", 1, 21),
            ("forbid(principal, action == User::\"a\", resource);", 1, 29),
            ("permit(principal, action, resource) when { a == b == c };", 1, 44),
            ("permit(principal, action, resource) when { 1 < 2 < 3 };", 1, 50),
            ("permit(principal, action, resource) when { principal.foo() };", 1, 54),
            ("permit(principal, action, resource) when { foo(1) };", 1, 44),
            ("permit(principal, action, resource) when { {a: 1, a: 2} };", 1, 51),
            ("permit(principal, action, resource) when { context.x == ?principal };", 1, 1),
            ("@id(\"a\") @id(\"b\") permit(principal, action, resource);", 1, 10),
            ("allow(principal, action, resource);", 1, 1),
            ("permit(principal, action, resource) when { \"abc };", 1, 44),
            ("permit(principal == ?resource, action, resource);", 1, 21),
            ("permit(principal, action, resource) when { if::\"x\" };", 1, 46),
        ])
    func invalid(text: String, line: Int, column: Int) throws {
        do {
            _ = try Parser.parsePolicies(text)
            Issue.record("accepted: \(text)")
        } catch {
            #expect(error.code == .parse)
            #expect(error.location?.line == line, "\(error)")
            #expect(error.location?.column == column, "\(error)")
            #expect(!error.message.isEmpty)
        }
    }

    @Test("deep nesting is an error, not a crash")
    func depth() {
        let deep = String(repeating: "(", count: 5000) + "1" + String(repeating: ")", count: 5000)
        #expect(throws: CedarError(.parse, "")) { try Parser.parseExpression(deep) }
        let deepSet = String(repeating: "[", count: 5000)
        #expect(throws: CedarError(.parse, "")) { try Parser.parseExpression(deepSet) }
    }

    @Test("long flat chains are bounded like nesting: an error, not a stack overflow")
    func flatChains() throws {
        for op in ["||", "&&", "+", "*"] {
            let long = Array(repeating: "context.a", count: 100_000).joined(separator: " \(op) ")
            #expect(throws: CedarError(.parse, "")) { try Parser.parseExpression(long) }
            let fine = Array(repeating: "context.a", count: 150).joined(separator: " \(op) ")
            _ = try Parser.parseExpression(fine)
        }
        #expect(throws: CedarError(.parse, "")) {
            try Parser.parseExpression("context" + String(repeating: ".a", count: 100_000))
        }
        #expect(throws: CedarError(.parse, "")) {
            try Parser.parseExpression("context has a" + String(repeating: ".a", count: 100_000))
        }
    }

    @Test("grammar details that match the reference parser")
    func referenceDetails() throws {
        // A minus joins an integer literal only when no access follows it.
        #expect(try Parser.parseExpression("-5.x") == .negate(.getAttr(.literal(.long(5)), "x")))
        #expect(try Parser.parseExpression("-5") == .literal(.long(-5)))
        // Trailing commas in argument lists, sets, records, action lists and after the scope.
        _ = try Parser.parsePolicies(
            """
            permit(principal, action in [Action::"a",], resource,)
            when { ip("1.2.3.4",).isIpv4() && [1,].contains(1,) && {a: 1,} has a };
            """)
        // Unicode white space separates tokens.
        _ = try Parser.parsePolicies("permit(principal,\u{A0}action,\u{0C}resource)\u{2028};")
        #expect(throws: CedarError(.parse, "")) { try Parser.parseExpression("!-1") }
    }

    @Test("printing keeps combining marks in strings and patterns")
    func printerMarks() throws {
        let text =
            "permit(principal, action, resource) when { context.s like \"e\u{301}*\\*\" && context.t == \"\u{301}\" };"
        let set = try PolicySet(text: text)
        let printed = CedarPrinter.text(set)
        let again = try PolicySet(text: printed)
        #expect(PolicyJSON.encode(again) == PolicyJSON.encode(set), "\(printed)")
        guard case .and(.like(_, let pattern), _) = again.policies[0].conditions[0].body else {
            Issue.record("unexpected tree: \(printed)")
            return
        }
        #expect(pattern.matches("e\u{301}x*"))
        #expect(!pattern.matches("ex*"))
    }

    @Test("comments and whitespace are ignored; combining marks after a quote stay in the string")
    func comments() throws {
        let p = try Parser.parsePolicies("// hello\npermit(principal == a::\"\u{94A}\", // x\n action, resource);")
        #expect(p[0].principal == .equals(.entity(EntityUID("a", "\u{94A}"))))
    }
}
