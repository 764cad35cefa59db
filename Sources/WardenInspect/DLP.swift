import Cedar
import Foundation

/// Finds secrets and personal data in text (the DLP step on MCP tool results): cloud and SaaS credentials, private
/// keys, JWTs, e-mail addresses and payment card numbers by their shapes; then, as detect-secrets and gitleaks do,
/// secrets without a fixed prefix: a high-entropy value after a secret-ish keyword (`generic_secret`), a base64 or
/// hex token that decodes to text holding a secret (`encoded_secret`), and a long, very random token that is no
/// digest, path, URL or blob (`high_entropy`). Hand-written byte scanners, linear in the input, that never trap
/// whatever the bytes.
public struct DLPScanner: Sendable {
    /// One match: its class (`aws_access_key`, `email`, …) and where it is, in UTF-8 byte offsets.
    public struct Finding: Sendable, Hashable {
        public let kind: String
        public let range: Range<Int>

        public init(kind: String, range: Range<Int>) {
            self.kind = kind
            self.range = range
        }
    }

    /// Redaction passes at most: redacting can expose a match that a neighbouring one hid (a key that was glued to
    /// a redacted secret), so the output is scanned again until clean.
    static let maxPasses = 8

    public init() {}

    /// The findings in `text`, sorted by start and never overlapping: overlapping matches are merged into one
    /// finding that covers them all, named after the most specific (a named shape before `encoded_secret`,
    /// `generic_secret` and `high_entropy`, in that order), then the longest. A generic candidate that overlaps a named
    /// shape is dropped: the named finding explains it.
    public func scan(_ text: String) -> [Finding] {
        Self.scan(bytes: Array(text.utf8))
    }

    /// `text` with every finding replaced by `[REDACTED:<kind>]`, and the kinds found.
    public func redact(_ text: String) -> (String, Set<String>) {
        var bytes = Array(text.utf8)
        var kinds = Set<String>()
        var changed = false
        for _ in 0..<Self.maxPasses {
            let found = Self.scan(bytes: bytes)
            if found.isEmpty { break }
            for f in found { kinds.insert(f.kind) }
            bytes = Self.splice(bytes, found)
            changed = true
        }
        return (changed ? String(decoding: bytes, as: UTF8.self) : text, kinds)
    }

    /// `value` with every string in it (object values and array items, and keys) redacted, and the kinds found. A
    /// string under a secret-ish key (`password`, `awsSecret`, …) that looks like a secret as a whole is a
    /// `generic_secret` too. Iterative, so any nesting depth is fine.
    public func redact(_ value: JSONValue) -> (JSONValue, Set<String>) {
        struct Frame {
            /// The object's keys; nil for an array.
            var keys: [String]?
            /// Which of the object's keys name a secret; empty for an array.
            var secretKeys: [Bool]
            var items: [JSONValue]
            var out: [JSONValue]
            var next: Int
        }
        var kinds = Set<String>()
        var stack: [Frame] = []
        var pending = value
        /// Whether `pending` is the value of a secret-ish key.
        var keyed = false
        while true {
            var done: JSONValue
            switch pending {
            case .string(let s):
                var (r, k) = redact(s)
                if k.isEmpty, keyed, Self.isKeyedSecret(s) {
                    r = "[REDACTED:generic_secret]"
                    k = ["generic_secret"]
                }
                kinds.formUnion(k)
                done = .string(r)
            case .number(let n):
                // A card number can travel as a JSON number: the redacted form is a string.
                let (r, k) = redact(n)
                kinds.formUnion(k)
                done = k.isEmpty ? pending : .string(r)
            case .array(let items) where !items.isEmpty:
                stack.append(Frame(keys: nil, secretKeys: [], items: items, out: [], next: 1))
                stack[stack.count - 1].out.reserveCapacity(items.count)
                pending = items[0]
                keyed = false
                continue
            case .object(let pairs) where !pairs.isEmpty:
                // Keys are text the model reads too.
                let keys = pairs.map { pair -> String in
                    let (r, k) = redact(pair.0)
                    kinds.formUnion(k)
                    return r
                }
                let secretKeys = pairs.map { Self.isSecretKey($0.0) }
                stack.append(Frame(keys: keys, secretKeys: secretKeys, items: pairs.map { $0.1 }, out: [], next: 1))
                stack[stack.count - 1].out.reserveCapacity(pairs.count)
                pending = pairs[0].1
                keyed = secretKeys[0]
                continue
            default:
                done = pending
            }
            // Hand `done` to its parent; close the containers that are complete.
            while true {
                guard !stack.isEmpty else { return (done, kinds) }
                let top = stack.count - 1
                stack[top].out.append(done)
                let next = stack[top].next
                if next < stack[top].items.count {
                    pending = stack[top].items[next]
                    keyed = stack[top].keys != nil && stack[top].secretKeys[next]
                    stack[top].next = next + 1
                    break
                }
                let frame = stack.removeLast()
                if let keys = frame.keys {
                    done = .object(Array(zip(keys, frame.out)))
                } else {
                    done = .array(frame.out)
                }
            }
        }
    }

