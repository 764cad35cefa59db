import Testing
import WardenCore

@testable import WardenInspect

@Suite("LinearRegex: ECMAScript patterns in linear time")
struct LinearRegexTests {
    /// A pattern, a subject and what ECMAScript's `new RegExp(pattern, "u").test(subject)` gives.
    struct Case: Sendable {
        let pattern: String
        let subject: String
        let expected: Bool

        init(_ pattern: String, _ subject: String, _ expected: Bool) {
            self.pattern = pattern
            self.subject = subject
            self.expected = expected
        }
    }

    /// Why `pattern` is refused, or nil when it compiles.
    static func reason(_ pattern: String) -> String? {
        do throws(LinearRegex.Unsupported) {
            _ = try LinearRegex(pattern)
            return nil
        } catch {
            return error.reason
        }
    }

    static let cases: [Case] = [
        // Anchors; the search is unanchored otherwise, and there is no multiline mode.
        Case("^abc$", "abc", true),
        Case("^abc$", "abcd", false),
        Case("^abc$", "xabc", false),
        Case("^abc", "abcdef", true),
        Case("^abc", "zabc", false),
        Case("abc$", "zzabc", true),
        Case("abc$", "abcz", false),
        Case("abc$", "abc\n", false),
        Case("^b", "a\nb", false),
        Case("^$", "", true),
        Case("^$", "a", false),
        Case("$", "anything", true),
        Case("b+c", "aaabbbcdd", true),
        Case("needle", "haystack with a needle in it", true),
        Case("xyz", "xy z", false),
        // The empty pattern matches everything.
        Case("", "", true),
        Case("", "abc", true),
        // Classes, negated classes, class escapes.
        Case("^[a-z]+$", "hello", true),
        Case("^[a-z]+$", "Hello", false),
        Case("^[^0-9]*$", "abc", true),
        Case("^[^0-9]*$", "ab1", false),
        Case("[A-Fa-f0-9]{4}", "zz1aF9zz", true),
        Case("[A-Fa-f0-9]{4}", "12g4", false),
        Case(#"^[\d.-]+$"#, "3.14-2", true),
        Case(#"^[\w-]+$"#, "a-b_c", true),
        Case(#"^[\w-]+$"#, "a b", false),
        Case(#"^[a\-z]$"#, "-", true),
        Case(#"^[a\-z]$"#, "b", false),
        Case("a[]", "a", false),
        Case("^[^]$", "\n", true),
        Case(#"[\s]"#, "a\tb", true),
        Case(#"^[\]]$"#, "]", true),
        Case("^[.]$", "a", false),
        Case("^[.]$", ".", true),
        Case(#"^[^\n]+$"#, "line", true),
        Case(#"^[^\n]+$"#, "li\nne", false),
        Case(#"^\S+$"#, "no-spaces", true),
        Case(#"^\S+$"#, "has space", false),
        Case(#"^\D+$"#, "abc", true),
        Case(#"^\D+$"#, "a1", false),
        Case(#"^\W$"#, "!", true),
        Case(#"^\W$"#, "_", false),
        Case(#"^[^\d\s]+$"#, "abc", true),
        Case(#"^[^\d\s]+$"#, "a c", false),
        // Alternation and groups.
        Case("^(cat|dog)s?$", "dogs", true),
        Case("^(cat|dog)s?$", "cats", true),
        Case("^(cat|dog)s?$", "cow", false),
        Case("^a(b|c)d$", "acd", true),
        Case("^a(b|c)d$", "abcd", false),
        Case("^(?:ab|cd)+$", "abcdab", true),
        Case("^(?:ab|cd)+$", "abc", false),
        Case("^(a|ab)(c|bcd)(d*)$", "abcd", true),
        Case(#"(?<year>\d{4})-(?<month>\d{2})"#, "on 2024-01-15", true),
        Case(#"(?<year>\d{4})-(?<month>\d{2})"#, "24-01", false),
        Case("^(|a)b$", "b", true),
        Case("^(|a)b$", "ab", true),
        Case("x|^$", "", true),
        Case("^(a|b|c)+$", "abcabc", true),
        Case("^(a|b|c)+$", "abcd", false),
        // Counted repetition.
        Case("^a{3}$", "aaa", true),
        Case("^a{3}$", "aa", false),
        Case("^a{3}$", "aaaa", false),
        Case("^a{2,}$", "aa", true),
        Case("^a{2,}$", "a", false),
        Case("^a{2,}$", "aaaaa", true),
        Case("^a{1,3}$", "aaa", true),
        Case("^a{1,3}$", "aaaa", false),
        Case("^a{1,3}$", "", false),
        Case("^(ab){2}$", "abab", true),
        Case("^(ab){2}$", "ab", false),
        Case("^a{0}b$", "b", true),
        Case("^a{0}b$", "ab", false),
        Case("^x{0,2}y$", "xxy", true),
        Case("^x{0,2}y$", "xxxy", false),
        Case(#"^\d{3}-\d{4}$"#, "555-0132", true),
        Case(#"^\d{3}-\d{4}$"#, "55-01322", false),
        // Lazy quantifiers (a test's result does not depend on laziness).
        Case("^a+?$", "aaa", true),
        Case("a*?b", "aaab", true),
        Case("^a{2,3}?$", "aaa", true),
        Case("^a{2,3}?$", "aaaa", false),
        Case("^(a|b)*?c$", "ababc", true),
        Case("a??b", "b", true),
        Case("^a??$", "", true),
        Case("^a+?b+?$", "aabb", true),
        // `.` is any scalar but a line terminator; subjects are Unicode scalars.
        Case("^.$", "\n", false),
        Case("^.$", "\r", false),
        Case("^.$", "x", true),
        Case("^.$", "\u{1F600}", true),
        Case("^..$", "\u{1F600}", false),
        Case("^a.c$", "a\nc", false),
        Case("^a.c$", "abc", true),
        Case("^.+$", "\u{E9}\u{65E5}\u{672C}", true),
        Case("^.*$", "a\u{2028}b", false),
        // Escapes.
        Case(#"^\.\*\+\?\(\)\[\]\{\}\|\^\$\\\/$"#, #".*+?()[]{}|^$\/"#, true),
        Case(#"^\t\n\r\f\v$"#, "\t\n\r\u{0C}\u{0B}", true),
        Case(#"^\0$"#, "\0", true),
        Case(#"^\u0041\x42\u{1F600}$"#, "AB\u{1F600}", true),
        Case(#"^\uD83D\uDE00$"#, "\u{1F600}", true),
        Case(#"\cJ"#, "a\nb", true),
        Case(#"^a\-b$"#, "a-b", true),
        Case(#"^\s$"#, "\u{A0}", true),
        Case(#"^\s$"#, "\u{2028}", true),
        Case(#"^\w$"#, "\u{E9}", false),
        Case("caf\u{E9}", "un caf\u{E9}", true),
        // Scalars, not canonical equivalence: a decomposed é is not a precomposed one.
        Case(#"^e\u0301$"#, "\u{E9}", false),
        Case(#"^e\u0301$"#, "e\u{301}", true),
        Case(#"^\u00E9$"#, "\u{E9}", true),
        // Word boundaries.
        Case(#"\bcat\b"#, "the cat sat", true),
        Case(#"\bcat\b"#, "concatenate", false),
        Case(#"\Bcat\B"#, "concatenate", true),
        Case(#"\Bcat\B"#, "cat", false),
        Case(#"^\b$"#, "", false),
        Case(#"\b"#, "", false),
        Case(#"\b"#, "a", true),
        Case(#"a\b"#, "ab", false),
        Case(#"a\b"#, "a!", true),
        Case(#"\B"#, "", true),
        // Nested quantifiers, on short subjects.
        Case(#"^(\w+\s?)*$"#, "hello big world", true),
        Case(#"^(\w+\s?)*$"#, "hello, world", false),
        Case("(a|aa)*b", "aaab", true),
        // A `{`, `}` or `]` that cannot be syntax is a literal.
        Case("a{,2}", "a{,2}", true),
        Case("^}]$", "}]", true),
        Case("^x{$", "x{", true),
    ]

    @Test("a table of patterns and subjects gives what ECMAScript gives")
    func table() throws {
        for c in Self.cases {
            let re = try LinearRegex(c.pattern)
            #expect(re.matches(c.subject) == c.expected, "\(c.pattern) on \(c.subject.debugDescription)")
            var budget = Int.max
            let answer = re.matches(c.subject, budget: &budget)
            #expect(answer == c.expected)
        }
    }

    @Test("backreferences, lookaround, property escapes, modifiers and syntax errors are refused")
    func unsupported() {
        let refused: [(pattern: String, reason: String)] = [
            (#"(a)\1"#, "backreference"),
            (#"\1"#, "backreference"),
            (#"\k<x>(?<x>a)"#, "named backreference"),
            ("(?=x)", "lookahead"),
            ("(?!x)", "lookahead"),
            ("(?<=x)", "lookbehind"),
            ("(?<!x)", "lookbehind"),
            (#"\p{L}"#, "Unicode property"),
            (#"\P{L}"#, "Unicode property"),
            ("(?i)a", "modifier"),
            ("(?i:a)", "modifier"),
            ("(?P<n>x)", "modifier"),
            ("(abc", "without its )"),
            ("(?<n>x", "without its )"),
            ("abc)", "unmatched )"),
            (")(", "unmatched )"),
            ("[abc", "without its ]"),
            ("*a", "nothing to repeat"),
            ("a**", "nothing to repeat"),
            ("+", "nothing to repeat"),
            ("?", "nothing to repeat"),
            ("{2}", "nothing to repeat"),
            ("a|*", "nothing to repeat"),
            ("a{2}{3}", "nothing to repeat"),
            ("a???", "nothing to repeat"),
            ("^*", "after an assertion"),
            (#"\b+"#, "after an assertion"),
            ("a{2,1}", "out of order"),
            ("[z-a]", "out of order"),
            ("a{1001}", "over 1000"),
            (#"\"#, "at the end"),
            (#"\z"#, "unsupported escape"),
            (#"\a"#, "unsupported escape"),
            (#"\x4"#, #"\x"#),
            (#"\u12"#, #"\u"#),
            (#"\u{110000}"#, #"\u"#),
            (#"\00"#, "octal"),
            (#"[\B]"#, #"\B"#),
            ("(?<1a>x)", "group name"),
        ]
        for r in refused {
            let why = Self.reason(r.pattern)
            #expect(why?.contains(r.reason) == true, "\(r.pattern): \(why ?? "compiled")")
        }
    }

    @Test("limits: long patterns, large counts, large programs and deep nesting are refused")
    func limits() throws {
        #expect(Self.reason("(a{1000}){1000}")?.contains("instructions") == true)
        #expect(Self.reason("((?:){1000}){1000}") != nil)
        #expect(Self.reason(String(repeating: "a", count: 1_001))?.contains("longer than 1000") == true)
        #expect(Self.reason(String(repeating: "a", count: 1_000)) == nil)
        #expect(Self.reason("a{1001}") != nil)
        #expect(Self.reason("a{1,1001}") != nil)
        #expect(Self.reason("a{99999999999999999999}") != nil)
        #expect(Self.reason("a{1000}") == nil)
        #expect(Self.reason(String(repeating: "(", count: 101) + String(repeating: ")", count: 101)) != nil)
        #expect(Self.reason(String(repeating: "(", count: 100) + "a" + String(repeating: ")", count: 100)) == nil)
        let re = try LinearRegex("^[a-z]{1000}$")
        #expect(re.program.count <= LinearRegex.maxInstructions)
        #expect(re.matches(String(repeating: "q", count: 1_000)))
        #expect(!re.matches(String(repeating: "q", count: 999)))
        // A budget stops the matching before the answer is known.
        var budget = 10
        let answer = re.matches(String(repeating: "q", count: 1_000), budget: &budget)
        #expect(answer == nil)
    }

    @Test("ReDoS patterns on 4,000-character subjects take linear time and give the right answer")
    func redos() throws {
        let run = String(repeating: "a", count: 3_999)
        let cases = [
            Case(#"^(\w+\s?)*$"#, run + "!", false),
            Case(#"^(\w+\s?)*$"#, run + "a", true),
            Case("(a+)+$", run + "!", false),
            Case("(a+)+$", "!" + run, true),
            Case("(a|aa)*b", run + "a", false),
            Case("(a|aa)*b", run + "b", true),
            Case("^(a|a?)+$", run + "!", false),
            Case("^(a|a?)+$", run + "a", true),
            Case(#"^(\w+\s?)*$"#, String(repeating: "ab ", count: 1_333) + "!", false),
        ]
        let clock = ContinuousClock()
        let start = clock.now
        for c in cases {
            let re = try LinearRegex(c.pattern)
            #expect(re.matches(c.subject) == c.expected, "\(c.pattern)")
        }
        let elapsed = clock.now - start
        #expect(elapsed < .seconds(2), "\(elapsed)")
    }

    @Test("fuzz: random patterns are refused or run without crashing, and agree with themselves in a group")
    func fuzz() {
        var rng = SplitMix64(state: 0x11_4EA2_5EED)
        let tokens = [
            "a", "b", ".", "*", "+", "?", "|", "(", ")", "[ab]", "[^a]", "{2}", "{1,3}", "^", "$", #"\d"#, #"\w"#,
            "(?:", "[a-c]", #"\b"#, #"\s"#, "*?", "{0,}", "-", "1",
        ]
        let alphabet = ["a", "b", "c", "1", " ", "\n", "-", "_", "\u{E9}", "\u{1F600}"]
        var compiled = 0
        for _ in 0..<3_000 {
            let count = 1 + Int(rng.next() % 8)
            let pattern = (0..<count).map { _ in tokens[Int(rng.next() % UInt64(tokens.count))] }.joined()
            guard let re = try? LinearRegex(pattern) else { continue }
            compiled += 1
            let wrapped = try? LinearRegex("(?:" + pattern + ")")
            #expect(wrapped != nil, "\(pattern)")
            for _ in 0..<4 {
                let length = Int(rng.next() % 12)
                let subject = (0..<length).map { _ in alphabet[Int(rng.next() % UInt64(alphabet.count))] }.joined()
                let found = re.matches(subject)
                #expect((wrapped?.matches(subject) ?? found) == found, "\(pattern) on \(subject.debugDescription)")
                var small = Int(rng.next() % 16)
                let limited = re.matches(subject, budget: &small)
                #expect(limited == nil || limited == found, "\(pattern) on \(subject.debugDescription)")
            }
        }
        #expect(compiled > 300)
    }
}
