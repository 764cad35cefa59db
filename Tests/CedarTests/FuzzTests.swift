import Foundation
import Testing

@testable import Cedar

/// Seeded property and fuzz tests of everything that reads outside input: the policy parser, the policy JSON
/// importer, and the entity and request JSON loaders. Any input must give a value or a `CedarError` (never a trap or
/// a hang); parse errors must carry a location; whatever parses must print and re-parse to the same policies, and
/// must evaluate without trapping. Scale with `CEDAR_FUZZ_ITERATIONS` (default 3000).
@Suite("Fuzzing the parsers and loaders")
struct FuzzTests {
    typealias RNG = ExtensionTypeFuzzTests.SplitMix64

    static var iterations: Int { ExtensionTypeFuzzTests.iterations }

    static let policySeeds = [
        """
        @id("support") permit (principal in Role::"support", action == Action::"call", resource in Segment::"s")
        when { context.trust >= 70 && context.source.isInRange(ip("10.0.0.0/8")) };
        """,
        """
        forbid (principal is Agent in Team::"t", action in [Action::"a", Action::"b"], resource == Tool::"x/y")
        unless { context has approval && context.approval.ok == true || principal.tags.containsAny(["x", "y"]) };
        """,
        """
        permit (principal == ?principal, action, resource in ?resource)
        when { if resource.risk > 3 then principal["level"] * -2 + 1 < 0 else resource like "a*\\*b" };
        """,
        """
        permit (principal, action, resource) when { {a: [1, -9223372036854775808], "b c": User::"\\u{1F600}"} has a.b
        && datetime("2024-01-01T00:00:00Z").offset(duration("-1d2h")).toTime() == duration("22h")
        && decimal("1.23").lessThan(decimal("4.5")) && resource.hasTag("t") && resource.getTag("t").isEmpty() };
        """,
    ]

    static let tokens = [
        "(", ")", "[", "]", "{", "}", ",", ";", ".", "::", "==", "!=", "<=", "&&", "||", "!", "-", "*", "+", "\"", "\\",
        "\\u{", "in", "has", "like", "is", "if", "then", "else", "when", "unless", "permit", "forbid", "principal",
        "action", "resource", "context", "?principal", "@id(\"x\")", "Action::\"a\"", "9223372036854775807", "0", " ",
        "\n", "//", "é", "\u{0}", "\u{301}", "ip(\"::1\")", "true",
    ]

    static func mutate(_ text: String, _ rng: inout RNG) -> String {
        var scalars = Array(text.unicodeScalars)
        for _ in 0..<Int.random(in: 1...6, using: &rng) {
            let at = Int.random(in: 0...scalars.count, using: &rng)
            switch Int.random(in: 0..<4, using: &rng) {
            case 0 where !scalars.isEmpty:
                let end = min(scalars.count, at + Int.random(in: 1...8, using: &rng))
                scalars.removeSubrange(min(at, scalars.count - 1)..<end)
            case 1:
                scalars.insert(contentsOf: tokens.randomElement(using: &rng)!.unicodeScalars, at: at)
            case 2 where !scalars.isEmpty:
                let from = Int.random(in: 0..<scalars.count, using: &rng)
                let chunk = scalars[from..<min(scalars.count, from + Int.random(in: 1...12, using: &rng))]
                scalars.insert(contentsOf: chunk, at: at)
            default:
                if !scalars.isEmpty {
                    scalars[min(at, scalars.count - 1)] = Unicode.Scalar(UInt8.random(in: 0x20...0x7E, using: &rng))
                }
            }
        }
        var s = String.UnicodeScalarView()
        s.append(contentsOf: scalars)
        return String(s)
    }

    static let entities = try! CedarJSON.entities(
        text: """
            [{"uid": {"type": "Agent", "id": "a"}, "attrs": {"level": 2, "tags": ["x"]},
              "parents": [{"type": "Role", "id": "support"}, {"type": "Team", "id": "t"}], "tags": {"t": []}},
             {"uid": {"type": "Tool", "id": "x/y"}, "attrs": {"risk": 5}, "parents": [{"type": "Segment", "id": "s"}],
              "tags": {"t": []}}]
            """)