    /// The kinds found in any string of `value` (object values, array items and keys), as `redact` finds them.
    public func findings(in value: JSONValue) -> Set<String> {
        var kinds = Set<String>()
        var stack = [(value, false)]
        while let top = stack.popLast() {
            let (v, keyed) = top
            switch v {
            case .string(let s):
                let found = scan(s)
                for f in found { kinds.insert(f.kind) }
                if found.isEmpty, keyed, Self.isKeyedSecret(s) { kinds.insert("generic_secret") }
            case .number(let s):
                for f in scan(s) { kinds.insert(f.kind) }
            case .array(let items):
                stack.append(contentsOf: items.map { ($0, false) })
            case .object(let pairs):
                for (k, x) in pairs {
                    for f in scan(k) { kinds.insert(f.kind) }
                    stack.append((x, Self.isSecretKey(k)))
                }
            default:
                break
            }
        }
        return kinds
    }

    // MARK: - Scanning

    static func splice(_ bytes: [UInt8], _ found: [Finding]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count + found.count * 24)
        var at = 0
        for f in found where f.range.lowerBound >= at && f.range.upperBound <= bytes.count {
            out.append(contentsOf: bytes[at..<f.range.lowerBound])
            out.append(contentsOf: "[REDACTED:\(f.kind)]".utf8)
            at = f.range.upperBound
        }
        out.append(contentsOf: bytes[at...])
        return out
    }

    static func scan(bytes b: [UInt8]) -> [Finding] {
        var raw = ByteScanner(b)
        raw.scanAll()
        return merge(preferNamed(raw.found))
    }

    /// The kinds that only say a string looks secret (a keyword before it, what it decodes to, its entropy), by
    /// precedence; every other kind is a named shape and comes first.
    static let genericKinds = ["encoded_secret": 3, "generic_secret": 2, "high_entropy": 1]
    static let namedRank = 4

    static func rank(_ kind: String) -> Int { genericKinds[kind] ?? namedRank }

    /// The candidates without the generic ones that overlap a named shape.
    static func preferNamed(_ candidates: [Finding]) -> [Finding] {
        let named = candidates.filter { rank($0.kind) == namedRank }
        guard !named.isEmpty, named.count < candidates.count else { return candidates }
        // Disjoint and sorted, so each generic candidate costs a binary search.
        let spans = merge(named).map(\.range)
        return named
            + candidates.filter { f in
                guard rank(f.kind) != namedRank else { return false }
                var lo = 0
                var hi = spans.count
                while lo < hi {
                    let mid = (lo + hi) / 2
                    if spans[mid].upperBound <= f.range.lowerBound { lo = mid + 1 } else { hi = mid }
                }
                return lo == spans.count || spans[lo].lowerBound >= f.range.upperBound
            }
    }

    /// Sorts and merges overlapping candidates: the union of their ranges, named after the most specific, then the
    /// longest (the earliest on a tie).
    static func merge(_ candidates: [Finding]) -> [Finding] {
        guard candidates.count > 1 else { return candidates }
        let sorted = candidates.sorted {
            $0.range.lowerBound != $1.range.lowerBound
                ? $0.range.lowerBound < $1.range.lowerBound : $0.range.count > $1.range.count
        }
        var out: [Finding] = []
        var best: [(Int, Int)] = []
        for f in sorted {
            let score = (rank(f.kind), f.range.count)
            if let last = out.last, f.range.lowerBound < last.range.upperBound {
                let k = out.count - 1
                let kind = score > best[k] ? f.kind : last.kind
                if score > best[k] { best[k] = score }
                out[k] = Finding(
                    kind: kind, range: last.range.lowerBound..<max(last.range.upperBound, f.range.upperBound))
            } else {
                out.append(f)
                best.append(score)
            }
        }
        return out
    }

    /// Whether an object key names a secret (`password`, `awsSecret`, `api_key`, `clientSecret`, …): its value is
    /// then checked as a whole.
    static func isSecretKey(_ key: String) -> Bool {
        let b = Array(key.utf8.prefix(256))
        for i in b.indices where ByteScanner.keyword(b, at: i) > 0 { return true }
        return false
    }

    /// Whether a whole string, the value of a secret-ish key, looks like a secret (``ByteScanner/genericValue``).
    static func isKeyedSecret(_ value: String) -> Bool {
        guard value.utf8.count <= ByteScanner.maxValue else { return false }
        let b = Array(value.utf8)
        return b.allSatisfy(ByteScanner.isValueChar) && ByteScanner.genericValue(b, 0..<b.count)
    }
}

