import Cedar
import Foundation
import Testing
import WardenCore

@testable import WardenInspect

/// ``JSONNumber``: one exact value and one spelling for every way of writing a number, and the JSON Schema check on
/// the same value. The fuzz tests are seeded and scaled by `WARDEN_FUZZ_ITERATIONS` (default 1500), seed
/// `WARDEN_FUZZ_SEED`.
@Suite("JSON numbers: exact values and canonical spellings")
struct JSONNumberTests {
    static var iterations: Int {
        ProcessInfo.processInfo.environment["WARDEN_FUZZ_ITERATIONS"].flatMap(Int.init) ?? 1500
    }
    static var seed: UInt64 { ProcessInfo.processInfo.environment["WARDEN_FUZZ_SEED"].flatMap(UInt64.init) ?? 20261124 }

    @Test("every spelling of an integer is that integer: a Long for Cedar, one spelling for the upstream")
    func integerSpellings() throws {
        for text in ["1", "1.0", "1e0", "10e-1", "0.1e1", "1E+0", "100e-2", "1.000", "0.001e3", "1000000e-6", "1e00"] {
            let n = try #require(JSONNumber(text), "\(text)")
            #expect(n.text == "1", "\(text)")
            #expect(n.int64 == 1, "\(text)")
            #expect(n.cedar == .long(1), "\(text)")
            #expect(n == JSONNumber("1"))
        }
        for text in ["0", "-0", "0.0", "-0.000", "0e5", "-0E-10", "0.0e999999999"] {
            let n = try #require(JSONNumber(text), "\(text)")
            #expect(n.text == "0" && n.int64 == 0 && !n.negative, "\(text)")
        }
        #expect(JSONNumber("9223372036854775807")?.int64 == .max)
        #expect(JSONNumber("-9223372036854775808")?.int64 == .min)
        #expect(JSONNumber("-92233720368547758.08e2")?.int64 == .min)
        // Beyond Int64: integral, but a String for Cedar (its canonical spelling).
        let big = try #require(JSONNumber("9223372036854775808"))
        #expect(big.isIntegral && big.int64 == nil && big.cedar == .string("9223372036854775808"))
        #expect(JSONNumber("-9223372036854775809")?.cedar == .string("-9223372036854775809"))
    }

    @Test("canonical spellings of other numbers")
    func spellings() {
        let cases: [(String, String)] = [
            ("1.5", "1.5"), ("-12.250", "-12.25"), ("15e-1", "1.5"), ("0.5", "0.5"), ("5E-1", "0.5"),
            ("1e20", "100000000000000000000"), ("1e21", "1e21"), ("123e19", "1.23e21"), ("-1.5E+30", "-1.5e30"),
            ("1e-7", "0.0000001"), ("1e-8", "1e-8"), ("-2.5e-8", "-2.5e-8"), ("123.456e-300", "1.23456e-298"),
            ("1e999999999", "1e999999999"), ("1e-999999999", "1e-999999999"),
            ("12345678901234567890.5", "12345678901234567890.5"),
            ("1e0000000000000000001", "10"),
        ]
        for (text, canonical) in cases {
            #expect(JSONNumber(text)?.text == canonical, "\(text)")
            #expect(JSONNumber(canonical) == JSONNumber(text), "\(text)")
        }
        #expect(JSONNumber("1.5")?.cedar == .string("1.5"))
        #expect(JSONNumber("1.5")?.isIntegral == false)
    }

    @Test("not a JSON number, or an exponent out of range: nil")
    func refused() {
        for text in [
            "", "-", "01", "-01", "1.", ".5", "1e", "1e+", "+1", " 1", "1 ", "0x10", "NaN", "Infinity", "1..2",
            "1e1.5", "1e1234567890123456", "--1", "1_000", "١",
        ] {
            #expect(JSONNumber(text) == nil, "\(text)")
        }
        // Fifteen significant exponent digits are the limit; leading zeros do not count.
        #expect(JSONNumber("1e999999999999999") != nil)
        #expect(JSONNumber("1e0000999999999999999") != nil)
        #expect(JSONNumber("1e9999999999999999") == nil)
    }

