import Testing

@testable import Cedar

/// Partial evaluation: requests whose context has keys with unknown values (a tool call's arguments, before the call).
@Suite("Partial evaluation with unknown context keys")
struct PartialEvaluationTests {
    typealias RNG = ExtensionTypeFuzzTests.SplitMix64
    typealias Residual = PartialEvaluator.Residual

    static let bot = AuthorizerTests.bot
    static let entities = AuthorizerTests.entities
    /// Known context keys; `u` and `args` are the unknown ones.
    static let known: [String: Value] = ["k": .long(1), "flag": .bool(true)]
    static let unknown: Set<String> = ["u", "args"]

    static func request(_ context: [String: Value] = known) -> Request {
        Request(
            principal: bot, action: EntityUID("Action", "call"), resource: EntityUID("Service", "tickets"),
            context: context)
    }

    func partial(_ expr: String) throws -> Residual {
        let e = try Parser.parseExpression(expr)
        return try PartialEvaluator(request: Self.request(), unknownContextKeys: Self.unknown, entities: Self.entities)
            .evaluate(ConstantFolding.fold(e))
    }

    func authorize(_ policies: String, unknown: Set<String> = unknown) throws -> PartialResponse {
        Authorizer().isAuthorized(
            Self.request(), unknownContextKeys: unknown, policies: try PolicySet(text: policies),
            entities: Self.entities)
    }

    @Test("an expression that depends on an unknown value is unknown; the rest evaluates as usual")
    func propagation() throws {
        for e in [
            "context.u", "context.u == 1", "context.u + 1", "-context.u", "!context.u", "context.args.id == 1",
            "context", "context == {}", "context.u has x", "context.u like \"a*\"", "context.u.isEmpty()",
            "[1, context.u]", "{a: context.u}.a", "context.u.contains(1)", "[1].contains(context.u)",
            "ip(context.u).isLoopback()", "context.u is Agent", "principal is Agent in context.u",
            "principal in context.u", "context.u && true", "context.u || false", "context.u && false",
            "context.u || true", "true && context.u", "false || context.u", "if context.u then 1 else 2",
            "if true then context.u else 2", "context[\"args\"]",
        ] {
            #expect(try partial(e) == .unknown, "\(e)")
        }
        #expect(try partial("context.k + 1") == .known(.long(2)))
        #expect(try partial("context has u && context has args && !(context has v)") == .known(.bool(true)))
        #expect(try partial("principal.level > 2 && principal is Agent in Role::\"support\"") == .known(.bool(true)))
        #expect(try partial("principal is User in context.u") == .known(.bool(false)))
        #expect(try partial("[1, 2].contains(context.k)") == .known(.bool(true)))
    }

    @Test("short-circuits decide whatever the unknowns are")
    func shortCircuits() throws {
        #expect(try partial("false && context.u") == .known(.bool(false)))
        #expect(try partial("true || context.u") == .known(.bool(true)))
        #expect(try partial("context.k == 2 && context.args.id == 1") == .known(.bool(false)))
        #expect(try partial("context.flag || context.u") == .known(.bool(true)))
        #expect(try partial("false && (1 + \"a\")") == .known(.bool(false)))
        #expect(try partial("if context.flag then 1 else context.u") == .known(.long(1)))
        #expect(try partial("if false then context.u else context.k") == .known(.long(1)))
        #expect(try partial("principal is User && context.u") == .known(.bool(false)))
    }

    @Test("errors that happen whatever the unknowns are stand; errors behind an unknown are unknown")
    func errors() throws {
        for e in [
            "1 + \"a\"", "context.missing", "true && 1", "if 1 then context.u else 2", "[context.u, 1 + \"a\"]",
            "context.u == (1 + \"a\")", "ip(\"nope\").isIpv4()", "principal.missing || context.u",
        ] {
            #expect(throws: CedarError(.evaluation, "")) { try partial(e) }
        }
        for e in ["context.u && (1 + \"a\")", "if context.u then 1 + \"a\" else 1", "context.u || principal.missing"] {
            #expect(try partial(e) == .unknown, "\(e)")
        }
    }

    @Test("a forbid that surely applies denies; one that depends on the unknowns leaves the decision open")
    func forbids() throws {
        let sure = try authorize(
            "permit(principal, action, resource);\nforbid(principal, action, resource) unless { false };")
        #expect(sure.forbids == ["policy1"] && !sure.mayBeAllowed && sure.decision == .deny)
        let open = try authorize(
            "permit(principal, action, resource);\nforbid(principal, action, resource) when { context.u == 1 };")
        #expect(open.permits == ["policy0"] && open.residualForbids == ["policy1"])
        #expect(open.mayBeAllowed && open.decision == nil)
        let approval = try authorize(
            "permit(principal, action, resource);\nforbid(principal, action, resource) unless { context.u };")
        #expect(approval.mayBeAllowed && approval.residualForbids == ["policy1"])
        // A forbid that a later condition rules out never applies.
        let never = try authorize(
            "permit(principal, action, resource);\nforbid(principal, action, resource) when { context.u } when { false };"
        )
        #expect(never.residualForbids.isEmpty && never.decision == .allow)
    }