/// One pass over the bytes; every detector does bounded work per position or skips past what it consumed, so the
/// whole scan is linear.
struct ByteScanner {
    let b: [UInt8]
    let n: Int
    var found: [DLPScanner.Finding] = []
    /// Positions before which a detector does not start again (it consumed them).
    var cardNext = 0
    var slackNext = 0
    var jwtNext = 0
    var keyNext = 0
    var wordNext = 0
    var tokenNext = 0
    /// A private key without an end marker runs to the end of the text: nothing more to look for.
    var keysDone = false
    /// Scanning text decoded from a token: no tokens are decoded again, none is `high_entropy`.
    let nested: Bool

    init(_ b: [UInt8], nested: Bool = false) {
        self.b = b
        self.n = b.count
        self.nested = nested
    }

    static let awsPrefixes: [[UInt8]] = ["AKIA", "ASIA", "AGPA", "AIDA", "AROA", "ANPA", "ANVA", "AIPA"].map {
        Array($0.utf8)
    }
    static let aiza = Array("AIza".utf8)
    static let githubPat = Array("github_pat_".utf8)
    static let skLive = Array("sk_live_".utf8)
    static let rkLive = Array("rk_live_".utf8)
    static let xox = Array("xox".utf8)
    static let eyJ = Array("eyJ".utf8)
    static let begin = Array("-----BEGIN ".utf8)
    static let dashes = Array("-----".utf8)
    static let endPrefix = Array("-----END ".utf8)
    static let privateKey = Array("PRIVATE KEY".utf8)
    static let privateKeyBlock = Array("PRIVATE KEY BLOCK".utf8)

    // MARK: Character classes