    @Test("mutated policy text parses or fails with a located error; what parses round-trips and evaluates")
    func policyText() throws {
        var rng = RNG(state: 0x5EED_CEDA)
        var accepted = 0
        let request = Request(
            principal: EntityUID("Agent", "a"), action: EntityUID("Action", "call"), resource: EntityUID("Tool", "x/y"),
            context: ["trust": .long(80), "source": .ext(.ipaddr(IPAddr.parse("10.1.1.1")!))])
        for i in 0..<Self.iterations {
            let text = Self.mutate(Self.policySeeds[i % Self.policySeeds.count], &rng)
            let set: PolicySet
            do {
                set = try PolicySet(text: text)
            } catch {
                #expect(error.code == .parse || error.code == .policySet)
                if error.code == .parse {
                    #expect((error.location?.line ?? 0) >= 1 && (error.location?.column ?? 0) >= 1, "\(error)")
                }
                continue
            }
            accepted += 1
            let printed = CedarPrinter.text(set)
            let reparsed = try PolicySet(text: printed)
            #expect(PolicyJSON.encode(reparsed) == PolicyJSON.encode(set), "printed:\n\(printed)\nfrom:\n\(text)")
            let imported = try PolicyJSON.decodePolicySet(PolicyJSON.encode(set))
            #expect(PolicyJSON.encode(imported) == PolicyJSON.encode(set))
            let response = Authorizer().isAuthorized(request, policies: set, entities: Self.entities)
            #expect(response.decision == .allow || response.decision == .deny)
        }
        #expect(accepted > 0)
    }

    @Test("random token soup never traps the parser")
    func tokenSoup() {
        var rng = RNG(state: 0xBAD_CAFE)
        for _ in 0..<Self.iterations {
            let n = Int.random(in: 0...40, using: &rng)
            let text = (0..<n).map { _ in Self.tokens.randomElement(using: &rng)! }.joined(separator: " ")
            do {
                _ = try Parser.parsePolicies(text)
            } catch {
                #expect(error.code == .parse)
                #expect(error.location != nil)
            }
        }
    }

    static let jsonSeeds = [
        #"[{"uid": {"type": "Agent", "id": "a"}, "attrs": {"n": 1, "s": ["x", {"__entity": {"type": "U", "id": "u"}}], "r": {"ip": {"__extn": {"fn": "ip", "arg": "10.0.0.1"}}}}, "parents": [{"type": "Role", "id": "r"}], "tags": {"t": "v"}}]"#,
        #"{"principal": {"type": "A", "id": "p"}, "action": {"type": "Action", "id": "c"}, "resource": {"type": "S", "id": "r"}, "context": {"d": {"__extn": {"fn": "offset", "args": [{"__extn": {"fn": "datetime", "arg": "2024-01-01"}}, {"__extn": {"fn": "duration", "arg": "1h"}}]}}}}"#,
        #"{"staticPolicies": {"p": {"effect": "permit", "principal": {"op": "==", "entity": {"type": "A", "id": "a"}}, "action": {"op": "in", "entities": [{"type": "Action", "id": "x"}]}, "resource": {"op": "is", "entity_type": "T", "in": {"entity": {"type": "S", "id": "s"}}}, "conditions": [{"kind": "when", "body": {"&&": {"left": {"Value": true}, "right": {"like": {"left": {"Var": "context"}, "pattern": ["Wildcard", {"Literal": "a"}]}}}}}]}}, "templates": {}, "templateLinks": []}"#,
    ]

    @Test("mutated JSON gives values or clear JSON, entity or request errors")
    func jsonLoaders() {
        var rng = RNG(state: 0x15_0DD)
        for i in 0..<Self.iterations {
            let text = Self.mutate(Self.jsonSeeds[i % Self.jsonSeeds.count], &rng)
            do throws(CedarError) {
                let json = try JSONValue.parse(text)
                #expect(try JSONValue.parse(json.serialized) == json)
                switch i % 3 {
                case 0: _ = try CedarJSON.entities(json)
                case 1: _ = try CedarJSON.request(json)
                default: _ = try PolicyJSON.decodePolicySet(json)
                }
            } catch {
                #expect([.json, .entities, .request, .policySet, .link].contains(error.code))
                #expect(!error.message.isEmpty)
            }
        }
    }
}