    @Test("a permit that some arguments satisfy may allow; one that none can satisfy does not")
    func permits() throws {
        let some = try authorize("permit(principal, action, resource) when { context.args.id == 1 };")
        #expect(some.residualPermits == ["policy0"] && some.mayBeAllowed && some.decision == nil)
        #expect(try authorize("").decision == .deny)
        #expect(try !authorize("permit(principal, action, resource) when { context.k == 2 };").mayBeAllowed)
        let ruledOut = try authorize("permit(principal, action, resource) when { context.u } unless { true };")
        #expect(ruledOut.residualPermits.isEmpty && !ruledOut.mayBeAllowed)
        let other = try authorize("permit(principal, action, resource == Service::\"other\") when { context.u };")
        #expect(!other.mayBeAllowed)
        let sure = try authorize("permit(principal, action, resource) when { context has args };")
        #expect(sure.permits == ["policy0"] && sure.decision == .allow)
    }

    @Test("a policy that errors whatever the unknowns are is skipped and reported; one behind an unknown is not")
    func policyErrors() throws {
        let r = try authorize(
            """
            permit(principal, action, resource) when { principal.missing == context.u };
            forbid(principal, action, resource) when { 1 + "a" == context.u };
            forbid(principal, action, resource) when { context.u && 1 + "a" == 1 };
            forbid(principal, action, resource) when { context.u } when { principal.missing };
            permit(principal, action, resource) when { context.u } when { principal.missing };
            """)
        #expect(r.errors.map(\.policyID) == ["policy0", "policy1"])
        #expect(r.residualForbids == ["policy2"] && r.residualPermits.isEmpty)
        #expect(!r.mayBeAllowed && r.decision == .deny)
        // Cedar skips an erroring forbid (Warden's PolicyEngine fails closed on it instead).
        let skipped = try authorize(
            "permit(principal, action, resource);\nforbid(principal, action, resource) when { 1 + \"a\" == 1 };")
        #expect(skipped.errors.map(\.policyID) == ["policy1"] && skipped.mayBeAllowed && skipped.decision == .allow)
    }

    // MARK: - Differential and soundness against the concrete authorizer

    /// Random expressions over the request, known context keys `k`/`r`, and the keys `a`/`b` (unknown in the
    /// soundness check).
    static func expr(_ rng: inout RNG, depth: Int) -> Expr {
        let leaves: [Expr] = [
            .literal(.bool(true)), .literal(.bool(false)), .literal(.long(1)), .literal(.long(2)),
            .literal(.string("x")), .literal(.entity(EntityUID("Role", "support"))),
            .getAttr(.variable(.context), "a"), .getAttr(.variable(.context), "b"), .getAttr(.variable(.context), "k"),
            .getAttr(.variable(.context), "r"), .getAttr(.variable(.principal), "level"), .variable(.principal),
            .variable(.context), .hasAttr(.variable(.context), "a"), .getAttr(.getAttr(.variable(.context), "a"), "id"),
        ]
        guard depth > 0, Int.random(in: 0..<4, using: &rng) != 0 else { return leaves.randomElement(using: &rng)! }
        func sub() -> Expr { expr(&rng, depth: depth - 1) }
        let ops: [BinaryOp] = [.eq, .notEq, .less, .add, .mul, .in, .contains, .containsAny]
        switch Int.random(in: 0..<12, using: &rng) {
        case 0: return .not(sub())
        case 1: return .negate(sub())
        case 2, 3: return .and(sub(), sub())
        case 4: return .or(sub(), sub())
        case 5: return .ifThenElse(sub(), sub(), sub())
        case 6, 7: return .binary(ops.randomElement(using: &rng)!, sub(), sub())
        case 8: return Bool.random(using: &rng) ? .getAttr(sub(), "id") : .hasAttr(sub(), "id")
        case 9: return .set([sub(), sub()])
        case 10: return .record([Expr.RecordEntry("id", sub())])
        default: return .isType(sub(), EntityType("Agent"), in: Bool.random(using: &rng) ? sub() : nil)
        }
    }

    static func value(_ rng: inout RNG) -> Value {
        switch Int.random(in: 0..<6, using: &rng) {
        case 0: .bool(Bool.random(using: &rng))
        case 1: .long(Int64.random(in: -1...2, using: &rng))
        case 2: .record(["id": .long(Int64.random(in: 1...2, using: &rng))])
        case 3: .set([.long(1), .long(Int64.random(in: 1...3, using: &rng))])
        case 4: .entity(EntityUID("Role", Bool.random(using: &rng) ? "support" : "other"))
        default: .string("x")
        }
    }