    static func isDigit(_ c: UInt8) -> Bool { c >= 0x30 && c <= 0x39 }
    static func isUpper(_ c: UInt8) -> Bool { c >= 0x41 && c <= 0x5A }
    static func isLower(_ c: UInt8) -> Bool { c >= 0x61 && c <= 0x7A }
    static func isAlpha(_ c: UInt8) -> Bool { isUpper(c) || isLower(c) }
    static func isAlnum(_ c: UInt8) -> Bool { isDigit(c) || isAlpha(c) }
    /// `[A-Za-z0-9_-]`
    static func isBase64URL(_ c: UInt8) -> Bool { isAlnum(c) || c == 0x5F || c == 0x2D }
    /// `[A-Za-z0-9/+]`
    static func isSecretChar(_ c: UInt8) -> Bool { isAlnum(c) || c == 0x2F || c == 0x2B }
    /// The local part of an address: `[A-Za-z0-9._%+-]`
    static func isLocal(_ c: UInt8) -> Bool {
        isAlnum(c) || c == 0x2E || c == 0x5F || c == 0x25 || c == 0x2B || c == 0x2D
    }
    /// A domain label: `[A-Za-z0-9-]`
    static func isLabel(_ c: UInt8) -> Bool { isAlnum(c) || c == 0x2D }

    // MARK: Helpers

    func has(_ p: [UInt8], at i: Int) -> Bool {
        guard i >= 0, i + p.count <= n else { return false }
        for k in 0..<p.count where b[i + k] != p[k] { return false }
        return true
    }

    /// Whether the byte before `i` is absent or not alphanumeric.
    func leftBoundary(_ i: Int) -> Bool { i == 0 || !Self.isAlnum(b[i - 1]) }

    /// Length of the run of bytes in the class starting at `i`, counting at most `limit`.
    func run(from i: Int, limit: Int = Int.max, _ inClass: (UInt8) -> Bool) -> Int {
        var k = i
        while k < n, k - i < limit, inClass(b[k]) { k += 1 }
        return k - i
    }

    /// Whether `count` bytes from `i` are all in the class.
    func all(from i: Int, count: Int, _ inClass: (UInt8) -> Bool) -> Bool {
        guard i + count <= n else { return false }
        for k in i..<(i + count) where !inClass(b[k]) { return false }
        return true
    }

    mutating func add(_ kind: String, _ lower: Int, _ upper: Int) {
        guard lower >= 0, lower < upper, upper <= n else { return }
        found.append(DLPScanner.Finding(kind: kind, range: lower..<upper))
    }

    // MARK: The pass

    mutating func scanAll() {
        var i = 0
        while i < n {
            if i >= wordNext, Self.startsKeyword(b[i]) { keywordSecret(i) }
            if !nested, i >= tokenNext, Self.isBase64(b[i]) { token(i) }
            switch b[i] {
            case 0x41:  // A
                awsAccessKey(i)
                gcpKey(i)
            case 0x67:  // g
                githubToken(i)
            case 0x78:  // x
                slackToken(i)
            case 0x72:  // r
                stripeKey(i)
            case 0x73:  // s
                stripeKey(i)
                awsSecret(i)
            case 0x53:  // S
                awsSecret(i)
            case 0x65:  // e
                jwt(i)
            case 0x2D:  // -
                privateKey(i)
            case 0x40:  // @
                email(i)
            case 0x30...0x39:
                cardNumber(i)
            default:
                break
            }
            i += 1
        }
    }

    // MARK: Detectors

    /// `AKIA…` and the other AWS key-id prefixes, then exactly 16 of `[A-Z0-9]`, standing alone.
    mutating func awsAccessKey(_ i: Int) {
        guard i + 20 <= n, leftBoundary(i), Self.awsPrefixes.contains(where: { has($0, at: i) }),
            all(from: i + 4, count: 16, { Self.isUpper($0) || Self.isDigit($0) }),
            i + 20 == n || !Self.isAlnum(b[i + 20])
        else { return }
        add("aws_access_key", i, i + 20)
    }

    /// `AIza` and 35 of `[A-Za-z0-9_-]`.
    mutating func gcpKey(_ i: Int) {
        guard i + 39 <= n, leftBoundary(i), has(Self.aiza, at: i), all(from: i + 4, count: 35, Self.isBase64URL),
            i + 39 == n || !Self.isBase64URL(b[i + 39])
        else { return }
        add("gcp_api_key", i, i + 39)
    }