    @Test("order and multipleOf, exactly")
    func arithmetic() throws {
        func n(_ s: String) throws -> JSONNumber { try #require(JSONNumber(s)) }
        #expect(try n("1") < n("1.5") && n("1.5") < n("2"))
        #expect(try n("-2") < n("-1.5") && n("-1.5") < n("0") && n("0") < n("1e-300"))
        #expect(try n("-1e300") < n("-1") && n("9.99") < n("10") && !(n("10") < n("1e1")))
        #expect(try n("0.99999999999999999999") < n("1") && n("1") < n("1.00000000000000000001"))
        let multiples: [(String, String, Bool?)] = [
            ("2.5", "0.5", true), ("3", "2", false), ("0.3", "0.1", true), ("0.30000000000000004", "0.1", false),
            ("1e30", "7", false), ("7e30", "7", true), ("1", "0.3", false), ("0.9", "0.3", true),
            ("1e999999999", "2", true), ("5", "50", false), ("0", "3", true), ("-6", "1.5", true),
            ("1", "1234567890123456789", nil),
        ]
        for (x, m, expected) in multiples {
            #expect(try n(x).isMultiple(of: n(m)) == expected, "\(x) multipleOf \(m)")
        }
    }

    @Test("arguments: every number canonical, out of range refused")
    func canonicalizing() throws {
        let v = try JSONValue.parse(#"{"a":1.0,"b":[10e-1,"1.0",{"c":-0}],"d":null,"e":2.50}"#)
        #expect(JSONNumber.canonicalizing(v)?.serialized == #"{"a":1,"b":[1,"1.0",{"c":0}],"d":null,"e":2.5}"#)
        #expect(JSONNumber.canonicalizing(try JSONValue.parse(#"{"a":[1e1234567890123456]}"#)) == nil)
    }

    @Test("the JSON Schema check decides on the same exact value")
    func schemaAgrees() throws {
        func errors(_ schema: String, _ instance: String) throws -> [String] {
            SchemaValidator(try JSONValue.parse(schema)).validate(try JSONValue.parse(instance))
        }
        for spelling in ["1", "1.0", "1e0", "10e-1", "0.1e1", "1E+0", "100e-2"] {
            #expect(try errors(#"{"type":"integer"}"#, spelling).isEmpty, "\(spelling)")
            #expect(try errors(#"{"enum":[1]}"#, spelling).isEmpty, "\(spelling)")
            #expect(try errors(#"{"const":1.0}"#, spelling).isEmpty, "\(spelling)")
            #expect(try errors(#"{"minimum":1,"maximum":1}"#, spelling).isEmpty, "\(spelling)")
        }
        #expect(try errors(#"{"type":"integer"}"#, "1.5") == ["/: expected an integer, got a number"])
        #expect(try errors(#"{"type":"integer"}"#, "1e999999999").isEmpty)
        #expect(try errors(#"{"type":"integer"}"#, "1e-999999999").count == 1)
        // Where a Double would round: exact.
        #expect(try errors(#"{"minimum":1}"#, "0.99999999999999999999") == ["/: must be at least 1"])
        #expect(try errors(#"{"maximum":1}"#, "1.00000000000000000001") == ["/: must be at most 1"])
        #expect(try errors(#"{"enum":[1]}"#, "1.00000000000000000001").count == 1)
        #expect(try errors(#"{"multipleOf":0.1}"#, "0.30000000000000004") == ["/: must be a multiple of 0.1"])
        #expect(try errors(#"{"maximum":1e300}"#, "1e301") == ["/: must be at most 1e300"])
        #expect(try errors(#"{"uniqueItems":true}"#, "[1, 1.0]") == ["/1: duplicate item (the items must be unique)"])
        #expect(try errors(#"{"uniqueItems":true}"#, "[1e400, 2e400]").isEmpty)
    }

    /// A random spelling of ±`digits` × 10^`exponent`: the decimal point moved, zeros added, the written exponent to
    /// match (any case, sign and leading zeros).
    static func spell(negative: Bool, digits: String, exponent e: Int, _ rng: inout SplitMix64) -> String {
        let sign = negative ? "-" : ""
        if digits == "0" {
            var mantissa = "0"
            if Bool.random(using: &rng) {
                mantissa += "." + String(repeating: "0", count: Int.random(in: 1...4, using: &rng))
            }
            return sign + mantissa + exponent(Int.random(in: -30...30, using: &rng), &rng)
        }
        let padded = digits + String(repeating: "0", count: Int.random(in: 0...4, using: &rng))
        let pad = padded.count - digits.count
        let q = Int.random(in: 0...padded.count, using: &rng)
        var mantissa: String
        var fraction: Int
        if q == 0 {
            let zeros = String(repeating: "0", count: Int.random(in: 0...4, using: &rng))
            mantissa = "0." + zeros + padded
            fraction = zeros.count + padded.count
        } else {
            let cut = padded.index(padded.startIndex, offsetBy: q)
            mantissa = String(padded[..<cut])
            var rest = String(padded[cut...]) + String(repeating: "0", count: Int.random(in: 0...2, using: &rng))
            if rest.isEmpty, Bool.random(using: &rng) { rest = "0" }
            if !rest.isEmpty { mantissa += "." + rest }
            fraction = padded.count - q  // the zeros added after the digits do not change the value
        }
        return sign + mantissa + exponent(e + fraction - pad, &rng)
    }

    static func spell(_ n: Int64, _ rng: inout SplitMix64) -> String {
        spell(negative: n < 0 || (n == 0 && Bool.random(using: &rng)), digits: String(n.magnitude), exponent: 0, &rng)
    }

    static func exponent(_ e: Int, _ rng: inout SplitMix64) -> String {
        if e == 0, Bool.random(using: &rng) { return "" }
        let sign = e < 0 ? "-" : ["", "+"].randomElement(using: &rng)!
        let zeros = String(repeating: "0", count: Int.random(in: 0...3, using: &rng))
        return ["e", "E"].randomElement(using: &rng)! + sign + zeros + String(e.magnitude)
    }

    static func randomInt64(_ rng: inout SplitMix64) -> Int64 {
        switch rng.next() % 4 {
        case 0: Int64.random(in: -1000...1000, using: &rng)
        case 1: [Int64.min, Int64.max, Int64.min + 1, Int64.max - 1, 0, -1].randomElement(using: &rng)!
        case 2: Int64(bitPattern: rng.next()) >> Int64.random(in: 0...62, using: &rng)
        default: Int64(bitPattern: rng.next())
        }
    }

    @Test("fuzz: random spellings of the same number canonicalize equal; order follows the values")
    func fuzzSpellings() throws {
        var rng = SplitMix64(state: Self.seed)
        for _ in 0..<Self.iterations {
            let n = Self.randomInt64(&rng)
            let a = Self.spell(n, &rng)
            let b = Self.spell(n, &rng)
            // Each spelling is JSON the reader takes.
            #expect(try JSONValue.parse(a) == .number(a), "\(a)")
            let x = try #require(JSONNumber(a), "\(a)")
            let y = try #require(JSONNumber(b), "\(b)")
            #expect(x == y, "\(a) vs \(b)")
            #expect(x.int64 == n && x.text == String(n) && x.cedar == .long(n), "\(a)")
            let m = Self.randomInt64(&rng)
            let z = try #require(JSONNumber(Self.spell(m, &rng)))
            #expect((x < z) == (n < m) && (x == z) == (n == m), "\(a) vs \(m)")
            // A fraction: one value whatever the spelling, never integral, its canonical spelling read back equal.
            var digits = String(Int.random(in: 1...9, using: &rng))
            for _ in 0..<Int.random(in: 0...24, using: &rng) { digits += String(Int.random(in: 0...9, using: &rng)) }
            digits += String(Int.random(in: 1...9, using: &rng))
            let e = Int.random(in: -60...(-1), using: &rng)
            let negative = Bool.random(using: &rng)
            let f = Self.spell(negative: negative, digits: digits, exponent: e, &rng)
            let g = Self.spell(negative: negative, digits: digits, exponent: e, &rng)
            let u = try #require(JSONNumber(f), "\(f)")
            #expect(JSONNumber(g) == u, "\(f) vs \(g)")
            #expect(!u.isIntegral && u.int64 == nil && u.cedar == .string(u.text), "\(f)")
            #expect(JSONNumber(u.text) == u && u.text.utf8.count <= digits.utf8.count + 12, "\(f)")
        }
    }

    @Test("fuzz: garbage never traps; what is read is what the JSON reader reads, and reads back the same")
    func fuzzGarbage() throws {
        var rng = SplitMix64(state: Self.seed ^ 0x5EED)
        let alphabet = Array("0123456789-+.eE x\u{0}1".utf8)
        for _ in 0..<(Self.iterations * 4) {
            var b: [UInt8]
            if Bool.random(using: &rng) {
                b = (0..<Int.random(in: 0...24, using: &rng)).map { _ in alphabet.randomElement(using: &rng)! }
            } else {
                b = Array(Self.spell(Self.randomInt64(&rng), &rng).utf8)
                for _ in 0..<Int.random(in: 1...3, using: &rng) where !b.isEmpty {
                    let i = Int.random(in: 0..<b.count, using: &rng)
                    switch rng.next() % 3 {
                    case 0: b[i] = alphabet.randomElement(using: &rng)!
                    case 1: b.remove(at: i)
                    default: b.insert(alphabet.randomElement(using: &rng)!, at: i)
                    }
                }
            }
            let text = String(decoding: b, as: UTF8.self)
            let n = JSONNumber(text)
            let parsed = try? JSONValue.parse(text)
            if let n {
                #expect(parsed == .number(text), "\(text)")
                #expect(JSONNumber(n.text) == n, "\(text)")
                #expect(JSONNumber.canonicalizing(.number(text)) == .number(n.text))
            } else if case .number(let read)? = parsed, read == text {
                // The reader takes it, Warden does not: only an exponent out of range.
                #expect(text.lowercased().contains("e"), "\(text)")
            }
        }
    }
}