    static func policies(_ rng: inout RNG) throws -> PolicySet {
        var list: [Policy] = []
        for i in 0..<Int.random(in: 1...4, using: &rng) {
            let conditions = (0..<Int.random(in: 0...2, using: &rng)).map { _ in
                Condition(Bool.random(using: &rng) ? .when : .unless, expr(&rng, depth: 3))
            }
            list.append(
                Policy(
                    id: "p\(i)", effect: Int.random(in: 0..<3, using: &rng) == 0 ? .forbid : .permit,
                    conditions: conditions))
        }
        return try PolicySet(list)
    }

    @Test("with no unknown keys, partial evaluation gives exactly isAuthorized's answer (random policies)")
    func agreesWhenKnown() throws {
        var rng = RNG(state: 0x9A27_1A1E)
        for _ in 0..<ExtensionTypeFuzzTests.iterations {
            let set = try Self.policies(&rng)
            let context: [String: Value] = [
                "a": Self.value(&rng), "b": Self.value(&rng), "k": Self.value(&rng), "r": Self.value(&rng),
            ]
            try Self.expectAgreement(Self.request(context), set)
        }
    }

    @Test("with no unknown keys, partial evaluation gives exactly isAuthorized's answer (fuzz corpus)")
    func agreesOnCorpus() throws {
        var rng = FuzzTests.RNG(state: 0xC0_4B05)
        let request = Request(
            principal: EntityUID("Agent", "a"), action: EntityUID("Action", "call"), resource: EntityUID("Tool", "x/y"),
            context: ["trust": .long(80), "source": .ext(.ipaddr(IPAddr.parse("10.1.1.1")!)), "approval": .bool(true)])
        var checked = 0
        for i in 0..<ExtensionTypeFuzzTests.iterations {
            let text = FuzzTests.mutate(FuzzTests.policySeeds[i % FuzzTests.policySeeds.count], &rng)
            guard let set = try? PolicySet(text: text) else { continue }
            checked += 1
            let response = Authorizer().isAuthorized(request, policies: set, entities: FuzzTests.entities)
            let partial = Authorizer().isAuthorized(
                request, unknownContextKeys: [], policies: set, entities: FuzzTests.entities)
            Self.expectSame(response, partial, text)
        }
        #expect(checked > 0)
    }

    static func expectAgreement(_ request: Request, _ set: PolicySet) throws {
        let response = Authorizer().isAuthorized(request, policies: set, entities: entities)
        let partial = Authorizer().isAuthorized(request, unknownContextKeys: [], policies: set, entities: entities)
        expectSame(response, partial, CedarPrinter.text(set))
    }

    static func expectSame(_ response: Response, _ partial: PartialResponse, _ text: String) {
        #expect(partial.residualPermits.isEmpty && partial.residualForbids.isEmpty, "\(text)")
        #expect(partial.decision == response.decision, "\(text)")
        #expect(partial.mayBeAllowed == (response.decision == .allow), "\(text)")
        #expect(
            (response.decision == .allow ? partial.permits : partial.forbids) == response.reasons, "\(text)")
        #expect(partial.errors == response.errors, "\(text)")
    }

    @Test("with unknown keys, the answer holds for every value they take (random policies and values)")
    func sound() throws {
        var rng = RNG(state: 0x50_0AD)
        var open = 0
        for _ in 0..<ExtensionTypeFuzzTests.iterations {
            let set = try Self.policies(&rng)
            let context: [String: Value] = ["k": Self.value(&rng), "r": Self.value(&rng)]
            let partial = Authorizer().isAuthorized(
                Self.request(context), unknownContextKeys: ["a", "b"], policies: set, entities: Self.entities)
            if partial.decision == nil { open += 1 }
            for _ in 0..<8 {
                var full = context
                full["a"] = Self.value(&rng)
                full["b"] = Self.value(&rng)
                let r = Authorizer().isAuthorized(Self.request(full), policies: set, entities: Self.entities)
                let text = "\(CedarPrinter.text(set))\n\(full)"
                if r.decision == .allow {
                    #expect(partial.mayBeAllowed, "\(text)")
                    #expect(Set(r.reasons).isSubset(of: partial.permits + partial.residualPermits), "\(text)")
                    #expect(Set(partial.permits).isSubset(of: r.reasons), "\(text)")
                } else {
                    #expect(Set(partial.forbids).isSubset(of: r.reasons), "\(text)")
                    #expect(Set(r.reasons).isSubset(of: partial.forbids + partial.residualForbids), "\(text)")
                }
                if let decision = partial.decision { #expect(r.decision == decision, "\(text)") }
                #expect(Set(partial.errors.map(\.policyID)).isSubset(of: r.errors.map(\.policyID)), "\(text)")
            }
        }
        // The generator reaches the interesting case often.
        #expect(open > ExtensionTypeFuzzTests.iterations / 20)
    }
}