    /// `ghp_`, `gho_`, `ghu_`, `ghs_`, `ghr_` and 36 alphanumerics; `github_pat_` and 82 of `[A-Za-z0-9_]`.
    mutating func githubToken(_ i: Int) {
        guard leftBoundary(i) else { return }
        if has(Self.githubPat, at: i) {
            let start = i + Self.githubPat.count
            let isWord: (UInt8) -> Bool = { Self.isAlnum($0) || $0 == 0x5F }
            guard all(from: start, count: 82, isWord), start + 82 == n || !isWord(b[start + 82]) else { return }
            add("github_token", i, start + 82)
            return
        }
        guard i + 40 <= n, b[i + 1] == 0x68, b[i + 3] == 0x5F else { return }
        switch b[i + 2] {
        case 0x70, 0x6F, 0x75, 0x73, 0x72: break  // p o u s r
        default: return
        }
        guard all(from: i + 4, count: 36, Self.isAlnum), i + 40 == n || !Self.isAlnum(b[i + 40]) else { return }
        add("github_token", i, i + 40)
    }

    /// `xox[baprs]-` and at least 10 of `[A-Za-z0-9-]` (the whole run).
    mutating func slackToken(_ i: Int) {
        guard i >= slackNext, i + 5 <= n, leftBoundary(i), has(Self.xox, at: i), b[i + 4] == 0x2D else { return }
        switch b[i + 3] {
        case 0x62, 0x61, 0x70, 0x72, 0x73: break  // b a p r s
        default: return
        }
        let length = run(from: i + 5, Self.isLabel)
        guard length >= 10 else { return }
        add("slack_token", i, i + 5 + length)
        slackNext = i + 5 + length
    }

    /// `sk_live_` or `rk_live_` and at least 24 alphanumerics (the whole run).
    mutating func stripeKey(_ i: Int) {
        guard leftBoundary(i), has(Self.skLive, at: i) || has(Self.rkLive, at: i) else { return }
        let start = i + Self.skLive.count
        let length = run(from: start, Self.isAlnum)
        guard length >= 24 else { return }
        add("stripe_key", i, start + length)
    }

    /// `secret_access_key` (any case; also `SecretAccessKey`, `secret-access-key`), up to 16 quotes, colons,
    /// equals signs, spaces or backslashes, then 40 of `[A-Za-z0-9/+]`: the 40 are the finding.
    mutating func awsSecret(_ i: Int) {
        guard let k = secretValue(after: i), all(from: k, count: 40, Self.isSecretChar) else { return }
        add("aws_secret_key", k, k + 40)
    }

    /// Where the value after a `secret_access_key` keyword at `i` starts.
    func secretValue(after i: Int) -> Int? {
        var k = i
        for (index, word) in Self.secretWords.enumerated() {
            if index > 0, k < n, b[k] == 0x5F || b[k] == 0x2D { k += 1 }
            for c in word {
                guard k < n else { return nil }
                let d = b[k]
                guard (Self.isUpper(d) ? d | 0x20 : d) == c else { return nil }
                k += 1
            }
        }
        var skipped = 0
        while k < n, skipped < 16, Self.isSeparator(b[k]) {
            k += 1
            skipped += 1
        }
        return k
    }

    static let secretWords: [[UInt8]] = [Array("secret".utf8), Array("access".utf8), Array("key".utf8)]

    /// `"` `'` `:` `=` space, tab, backslash
    static func isSeparator(_ c: UInt8) -> Bool {
        c == 0x22 || c == 0x27 || c == 0x3A || c == 0x3D || c == 0x20 || c == 0x09 || c == 0x5C
    }

    /// Three base64url segments of at least 10 characters separated by dots, the first starting `eyJ`.
    mutating func jwt(_ i: Int) {
        guard i >= jwtNext, has(Self.eyJ, at: i), i == 0 || !Self.isBase64URL(b[i - 1]) else { return }
        var k = i
        for segment in 0..<3 {
            let length = run(from: k, Self.isBase64URL)
            guard length >= 10 else { return }
            k += length
            if segment < 2 {
                guard k < n, b[k] == 0x2E else { return }
                k += 1
            }
        }
        add("jwt", i, k)
        jwtNext = k
    }

    /// `-----BEGIN <label>-----` where the label ends in `PRIVATE KEY` (or `PRIVATE KEY BLOCK`), through
    /// `-----END <label>-----`, or to the end of the text when there is no end marker.
    mutating func privateKey(_ i: Int) {
        guard !keysDone, i >= keyNext, has(Self.begin, at: i) else { return }
        let labelStart = i + Self.begin.count
        let labelLength = run(from: labelStart, limit: 48) { Self.isUpper($0) || Self.isDigit($0) || $0 == 0x20 }
        let labelEnd = labelStart + labelLength
        guard has(Self.dashes, at: labelEnd) else { return }
        let label = Array(b[labelStart..<labelEnd])
        guard label.count >= Self.privateKey.count else { return }
        func endsWith(_ suffix: [UInt8]) -> Bool {
            label.count >= suffix.count && Array(label[(label.count - suffix.count)...]) == suffix
        }
        guard endsWith(Self.privateKey) || endsWith(Self.privateKeyBlock) else { return }
        let marker = Self.endPrefix + label + Self.dashes
        var q = labelEnd + Self.dashes.count
        while q + marker.count <= n {
            if b[q] == 0x2D, has(marker, at: q) {
                add("private_key", i, q + marker.count)
                keyNext = q + marker.count
                return
            }
            q += 1
        }
        add("private_key", i, n)
        keysDone = true
    }

    /// `local@domain`: a local part of 1 to 64 of `[A-Za-z0-9._%+-]` (scanned back from the `@`), then labels of
    /// `[A-Za-z0-9-]` separated by dots, at least two, the last of two or more letters.
    mutating func email(_ at: Int) {
        var l = at
        while l > 0, at - l < 64, Self.isLocal(b[l - 1]) { l -= 1 }
        while l < at, b[l] == 0x2E { l += 1 }
        guard l < at else { return }
        var p = at + 1
        var labels = 0
        var end = -1
        while p < n, p - at <= 253 {
            let start = p
            var letters = true
            while p < n, p - at <= 253, Self.isLabel(b[p]) {
                if !Self.isAlpha(b[p]) { letters = false }
                p += 1
            }
            guard p > start else { break }
            labels += 1
            if labels >= 2, letters, p - start >= 2 { end = p }
            guard p < n, b[p] == 0x2E else { break }
            p += 1
        }
        guard end > at else { return }
        add("email", l, end)
    }

    /// 13 to 19 digits, single spaces or dashes allowed between them, not touching other letters or digits (nor a
    /// decimal point with digits), passing the Luhn check.
    mutating func cardNumber(_ i: Int) {
        guard i >= cardNext else { return }
        var digits: [UInt8] = []
        var p = i
        while true {
            while p < n, Self.isDigit(b[p]) {
                if digits.count <= 19 { digits.append(b[p] - 0x30) }
                p += 1
            }
            if p + 1 < n, b[p] == 0x20 || b[p] == 0x2D, Self.isDigit(b[p + 1]) {
                p += 1
                continue
            }
            break
        }
        cardNext = p
        guard digits.count >= 13, digits.count <= 19 else { return }
        guard leftBoundary(i), p == n || !Self.isAlnum(b[p]) else { return }
        func decimalMark(_ c: UInt8) -> Bool { c == 0x2E || c == 0x2C }
        if i >= 2, decimalMark(b[i - 1]), Self.isDigit(b[i - 2]) { return }
        if p + 1 < n, decimalMark(b[p]), Self.isDigit(b[p + 1]) { return }
        var sum = 0
        for (k, d) in digits.reversed().enumerated() {
            var v = Int(d)
            if k % 2 == 1 {
                v *= 2
                if v > 9 { v -= 9 }
            }
            sum += v
        }
        guard sum % 10 == 0 else { return }
        add("card_number", i, p)
    }
}
